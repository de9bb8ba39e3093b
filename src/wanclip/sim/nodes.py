"""What each simulated node does: values that flow along links, costs, errors, output files."""

from __future__ import annotations

import re

from PIL import Image, ImageOps

from wanclip.sim import post_nodes, wanclip_nodes
from wanclip.sim.node_base import Ctx, NodeError, next_counter, save_target
from wanclip.sim.video import Clip, Picture, write_metadata_png, write_mp4

# Relative sizes of the model files (GB), so a cold load of the default set costs load_seconds.
LOAD_WEIGHT = {"diffusion_models": 14.3, "text_encoders": 6.7, "vae": 0.25, "loras": 0.6}
FULL_SET_WEIGHT = 2 * 14.3 + 6.7 + 0.25 + 2 * 0.6

LOADER_FOLDER = {
    "UNETLoader": ("unet_name", "diffusion_models"),
    "CLIPLoader": ("clip_name", "text_encoders"),
    "VAELoader": ("vae_name", "vae"),
    "LoraLoaderModelOnly": ("lora_name", "loras"),
}


def step_scale(latent_frames: int) -> float:
    """Seconds per step relative to an 81-frame clip: linear MLP + quadratic attention."""
    def cost(n: int) -> float:
        return 0.086 * n + 0.0036 * n * n

    return cost(latent_frames) / cost(21)


def sampler_steps(inputs: dict) -> int:
    """Progress max of one KSamplerAdvanced call: the steps left after start/end truncation."""
    steps = int(inputs["steps"])
    return max(0, min(int(inputs["end_at_step"]), steps) - int(inputs["start_at_step"]))


def run_node(class_type: str, inputs: dict, ctx: Ctx):
    """Returns (outputs tuple, ui dict or None)."""
    if class_type in post_nodes.RUNNERS:  # the post stage's (issue 21)
        return post_nodes.RUNNERS[class_type](inputs, ctx)
    if class_type not in RUNNERS:
        # A node pack's class: the catalog lists it (and validation lets it through) only when installed.
        return wanclip_nodes.RUNNERS[class_type](inputs, ctx)
    return RUNNERS[class_type](inputs, ctx)


def _loader(inputs: dict, ctx: Ctx, class_type: str):
    key, folder = LOADER_FOLDER[class_type]
    seconds = ctx.load(folder, inputs[key])
    if seconds:
        ctx.activity("loading")
    ctx.sleep(seconds)


def unet_loader(inputs, ctx):
    _loader(inputs, ctx, "UNETLoader")
    return ({"unet": inputs["unet_name"]},), None


def lora_loader(inputs, ctx):
    _loader(inputs, ctx, "LoraLoaderModelOnly")
    return (dict(inputs["model"], lora=inputs["lora_name"]),), None


def model_sampling(inputs, ctx):
    return (dict(inputs["model"], shift=inputs["shift"]),), None


def clip_loader(inputs, ctx):
    _loader(inputs, ctx, "CLIPLoader")
    # A base-sized UMT5 (te_umt5_base_sized sample) encodes to 768 wide, the DiT expects 4096.
    dim = 768 if "base" in inputs["clip_name"].lower() else 4096
    return ({"clip": inputs["clip_name"], "dim": dim},), None


def clip_text_encode(inputs, ctx):
    ctx.sleep(ctx.step_seconds * 0.05)
    return ({"text": inputs["text"], "dim": inputs["clip"]["dim"]},), None


def empty_latent(inputs, ctx):
    latent = {
        "width": inputs["width"] // 8 * 8, "height": inputs["height"] // 8 * 8,
        "frames": (inputs["length"] - 1) // 4 + 1, "batch": inputs["batch_size"], "channels": 16,
        "seed": None, "text": None,
    }
    return (latent,), None


def load_image(inputs, ctx):
    """nodes.py LoadImage: the file in input/ (EXIF-rotated, RGB); a vanished file fails like open()."""
    name = inputs["image"]
    with Image.open(ctx.image_path(name)) as img:
        picture = Picture.from_image(ImageOps.exif_transpose(img), name)
    return (picture, {"mask": name}), None


def _image_to_video(inputs, ctx, start: str, end: str | None):
    """comfy_extras/nodes_wan.py: an empty latent that carries the pictures, which the real node
    upscales to width x height ("bilinear", crop "center") and VAE-encodes into the conditioning.
    The sim keeps them on the latent, so VAEDecode can start (or end) the clip on them."""
    (latent,), _ = empty_latent(inputs, ctx)
    pictures = {"start": inputs.get(start), "end": inputs.get(end) if end else None}
    frames = latent["batch"] * (4 * latent["frames"] - 3)
    if any(pictures.values()):
        ctx.sleep(ctx.step_seconds * 0.3 * frames / 81)  # the VAE encode of the image(s)
    for key, picture in pictures.items():
        latent[key] = picture.fitted(latent["width"], latent["height"]) if picture is not None else None
    return (dict(inputs["positive"]), dict(inputs["negative"]), latent), None


def wan_image_to_video(inputs, ctx):
    return _image_to_video(inputs, ctx, "start_image", None)


def wan_first_last_frame_to_video(inputs, ctx):
    return _image_to_video(inputs, ctx, "start_image", "end_image")


def ksampler_advanced(inputs, ctx):
    latent = dict(inputs["latent_image"])
    positive = inputs["positive"]
    n = sampler_steps(inputs)
    if n > 0 and positive["dim"] != 4096:
        tokens = len(positive["text"].split()) + 1
        raise NodeError("RuntimeError", f"mat1 and mat2 shapes cannot be multiplied ({tokens}x{positive['dim']} and 4096x128)")
    per_step = ctx.step_seconds * step_scale(latent["frames"])
    if n > 0:
        ctx.activity("sampling")
    for i in range(1, n + 1):
        ctx.sleep(per_step)
        ctx.step(i, n)
    if inputs["add_noise"] == "enable":
        latent["seed"] = inputs["noise_seed"]
    if latent["text"] is None:
        latent["text"] = positive["text"]
    return (latent,), None


def vae_loader(inputs, ctx):
    if inputs["vae_name"] != "pixel_space":
        _loader(inputs, ctx, "VAELoader")
    # The Wan 2.2 VAE (for the 5B model) has 48 latent channels; the 14B experts make 16.
    channels = 48 if "wan2.2_vae" in inputs["vae_name"] else 16
    return ({"vae": inputs["vae_name"], "channels": channels},), None


def vae_decode(inputs, ctx):
    latent, vae = inputs["samples"], inputs["vae"]
    if vae["channels"] != latent["channels"]:
        c, got = vae["channels"], latent["channels"]
        shape = f"[{latent['batch']}, {got}, {latent['frames']}, {latent['height'] // 8}, {latent['width'] // 8}]"
        raise NodeError("RuntimeError", f"Given groups=1, weight of size [{c}, {c}, 1, 1, 1], expected input{shape} to have {c} channels, but got {got} channels instead")
    frames = latent["batch"] * (4 * latent["frames"] - 3)
    ctx.activity("decoding")
    ctx.sleep(ctx.step_seconds * 0.6 * frames / 81)
    start, end = latent.get("start"), latent.get("end")
    if start is None and end is None:
        images = Clip(latent["width"], latent["height"], frames, latent["text"] or "", latent["seed"] or 0)
    else:
        images = Clip(latent["width"], latent["height"], frames, latent["text"] or "", latent["seed"] or 0,
                      start, end, ctx.drift)
    return (images,), None


def create_video(inputs, ctx):
    return ({"images": inputs["images"], "fps": inputs["fps"]},), None


def save_video(inputs, ctx):
    # 0.38's DynamicCombo sends `format.codec` next to `format`; the hidden old `codec` is the
    # fallback (nodes_video.py: `codec = format.get("codec") or codec`).
    fmt = inputs["format"]
    codec = inputs.get("format.codec") or inputs.get("codec") or "auto"
    if fmt not in ("auto", "mp4") or codec not in ("auto", "h264"):
        raise NodeError("ValueError", f"Unsupported video format/codec: {fmt}/{codec}")
    folder, stem, subfolder = save_target(ctx.output_dir, inputs["filename_prefix"])
    counter = next_counter(folder, re.escape(stem) + r"_(\d+)_\..+")
    name = f"{stem}_{counter:05}_.mp4"
    video = inputs["video"]
    write_mp4(folder / name, video["images"], video["fps"])
    # 0.38's SaveVideo also outputs its VIDEO; the earlier one has no outputs (extra slots are unused).
    return (video,), {"images": [{"filename": name, "subfolder": subfolder, "type": "output"}], "animated": [True]}


def vhs_video_combine(inputs, ctx):
    if inputs["format"] != "video/h264-mp4":
        raise NodeError("ValueError", f"wanclip sim only writes video/h264-mp4, not {inputs['format']}")
    save = bool(inputs["save_output"])
    base = ctx.output_dir if save else ctx.temp_dir
    folder, stem, subfolder = save_target(base, inputs["filename_prefix"])
    counter = next_counter(folder, re.escape(stem) + r"_(\d+)\D*\..+")
    clip: Clip = inputs["images"]
    for i in range(1, clip.frames + 1):
        ctx.step(i, clip.frames)  # VHS reports a progress bar while it writes frames
    png, mp4 = f"{stem}_{counter:05}.png", f"{stem}_{counter:05}.mp4"
    if inputs.get("save_metadata", True) is not False:
        write_metadata_png(folder / png, clip, ctx.prompt)
    write_mp4(folder / mp4, clip, float(inputs["frame_rate"]))
    entry = {
        "filename": mp4, "subfolder": subfolder, "type": "output" if save else "temp",
        "format": inputs["format"], "frame_rate": float(inputs["frame_rate"]), "workflow": png,
        "fullpath": str(folder / mp4),
    }
    return ((save, [str(folder / png), str(folder / mp4)]),), {"gifs": [entry]}


RUNNERS = {
    "UNETLoader": unet_loader,
    "LoraLoaderModelOnly": lora_loader,
    "ModelSamplingSD3": model_sampling,
    "CLIPLoader": clip_loader,
    "CLIPTextEncode": clip_text_encode,
    "EmptyHunyuanLatentVideo": empty_latent,
    "LoadImage": load_image,
    "WanImageToVideo": wan_image_to_video,
    "WanFirstLastFrameToVideo": wan_first_last_frame_to_video,
    "KSamplerAdvanced": ksampler_advanced,
    "VAELoader": vae_loader,
    "VAEDecode": vae_decode,
    "CreateVideo": create_video,
    "SaveVideo": save_video,
    "VHS_VideoCombine": vhs_video_combine,
}
