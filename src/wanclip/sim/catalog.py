"""What the simulated server knows: node schemas (recorded from a real ComfyUI, per profile) and model folders."""

from __future__ import annotations

import copy
import json
import mimetypes
import os
from functools import lru_cache
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "sim"
DATA = DATA_DIR / "object_info.json"  # 0.3.64's

# The files of the shipped 4-step workflows (text-to-video and image-to-video), as the real
# repackaged repos name them (sorted, as ComfyUI lists a folder).
DEFAULT_MODELS: dict[str, list[str]] = {
    "diffusion_models": [
        "wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors",
        "wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors",
        "wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors",
        "wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors",
    ],
    "text_encoders": ["umt5_xxl_fp8_e4m3fn_scaled.safetensors"],
    "vae": ["wan_2.1_vae.safetensors"],
    "loras": [
        "wan2.2_i2v_lightx2v_4steps_lora_v1_high_noise.safetensors",
        "wan2.2_i2v_lightx2v_4steps_lora_v1_low_noise.safetensors",
        "wan2.2_t2v_lightx2v_4steps_lora_v1.1_high_noise.safetensors",
        "wan2.2_t2v_lightx2v_4steps_lora_v1.1_low_noise.safetensors",
    ],
    # the post stage's model upscaler (planning/post_models.py names it; a test keeps the two in step)
    "upscale_models": ["RealESRGAN_x2plus.pth"],
}
# The files of the core FrameInterpolate and SeedVR2 nodes, listed only where those nodes are (profile
# 0.38): elsewhere /models and UNETLoader's list stay as recorded.
CORE_POST_MODELS = {"frame_interpolation": "rife_v4.26.safetensors", "diffusion_models": "seedvr2_3b_int8_convrot.safetensors",
                    "vae": "seedvr2_ema_vae_fp16.safetensors"}

# GET /models as the real server answered it (misc_endpoints.json).
FOLDER_KEYS = [
    "checkpoints", "configs", "loras", "vae", "text_encoders", "diffusion_models", "clip_vision",
    "style_models", "embeddings", "diffusers", "vae_approx", "controlnet", "gligen", "upscale_models",
    "custom_nodes", "hypernetworks", "photomaker", "classifiers", "model_patches", "audio_encoders",
    "VHS_video_formats",
]
# 0.9.2 added one folder (misc_endpoints.json of that set).
FOLDER_KEYS_09 = [k for key in FOLDER_KEYS for k in ((key, "latent_upscale_models") if key == "upscale_models" else (key,))]

# Which combo input lists which folder; VAELoader always adds "pixel_space".
MODEL_INPUTS = {
    ("UNETLoader", "unet_name"): "diffusion_models",
    ("CLIPLoader", "clip_name"): "text_encoders",
    ("LoraLoaderModelOnly", "lora_name"): "loras",
    ("VAELoader", "vae_name"): "vae",
}

# The post stage's loaders (their classes are not on every profile).
POST_MODEL_INPUTS = {
    ("UpscaleModelLoader", "model_name"): "upscale_models",
    ("FrameInterpolationModelLoader", "model_name"): "frame_interpolation",
}

# LoadImage's `image` combo: the image files at the top of input/ (nodes.py LoadImage.INPUT_TYPES).
IMAGE_INPUT = ("LoadImage", "image")
# The video loaders' combos: the video files at the top of input/ (LoadVideo: filter_files_content_types
# "video"; VHS_LoadVideo: its video extensions).
VIDEO_INPUTS = (("LoadVideo", "file"), ("VHS_LoadVideo", "video"))

MODEL_EXTENSIONS = {".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft", ".pt2", ".pkl"}


@lru_cache(maxsize=4)
def _recorded_object_info(name: str = "object_info.json") -> dict:
    return json.loads((DATA_DIR / name).read_text(encoding="utf-8"))


def load_models(source: str | Path | None, core_post: bool = False) -> dict[str, list[str]]:
    """Model folders from a YAML/JSON file (folder -> names) or a ComfyUI-style models dir.

    None: DEFAULT_MODELS, with CORE_POST_MODELS when ``core_post`` (a server with those nodes)."""
    if source is None:
        models = copy.deepcopy(DEFAULT_MODELS)
        for folder, name in CORE_POST_MODELS.items() if core_post else ():
            models[folder] = sorted([*models.get(folder, []), name])
        return models
    path = Path(source)
    if path.is_dir():
        return _scan_models_dir(path)
    if not path.is_file():
        raise FileNotFoundError(f"--models: {path} is neither a file nor a folder")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        data = json.loads(text)
    else:
        import yaml  # only needed for this one optional input

        data = yaml.safe_load(text)
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise ValueError(f"--models: {path} must map folder names to lists of file names")
    return {str(k): sorted(str(n) for n in v) for k, v in data.items()}


def _scan_models_dir(root: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        names = [
            str(f.relative_to(folder))
            for f in folder.rglob("*")
            if f.is_file() and f.suffix.lower() in MODEL_EXTENSIONS
        ]
        out[folder.name] = sorted(names)
    return out


def is_image_file(name: str) -> bool:
    """folder_paths.filter_files_content_types(..., ["image"]): by the name's guessed mime type."""
    mime, _ = mimetypes.guess_type(name, strict=False)
    return name.lower().endswith(".webp") or (mime or "").split("/")[0] == "image"


def is_video_file(name: str) -> bool:
    mime, _ = mimetypes.guess_type(name, strict=False)
    return (mime or "").split("/")[0] == "video"


def set_options(spec: list, options: list) -> None:
    """A combo's options, V1 (``[[...], {...}]``) or V3 (``["COMBO", {"options": [...]}]``)."""
    if spec[0] == "COMBO":
        spec[1]["options"] = options
    else:
        spec[0] = options


def annotated_filepath(name: str, folders: dict[str, Path]) -> Path:
    """folder_paths.get_annotated_filepath: "x.png [output]" (also [input], [temp]) names another
    folder; a plain name is in input/. The real code cuts one character more than the tag, so the
    space before it goes too (and a tag without the space eats a letter of the name)."""
    for tag in ("output", "input", "temp"):
        if name.endswith(f"[{tag}]"):
            return Path(folders[tag]) / name[: -(len(tag) + 3)]
    return Path(folders["input"]) / name


class Catalog:
    """Node classes and model folders of one simulated server.

    folders: () -> {"input": dir, "output": dir, "temp": dir}, read when asked (a reset moves them)."""

    def __init__(self, models: dict[str, list[str]], object_info: str = "object_info.json",
                 folder_keys: list[str] | None = None, extra_info: dict | None = None, folders=None):
        self.models = models
        self.object_info = object_info
        self.folder_keys_known = folder_keys or FOLDER_KEYS
        self.extra_info = extra_info or {}  # classes of custom node packs the server "has installed"
        self.folders = folders or (lambda: {"input": Path("input"), "output": Path("output"), "temp": Path("temp")})
        self._info = self._build_info()

    @property
    def info(self) -> dict:
        """The /object_info answer: LoadImage lists input/ as it is now, like the real INPUT_TYPES."""
        cls, name = IMAGE_INPUT
        if cls in self._info:
            self._info[cls]["input"]["required"][name][0] = self.input_images()
        for cls, name in VIDEO_INPUTS:
            if cls in self._info:
                set_options(self._info[cls]["input"]["required"][name], self.input_images(is_video_file))
        return self._info

    def input_images(self, kind=is_image_file) -> list[str]:
        folder = Path(self.folders()["input"])
        try:
            names = os.listdir(folder)
        except OSError:
            return []
        return sorted(n for n in names if (folder / n).is_file() and kind(n))

    def annotated_path(self, name: str) -> Path:
        return annotated_filepath(name, self.folders())

    def _build_info(self) -> dict:
        info = copy.deepcopy(_recorded_object_info(self.object_info))
        info.update(copy.deepcopy(self.extra_info))
        for (cls, name), folder in MODEL_INPUTS.items():
            options = list(self.models.get(folder, []))
            if cls == "VAELoader":
                options.append("pixel_space")
            spec = info[cls]["input"]["required"][name]
            spec[0] = options
        for (cls, name), folder in POST_MODEL_INPUTS.items():
            if cls in info:
                set_options(info[cls]["input"]["required"][name], list(self.models.get(folder, [])))
        return info

    def has_class(self, class_type) -> bool:
        return isinstance(class_type, str) and class_type in self._info

    def is_output(self, class_type: str) -> bool:
        return bool(self._info[class_type]["output_node"])

    def return_types(self, class_type: str) -> list:
        return self._info[class_type]["output"]

    def inputs(self, class_type: str) -> dict:
        return self._info[class_type]["input"]

    def has_unique_id(self, class_type: str) -> bool:
        hidden = self.inputs(class_type).get("hidden", {})
        return any(v == "UNIQUE_ID" or v == ["UNIQUE_ID"] for v in hidden.values())

    def folder(self, name: str) -> list[str] | None:
        if name in self.models:
            return list(self.models[name])
        return [] if name in self.folder_keys_known else None

    def folder_keys(self) -> list[str]:
        known = self.folder_keys_known
        return known + [k for k in self.models if k not in known]
