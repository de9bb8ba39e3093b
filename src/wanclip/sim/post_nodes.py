"""What the post stage's nodes do in the simulator: load a clip's real frames, upscale them,
interpolate them; the core CreateVideo/SaveVideo (``nodes.py``) write the result.

Frames flow as ``video.Frames``, made on demand, so the pixels are worked out only while SaveVideo
encodes; each node pays its cost when it runs:

- a model load on first use (``ctx.load``, weighed by ``LOAD_WEIGHT``), like the generation models;
- interpolation: ``INTERPOLATE_SECONDS`` x step_seconds per new frame, with progress per frame
  (FrameInterpolate's ProgressBar counts the new frames);
- the model upscaler: ``UPSCALE_SECONDS`` x step_seconds per input frame and megapixel;
- SeedVR2: its one sampler step costs ``SEEDVR2_SECONDS`` x step_seconds per output frame and megapixel.

The sim's interpolation is a cross-fade of the two neighbours (``N`` frames -> ``(N - 1) * m + 1``,
every ``m``-th frame an original one); its upscalers resize (Lanczos).
"""

from __future__ import annotations

import re

from PIL import Image, ImageOps

from wanclip.sim.node_base import Ctx, NodeError
from wanclip.sim.video import Frames, Picture, frames_of, video_frames

INTERPOLATE_SECONDS = 0.02
UPSCALE_SECONDS = 0.2
SEEDVR2_SECONDS = 0.6
# GB of the files, against nodes.FULL_SET_WEIGHT (the Wan set): loads of these are short
LOAD_WEIGHT = {"frame_interpolation": 0.02, "upscale_models": 0.07, "rife": 0.02}


def _frames(value, node: str) -> Frames:
    if isinstance(value, Picture):
        return frames_of([value.rgb], value.width, value.height)
    if not isinstance(value, Frames):
        raise NodeError("TypeError", f"{node}: the simulator can only work on frames of a loaded clip or image")
    return value


def _read(ctx: Ctx, name: str) -> tuple[Frames, float]:
    path = ctx.image_path(name)
    if not path.is_file():
        raise NodeError("FileNotFoundError", f"[Errno 2] No such file or directory: '{path}'")
    try:
        return video_frames(path)
    except RuntimeError as exc:
        raise NodeError("ValueError", str(exc)) from exc


def load_video(inputs, ctx):
    """nodes_video.py LoadVideo: a VIDEO of the file in input/ (components are read later)."""
    frames, fps = _read(ctx, inputs["file"])
    return ({"images": frames, "fps": fps},), None


def get_video_components(inputs, ctx):
    video = inputs["video"]
    return (video["images"], None, float(video["fps"])), None


def vhs_load_video(inputs, ctx):
    """VideoHelperSuite's Load Video (Upload): IMAGE, frame_count, audio, video_info. The sim
    honours frame_load_cap, skip_first_frames, select_every_nth and custom_width/height."""
    frames, fps = _read(ctx, inputs["video"])
    skip, nth, cap = int(inputs["skip_first_frames"]), int(inputs["select_every_nth"]), int(inputs["frame_load_cap"])
    kept = list(range(skip, frames.frames, nth))[: cap or None]
    if not kept:
        raise NodeError("RuntimeError", "No frames generated")
    wanted = set(kept)
    picked = Frames(frames.width, frames.height, len(kept), lambda: (
        image for i, image in enumerate(frames.images()) if i in wanted))
    width, height = int(inputs["custom_width"]) or frames.width, int(inputs["custom_height"]) or frames.height
    picked = picked.resized(width, height)
    info = {"source_fps": fps, "source_frame_count": frames.frames, "source_width": frames.width,
            "source_height": frames.height, "loaded_fps": fps / nth, "loaded_frame_count": len(kept),
            "loaded_width": width, "loaded_height": height}
    return (picked, len(kept), None, info), None


def _interpolated(frames: Frames, multiplier: int) -> Frames:
    """``m - 1`` cross-faded frames between each pair: ``(N - 1) * m + 1`` frames."""
    if frames.frames < 2 or multiplier < 2:
        return frames

    def make():
        previous = None
        for image in frames.images():
            if previous is not None:
                for k in range(1, multiplier):
                    yield Image.blend(previous, image, k / multiplier)
            yield image
            previous = image

    return Frames(frames.width, frames.height, (frames.frames - 1) * multiplier + 1, make)


def _interpolate(ctx: Ctx, frames: Frames, multiplier: int) -> Frames:
    out = _interpolated(frames, multiplier)
    new = out.frames - frames.frames
    if new:
        ctx.activity("interpolating")
    for i in range(1, new + 1):
        ctx.sleep(ctx.step_seconds * INTERPOLATE_SECONDS)
        ctx.step(i, new)
    return out


def _load(ctx: Ctx, folder: str, name: str) -> None:
    seconds = ctx.load(folder, name)
    if seconds:
        ctx.activity("loading")
    ctx.sleep(seconds)


def frame_interpolation_model_loader(inputs, ctx):
    _load(ctx, "frame_interpolation", inputs["model_name"])
    return ({"interpolation_model": inputs["model_name"]},), None


def frame_interpolate(inputs, ctx):
    return (_interpolate(ctx, _frames(inputs["images"], "FrameInterpolate"), int(inputs["multiplier"])),), None


def rife_vfi(inputs, ctx):
    """ComfyUI-Frame-Interpolation's RIFE VFI: fetches and loads its ckpt itself on each call."""
    _load(ctx, "rife", inputs["ckpt_name"])
    return (_interpolate(ctx, _frames(inputs["frames"], "RIFE VFI"), int(inputs["multiplier"])),), None


def model_factor(name: str) -> int:
    """The factor an upscale model works at, from its name (RealESRGAN_x2plus: 2); 4 when it says none."""
    found = re.search(r"(?<![a-z0-9])x(\d)(?!\d)|(?<!\d)(\d)x", name.lower())
    return int(found.group(1) or found.group(2)) if found else 4


def upscale_model_loader(inputs, ctx):
    _load(ctx, "upscale_models", inputs["model_name"])
    return ({"upscale_model": inputs["model_name"], "scale": model_factor(inputs["model_name"])},), None


def _pay_pixels(ctx: Ctx, frames: int, width: int, height: int, per: float, activity: str) -> None:
    ctx.activity(activity)
    for i in range(1, frames + 1):
        ctx.sleep(ctx.step_seconds * per * width * height / 1e6)
        ctx.step(i, frames)


def image_upscale_with_model(inputs, ctx):
    frames = _frames(inputs["image"], "ImageUpscaleWithModel")
    scale = inputs["upscale_model"]["scale"]
    _pay_pixels(ctx, frames.frames, frames.width, frames.height, UPSCALE_SECONDS, "upscaling")
    return (frames.resized(frames.width * scale, frames.height * scale),), None


def image_scale(inputs, ctx):
    """nodes.py ImageScale: to width x height (0 keeps the aspect); crop "center" covers and crops."""
    frames = _frames(inputs["image"], "ImageScale")
    width, height = int(inputs["width"]), int(inputs["height"])
    if width == 0 and height == 0:
        return (frames,), None
    width = width or max(1, round(frames.width * height / frames.height))
    height = height or max(1, round(frames.height * width / frames.width))
    if inputs["crop"] == "center":
        return (frames.mapped(width, height, lambda i: ImageOps.fit(i, (width, height), Image.Resampling.LANCZOS)),), None
    return (frames.resized(width, height),), None


# ---- SeedVR2 (comfy_extras/nodes_seedvr.py): the latent carries the padded frames ------------------
def four_n_plus_one(count: int) -> int:
    """nodes_seedvr.py cut_videos: 1 stays, 2-4 become 5, others go up to the next 4n + 1."""
    if count == 1:
        return 1
    if count <= 4:
        return 5
    return count + (-(count - 1)) % 4


def seedvr2_preprocess(inputs, ctx):
    """Pads each frame to a multiple of 16 (black, right and bottom) and the clip to 4n + 1 frames
    (the last frame repeated), as ``_seedvr2_pad`` does."""
    frames = _frames(inputs["resized_images"], "SeedVR2Preprocess")
    width, height = -(-frames.width // 16) * 16, -(-frames.height // 16) * 16
    count = four_n_plus_one(frames.frames)

    def make():
        image = None
        for image in frames.images():
            padded = Image.new("RGB", (width, height))
            padded.paste(image, (0, 0))
            yield padded
        for _ in range(count - frames.frames):
            yield padded

    return (Frames(width, height, count, make),), None


def vae_encode_tiled(inputs, ctx):
    frames = _frames(inputs["pixels"], "VAEEncodeTiled")
    vae = inputs["vae"]
    if "seedvr2" not in vae["vae"].lower():
        raise NodeError("RuntimeError", f"the simulator encodes only SeedVR2 frames with VAEEncodeTiled, not with {vae['vae']}")
    ctx.activity("encoding")
    ctx.sleep(ctx.step_seconds * 0.3 * frames.frames / 81)
    return ({"seedvr2": frames, "frames": (frames.frames - 1) // 4 + 1, "channels": 16},), None


def seedvr2_temporal_chunk(inputs, ctx):
    """The sim samples a clip in one chunk: the list of one latent, overlap 0."""
    return (dict(inputs["latent"]), 0), None


def seedvr2_conditioning(inputs, ctx):
    condition = {"seedvr2": True, "model": inputs["model"]}
    return (condition, dict(condition, negative=True)), None


def ksampler(inputs, ctx):
    latent = dict(inputs["latent_image"])
    frames = latent.get("seedvr2")
    if frames is None:
        raise NodeError("RuntimeError", "the simulator runs KSampler only in a SeedVR2 graph")
    n = int(inputs["steps"])
    ctx.activity("sampling")
    for i in range(1, n + 1):
        ctx.sleep(ctx.step_seconds * SEEDVR2_SECONDS * frames.frames * frames.width * frames.height / 1e6)
        ctx.step(i, n)
    return (latent,), None


def seedvr2_temporal_merge(inputs, ctx):
    return (dict(inputs["latents"]),), None


def vae_decode_tiled(inputs, ctx):
    latent = inputs["samples"]
    if "seedvr2" not in latent:
        raise NodeError("RuntimeError", "the simulator decodes only SeedVR2 latents with VAEDecodeTiled")
    frames = latent["seedvr2"]
    ctx.activity("decoding")
    ctx.sleep(ctx.step_seconds * 0.6 * frames.frames / 81)
    return (frames,), None


def seedvr2_post_processing(inputs, ctx):
    """Cuts the padding off: the frames and size of ``original_resized_images`` (each side even)."""
    decoded = _frames(inputs["images"], "SeedVR2PostProcessing")
    original = _frames(inputs["original_resized_images"], "SeedVR2PostProcessing")
    width, height = min(decoded.width, original.width), min(decoded.height, original.height)
    width, height = width - width % 2, height - height % 2
    count = min(decoded.frames, original.frames)

    def make():
        for i, image in enumerate(decoded.images()):
            if i >= count:
                return
            yield image.crop((0, 0, width, height))

    return (Frames(width, height, count, make),), None


RUNNERS = {
    "LoadVideo": load_video,
    "GetVideoComponents": get_video_components,
    "VHS_LoadVideo": vhs_load_video,
    "FrameInterpolationModelLoader": frame_interpolation_model_loader,
    "FrameInterpolate": frame_interpolate,
    "RIFE VFI": rife_vfi,
    "UpscaleModelLoader": upscale_model_loader,
    "ImageUpscaleWithModel": image_upscale_with_model,
    "ImageScale": image_scale,
    "SeedVR2Preprocess": seedvr2_preprocess,
    "VAEEncodeTiled": vae_encode_tiled,
    "SeedVR2TemporalChunk": seedvr2_temporal_chunk,
    "SeedVR2Conditioning": seedvr2_conditioning,
    "KSampler": ksampler,
    "SeedVR2TemporalMerge": seedvr2_temporal_merge,
    "VAEDecodeTiled": vae_decode_tiled,
    "SeedVR2PostProcessing": seedvr2_post_processing,
}
