"""The model files the post stage's graphs load, and the LightX2V LoRA sets, by name.

``wanclip setup --with interpolation`` and ``--with upscale`` install the post models (manifests
``data/models_interpolation.yaml`` and ``data/models_upscale.yaml``), ``--with lightx2v-1217`` the newer
LoRAs (``data/models_lightx2v_1217.yaml``); a test keeps these names and the manifests' dest names in
step. Where each value comes from is in the comment at the top of each manifest.
"""

from __future__ import annotations

# core FrameInterpolationModelLoader: a RIFE or FILM file in models/frame_interpolation/ (Comfy-Org's
# repackaged RIFE 4.26, the frame_interpolation repo on the hub)
INTERPOLATION_MODEL = "rife_v4.26.safetensors"
# ComfyUI-Frame-Interpolation's RIFE VFI (Fannovel16's custom nodes): one of its own ckpt_name options.
# The node downloads its checkpoint itself on first use: wanclip setup installs nothing for it.
RIFE_VFI_CKPT = "rife47.pth"
# core UpscaleModelLoader: models/upscale_models/, and the factor the model upscales by
UPSCALE_MODEL = "RealESRGAN_x2plus.pth"
UPSCALE_MODEL_SCALE = 2
# core SeedVR2: its diffusion model (models/diffusion_models/) and VAE (models/vae/), the files of
# ComfyUI's utility_seedvr2_3b_int8_upscale_video template (Comfy-Org/SeedVR2 on the hub)
SEEDVR2_MODEL = "seedvr2_3b_int8_convrot.safetensors"
SEEDVR2_VAE = "seedvr2_ema_vae_fp16.safetensors"

# The LightX2V 4-step distillation LoRAs, by set (the shots key ``lightx2v:``) and graph: for each,
# (high-noise, low-noise), the names LoraLoaderModelOnly takes (relative to models/loras/).
# v1.1 (the default, the files of the shipped graphs): `wanclip setup` and `--with i2v` install them.
# 1217: the December 2025 T2V pair with the October 2025 (1022) I2V pair; `--with lightx2v-1217`
# installs both pairs.
DEFAULT_LORA_SET = "v1.1"
LORA_SETS: dict[str, dict[str, tuple[str, str]]] = {
    "v1.1": {
        "t2v": ("wan2.2_t2v_lightx2v_4steps_lora_v1.1_high_noise.safetensors",
                "wan2.2_t2v_lightx2v_4steps_lora_v1.1_low_noise.safetensors"),
        "i2v": ("wan2.2_i2v_lightx2v_4steps_lora_v1_high_noise.safetensors",
                "wan2.2_i2v_lightx2v_4steps_lora_v1_low_noise.safetensors"),
    },
    "1217": {
        "t2v": ("wan2.2_t2v_A14b_high_noise_lora_rank64_lightx2v_4step_1217.safetensors",
                "wan2.2_t2v_A14b_low_noise_lora_rank64_lightx2v_4step_1217.safetensors"),
        "i2v": ("wan2.2_i2v_A14b_high_noise_lora_rank64_lightx2v_4step_1022.safetensors",
                "wan2.2_i2v_A14b_low_noise_lora_rank64_lightx2v_4step_1022.safetensors"),
    },
}
