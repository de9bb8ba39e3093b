"""The model files the post stage's graphs load, by name (``wanclip setup --with interpolation``
and ``--with upscale`` install them; their manifests are ``data/models_interpolation.yaml`` and
``data/models_upscale.yaml``, and a test keeps the two in step)."""

from __future__ import annotations

# core FrameInterpolationModelLoader: a RIFE or FILM file in models/frame_interpolation/
INTERPOLATION_MODEL = "rife47.safetensors"
# ComfyUI-Frame-Interpolation's RIFE VFI: one of its own ckpt_name options (it fetches the file itself)
RIFE_VFI_CKPT = "rife47.pth"
# core UpscaleModelLoader: models/upscale_models/, and the factor the model upscales by
UPSCALE_MODEL = "RealESRGAN_x2plus.pth"
UPSCALE_MODEL_SCALE = 2
# core SeedVR2: its diffusion model (models/diffusion_models/) and VAE (models/vae/)
SEEDVR2_MODEL = "seedvr2_ema_3b_fp16.safetensors"
SEEDVR2_VAE = "seedvr2_ema_vae_fp16.safetensors"
