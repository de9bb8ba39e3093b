"""The post stage's graph: one clip in, the same clip upscaled and/or interpolated out (issue 21).

Pure: ``/object_info`` in, an API-format graph out. The client reads the schemas of
``POST_CLASSES`` from the server, ``post_nodes`` says what that server offers, ``unavailable``
says why a job cannot run there (and what to do), ``post_graph`` builds the graph.

Order inside the graph: load the clip -> upscale -> interpolate -> ``CreateVideo(fps=job.fps)`` ->
``SaveVideo`` (mp4, h264). Upscaling comes first, so the upscaler sees ``base_frames`` frames.

Routes, the first a server offers wins:

- load: core ``LoadVideo`` + ``GetVideoComponents``; else ``VHS_LoadVideo`` (VideoHelperSuite).
- interpolate: core ``FrameInterpolationModelLoader`` + ``FrameInterpolate``
  (comfy_extras/nodes_frame_interpolation.py); else ``RIFE VFI`` (ComfyUI-Frame-Interpolation).
- upscale: core SeedVR2 (comfy_extras/nodes_seedvr.py, built like ComfyUI's "SeedVR2: Upscale
  Video" template: ``ImageScale`` to the output size -> ``SeedVR2Preprocess`` -> ``VAEEncodeTiled``
  -> ``SeedVR2TemporalChunk`` -> ``SeedVR2Conditioning`` -> ``KSampler`` (1 step) ->
  ``SeedVR2TemporalMerge`` -> ``VAEDecodeTiled`` -> ``SeedVR2PostProcessing``); else
  ``UpscaleModelLoader`` + ``ImageUpscaleWithModel``, then ``ImageScale`` (lanczos) to the exact
  output size when the model's factor does not give it.

A route whose nodes exist but whose loader lists no model file is chosen only when no other route
can run; ``unavailable`` then names the missing file.

Model files (``planning.post_models``): the named file when the server lists it; otherwise
another file of the same kind the loader lists (the first in the server's order; for SeedVR2 only
names with "seedvr2" in them, the VAE also with "vae"); none: unavailable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from wanclip.planning.post import PostJob
from wanclip.planning.post_models import (
    INTERPOLATION_MODEL,
    RIFE_VFI_CKPT,
    SEEDVR2_MODEL,
    SEEDVR2_VAE,
    UPSCALE_MODEL,
    UPSCALE_MODEL_SCALE,
)

OUTPUT = "save"
VIDEO_INPUT = "load"

CORE_LOAD = ("LoadVideo", "GetVideoComponents")
VHS_LOAD = "VHS_LoadVideo"
CORE_INTERPOLATE = ("FrameInterpolationModelLoader", "FrameInterpolate")
RIFE_VFI = "RIFE VFI"
MODEL_UPSCALE = ("UpscaleModelLoader", "ImageUpscaleWithModel", "ImageScale")
SEEDVR2 = ("UNETLoader", "VAELoader", "ImageScale", "SeedVR2Preprocess", "VAEEncodeTiled", "SeedVR2TemporalChunk",
           "SeedVR2Conditioning", "KSampler", "SeedVR2TemporalMerge", "VAEDecodeTiled", "SeedVR2PostProcessing")
SAVE = ("CreateVideo", "SaveVideo")

POST_CLASSES: tuple[str, ...] = tuple(dict.fromkeys(
    (*CORE_LOAD, VHS_LOAD, *CORE_INTERPOLATE, RIFE_VFI, *MODEL_UPSCALE, *SEEDVR2, *SAVE)))

# SeedVR2 settings of the template: one step, VAE tiles of 512 px (128 overlap), 64 frames (8
# overlap), 4 latent frames shared between temporal chunks, colours matched back in Lab.
SEEDVR2_TILES = {"tile_size": 512, "overlap": 128, "temporal_size": 64, "temporal_overlap": 8}
SEEDVR2_CHUNK_OVERLAP = 4
SEEDVR2_SEED = 42

SETUP_INTERPOLATION = "`wanclip setup --with interpolation`"
SETUP_UPSCALE = "`wanclip setup --with upscale`"


@dataclass(frozen=True)
class PostNodes:
    """What one server offers for the post stage (see the module's docstring for the routes)."""

    interpolate: str | None  # "core" | "rife-vfi" | None
    upscale: str | None  # "seedvr2" | "model" | None
    load: str | None  # "core" | "vhs" | None
    interpolation_models: tuple[str, ...] = ()  # the core loader's files, or RIFE VFI's ckpt_name options
    upscale_models: tuple[str, ...] = ()
    seedvr2_models: tuple[str, ...] = ()  # UNETLoader's files with "seedvr2" in the name
    seedvr2_vaes: tuple[str, ...] = ()  # VAELoader's files with "seedvr2" in the name


def _options(object_info: dict, cls: str, name: str) -> tuple[str, ...]:
    """A combo's options as /object_info spells it: ``[[...], {...}]`` (V1) or ``["COMBO", {"options": [...]}]``."""
    spec = ((object_info.get(cls) or {}).get("input") or {})
    spec = (spec.get("required") or {}).get(name) or (spec.get("optional") or {}).get(name)
    if not spec:
        return ()
    if isinstance(spec[0], list):
        return tuple(str(o) for o in spec[0])
    if spec[0] == "COMBO" and len(spec) > 1 and isinstance(spec[1], dict):
        return tuple(str(o) for o in spec[1].get("options", []))
    return ()


def _has(object_info: dict, classes) -> bool:
    return all(c in object_info for c in classes)


def post_nodes(object_info: dict) -> PostNodes:
    """What the server offers, from ``{class: schema}`` for ``POST_CLASSES`` (a missing class is absent)."""
    load = "core" if _has(object_info, CORE_LOAD) else "vhs" if VHS_LOAD in object_info else None

    core_models = _options(object_info, "FrameInterpolationModelLoader", "model_name")
    rife_models = _options(object_info, RIFE_VFI, "ckpt_name")
    core_i, rife = _has(object_info, CORE_INTERPOLATE), RIFE_VFI in object_info
    if core_i and (core_models or not rife):
        interpolate, interpolation_models = "core", core_models
    elif rife:
        interpolate, interpolation_models = "rife-vfi", rife_models
    else:
        interpolate, interpolation_models = None, ()

    upscale_models = _options(object_info, "UpscaleModelLoader", "model_name")
    seedvr2_models = tuple(n for n in _options(object_info, "UNETLoader", "unet_name") if "seedvr2" in n.lower())
    seedvr2_vaes = tuple(n for n in _options(object_info, "VAELoader", "vae_name")
                         if "seedvr2" in n.lower() and "vae" in n.lower())
    seedvr2, model = _has(object_info, SEEDVR2), _has(object_info, MODEL_UPSCALE)
    if seedvr2 and ((seedvr2_models and seedvr2_vaes) or not (model and upscale_models)):
        upscale = "seedvr2"
    elif model:
        upscale = "model"
    else:
        upscale = None
    return PostNodes(interpolate, upscale, load, interpolation_models, upscale_models, seedvr2_models, seedvr2_vaes)


def _pick(wanted: str, listed: tuple[str, ...]) -> str | None:
    """The wanted file when listed, else the first listed one, else None."""
    return wanted if wanted in listed else (listed[0] if listed else None)


def unavailable(job: PostJob, nodes: PostNodes) -> str | None:
    """None when ``nodes`` can run ``job``; else why not and what to do."""
    if nodes.load is None:
        return ("no video loading node: this ComfyUI has neither core LoadVideo + GetVideoComponents nor "
                "VHS_LoadVideo; update ComfyUI, or install ComfyUI-VideoHelperSuite")
    if job.interpolating:
        if nodes.interpolate is None:
            return ("no frame interpolation node: update ComfyUI to a version with core FrameInterpolate, or "
                    f"install ComfyUI-Frame-Interpolation (RIFE VFI); then {SETUP_INTERPOLATION}")
        if _pick(INTERPOLATION_MODEL if nodes.interpolate == "core" else RIFE_VFI_CKPT,
                 nodes.interpolation_models) is None:
            return (f"no frame interpolation model: models/frame_interpolation/ holds none (wanclip uses "
                    f"{INTERPOLATION_MODEL}); run {SETUP_INTERPOLATION}")
    if job.upscaling:
        if nodes.upscale is None:
            return ("no upscaler node: this ComfyUI has neither UpscaleModelLoader + ImageUpscaleWithModel + "
                    f"ImageScale nor the core SeedVR2 nodes; update ComfyUI, then {SETUP_UPSCALE}")
        if nodes.upscale == "model" and _pick(UPSCALE_MODEL, nodes.upscale_models) is None:
            return (f"no upscale model: models/upscale_models/ holds none (wanclip uses {UPSCALE_MODEL}); "
                    f"run {SETUP_UPSCALE}")
        if nodes.upscale == "seedvr2":
            if _pick(SEEDVR2_MODEL, nodes.seedvr2_models) is None:
                return (f"no SeedVR2 model: models/diffusion_models/ holds none (wanclip uses {SEEDVR2_MODEL}); "
                        f"run {SETUP_UPSCALE}")
            if _pick(SEEDVR2_VAE, nodes.seedvr2_vaes) is None:
                return f"no SeedVR2 VAE: models/vae/ holds none (wanclip uses {SEEDVR2_VAE}); run {SETUP_UPSCALE}"
    return None


def model_scale(name: str) -> int | None:
    """The factor an upscale model's file name states (``RealESRGAN_x2plus``, ``4x-UltraSharp``), if any."""
    if name == UPSCALE_MODEL:
        return UPSCALE_MODEL_SCALE
    found = re.search(r"(?<![a-z0-9])x(\d)(?!\d)|(?<!\d)(\d)x(?![a-z0-9]*\d)", name.lower())
    return int(found.group(1) or found.group(2)) if found else None


def _node(class_type: str, title: str, **inputs) -> dict:
    return {"class_type": class_type, "inputs": inputs, "_meta": {"title": title}}


def _scale(image: list, width: int, height: int) -> dict:
    return _node("ImageScale", "Scale to the output size", image=image, upscale_method="lanczos", width=width,
                 height=height, crop="disabled")


def _load(graph: dict, nodes: PostNodes, video: str) -> list:
    if nodes.load == "core":
        graph[VIDEO_INPUT] = _node("LoadVideo", "Load the rendered clip", file=video)
        graph["frames"] = _node("GetVideoComponents", "Its frames", video=[VIDEO_INPUT, 0])
        return ["frames", 0]
    graph[VIDEO_INPUT] = _node(VHS_LOAD, "Load the rendered clip", video=video, force_rate=0, custom_width=0,
                               custom_height=0, frame_load_cap=0, skip_first_frames=0, select_every_nth=1,
                               format="None")
    return [VIDEO_INPUT, 0]


def _upscale(graph: dict, job: PostJob, nodes: PostNodes, images: list) -> list:
    if nodes.upscale == "model":
        name = _pick(UPSCALE_MODEL, nodes.upscale_models)
        graph["upscale_model"] = _node("UpscaleModelLoader", "Upscale model", model_name=name)
        graph["upscale"] = _node("ImageUpscaleWithModel", "Upscale", upscale_model=["upscale_model", 0], image=images)
        factor = model_scale(name)
        if factor is not None and (job.base_width * factor, job.base_height * factor) == (job.width, job.height):
            return ["upscale", 0]
        graph["resize"] = _scale(["upscale", 0], job.width, job.height)
        return ["resize", 0]
    graph["resize"] = _scale(images, job.width, job.height)
    graph["seedvr2_model"] = _node("UNETLoader", "SeedVR2 model", unet_name=_pick(SEEDVR2_MODEL, nodes.seedvr2_models),
                                   weight_dtype="default")
    graph["seedvr2_vae"] = _node("VAELoader", "SeedVR2 VAE", vae_name=_pick(SEEDVR2_VAE, nodes.seedvr2_vaes))
    graph["seedvr2_pre"] = _node("SeedVR2Preprocess", "Pre-Process SeedVR2 Input", resized_images=["resize", 0])
    graph["seedvr2_encode"] = _node("VAEEncodeTiled", "VAE Encode (Tiled)", pixels=["seedvr2_pre", 0],
                                    vae=["seedvr2_vae", 0], **SEEDVR2_TILES)
    graph["seedvr2_chunk"] = _node("SeedVR2TemporalChunk", "Split SeedVR2 Latent", latent=["seedvr2_encode", 0],
                                   temporal_overlap=SEEDVR2_CHUNK_OVERLAP, chunking_mode="auto")
    graph["seedvr2_cond"] = _node("SeedVR2Conditioning", "Apply SeedVR2 Conditioning", model=["seedvr2_model", 0],
                                  vae_conditioning=["seedvr2_chunk", 0])
    graph["seedvr2_sample"] = _node("KSampler", "KSampler (1 step)", model=["seedvr2_model", 0], seed=SEEDVR2_SEED,
                                    steps=1, cfg=1.0, sampler_name="euler", scheduler="simple",
                                    positive=["seedvr2_cond", 0], negative=["seedvr2_cond", 1],
                                    latent_image=["seedvr2_chunk", 0], denoise=1.0)
    graph["seedvr2_merge"] = _node("SeedVR2TemporalMerge", "Merge SeedVR2 Latents", latents=["seedvr2_sample", 0],
                                   temporal_overlap=["seedvr2_chunk", 1])
    graph["seedvr2_decode"] = _node("VAEDecodeTiled", "VAE Decode (Tiled)", samples=["seedvr2_merge", 0],
                                    vae=["seedvr2_vae", 0], **SEEDVR2_TILES)
    graph["upscale"] = _node("SeedVR2PostProcessing", "Post-Process SeedVR2 Output", images=["seedvr2_decode", 0],
                             original_resized_images=["resize", 0], color_correction_method="lab")
    return ["upscale", 0]


def _interpolate(graph: dict, job: PostJob, nodes: PostNodes, images: list) -> list:
    if nodes.interpolate == "core":
        graph["interpolation_model"] = _node("FrameInterpolationModelLoader", "Frame interpolation model",
                                             model_name=_pick(INTERPOLATION_MODEL, nodes.interpolation_models))
        graph["interpolate"] = _node("FrameInterpolate", "Interpolate", model=["interpolation_model", 0],
                                     images=images, multiplier=job.interpolate)
    else:
        graph["interpolate"] = _node(RIFE_VFI, "Interpolate", ckpt_name=_pick(RIFE_VFI_CKPT, nodes.interpolation_models),
                                     frames=images, clear_cache_after_n_frames=10, multiplier=job.interpolate,
                                     fast_mode=True, ensemble=True, scale_factor=1.0)
    return ["interpolate", 0]


def post_graph(job: PostJob, nodes: PostNodes, video: str, prefix: str) -> dict:
    """The API-format graph that turns the uploaded clip ``video`` into ``job``'s clip, saved by
    ``SaveVideo`` (node ``OUTPUT``) under ``prefix``. ValueError(unavailable(...)) when it cannot.

    SaveVideo gets ``format: mp4`` and ``codec: h264`` as the shipped core workflows spell them: the
    older SaveVideo's combos, and the hidden ``codec`` a DynamicCombo SaveVideo (0.33 on) still takes
    (nodes_video.py: ``codec = format.get("codec") or codec``)."""
    why = unavailable(job, nodes)
    if why is not None:
        raise ValueError(why)
    graph: dict = {}
    images = _load(graph, nodes, video)
    if job.upscaling:
        images = _upscale(graph, job, nodes, images)
    if job.interpolating:
        images = _interpolate(graph, job, nodes, images)
    graph["video"] = _node("CreateVideo", "Create Video", images=images, fps=float(job.fps))
    graph[OUTPUT] = _node("SaveVideo", "Save Video", video=["video", 0], filename_prefix=prefix, format="mp4",
                          codec="h264")
    return graph
