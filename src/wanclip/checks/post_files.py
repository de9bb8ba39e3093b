"""Whether a server has the model files a clip's post step needs, each a named result with its fix.

Pure over the server's ``/object_info`` of ``POST_MODEL_CLASSES``, so render's preflight can refuse
before any GPU work and ``wanclip doctor`` reports the same. It reads the loaders' folder lists
itself (``FrameInterpolationModelLoader.model_name``, ``UpscaleModelLoader.model_name``, and for
SeedVR2 ``UNETLoader.unet_name`` / ``VAELoader.vae_name``) and, for a file it lacks, names the
``wanclip setup --with interpolation`` or ``--with upscale`` line that installs it.

A stage is fine when the server can run it with a file it lists, the way the post graph chooses:
- interpolation: the core loader lists a file (``INTERPOLATION_MODEL``, else any other RIFE or FILM
  file it lists), or the RIFE VFI custom node is there (it fetches its own checkpoint);
- upscale: SeedVR2's node, a SeedVR2 model and a SeedVR2 VAE are there, or the model upscaler lists a file.
Otherwise every file the present nodes would need is missing (one check each). A server with none of
a stage's nodes gets no check here: which node to install is ``planning.postgraph.unavailable``'s message.
"""

from __future__ import annotations

from dataclasses import dataclass

from wanclip.checks.graph import Check, combo_options, command_for, input_spec, model_check
from wanclip.comfy.capabilities import object_info as read_object_info
from wanclip.planning import post_models

INTERPOLATION_LOADER = "FrameInterpolationModelLoader"  # core, with FrameInterpolate
RIFE_VFI = "RIFE VFI"  # ComfyUI-Frame-Interpolation (Fannovel16): fetches its own ckpt_name on first use
UPSCALE_LOADER = "UpscaleModelLoader"  # core, with ImageUpscaleWithModel
SEEDVR2_NODE = "SeedVR2Conditioning"  # core SeedVR2 (with SeedVR2Preprocess / SeedVR2PostProcessing)
# Every class whose /object_info these checks read (a class the server lacks is simply absent).
POST_MODEL_CLASSES = (INTERPOLATION_LOADER, RIFE_VFI, UPSCALE_LOADER, SEEDVR2_NODE, "UNETLoader", "VAELoader")


@dataclass(frozen=True)
class PostNeed:
    """What a clip's post step asks of the server."""

    interpolate: bool
    upscale: bool

    @classmethod
    def of(cls, job) -> PostNeed:
        """From a ``planning.post.PostJob`` (or anything with ``interpolating`` / ``upscaling``)."""
        return cls(bool(job.interpolating), bool(job.upscaling))


def post_object_info(client, caps=None) -> dict:
    """The server's ``/object_info`` of ``POST_MODEL_CLASSES`` (one request each, at once)."""
    return read_object_info(client, POST_MODEL_CLASSES, caps)


def post_model_checks(need: PostNeed, object_info: dict) -> list[Check]:
    """One check per stage ``need`` asks for that the server has a node for: ok (and which file the
    post graph will load), or one failed check per missing file with the setup line."""
    checks = []
    if need.interpolate:
        checks += _interpolation(object_info)
    if need.upscale:
        checks += _upscale(object_info)
    return checks


def missing_post_models(need: PostNeed, object_info: dict) -> list[Check]:
    """The failed ``post_model_checks``: what preflight refuses the render for (empty: nothing missing)."""
    return [c for c in post_model_checks(need, object_info) if not c.ok]


def _options(object_info: dict, class_type: str, name: str) -> list[str] | None:
    """The choices of one loader input; None when the server has no such class."""
    info = object_info.get(class_type)
    if not isinstance(info, dict):
        return None
    return [o.replace("\\", "/") for o in combo_options(input_spec(info, name)) or []]


def _missing(name: str, folder: str, where: str, options: list[str]) -> Check:
    return model_check(name, options, folder, where, installable=True, command=command_for(f"{folder}/{name}"))


def _interpolation(object_info: dict) -> list[Check]:
    core = _options(object_info, INTERPOLATION_LOADER, "model_name")
    if core:
        used = post_models.INTERPOLATION_MODEL if post_models.INTERPOLATION_MODEL in core else core[0]
        return [Check("post interpolation", True, f"{INTERPOLATION_LOADER} lists {used} (core FrameInterpolate)")]
    if RIFE_VFI in object_info:
        return [Check("post interpolation", True, f"{RIFE_VFI} (ComfyUI-Frame-Interpolation) fetches its own "
                      f"checkpoint ({post_models.RIFE_VFI_CKPT}) on first use")]
    if core is None:
        return []
    return [_missing(post_models.INTERPOLATION_MODEL, "frame_interpolation", f"{INTERPOLATION_LOADER}.model_name",
                     core)]


def _seedvr2_files(object_info: dict) -> tuple[list[str], list[str], list[str], list[str]]:
    """(SeedVR2 models, SeedVR2 VAEs, all UNETLoader options, all VAELoader options) the server lists."""
    unets = _options(object_info, "UNETLoader", "unet_name") or []
    vaes = _options(object_info, "VAELoader", "vae_name") or []
    return ([n for n in unets if "seedvr2" in _base(n)],
            [n for n in vaes if "seedvr2" in _base(n) or _base(n).startswith("ema_vae")], unets, vaes)


def _base(name: str) -> str:
    return name.rsplit("/", 1)[-1].lower()


def _upscale(object_info: dict) -> list[Check]:
    models, vaes, unets, all_vaes = _seedvr2_files(object_info)
    seedvr2 = SEEDVR2_NODE in object_info
    if seedvr2 and models and vaes:
        return [Check("post upscale", True, f"SeedVR2 with {models[0]} and {vaes[0]}")]
    upscalers = _options(object_info, UPSCALE_LOADER, "model_name")
    if upscalers:
        used = post_models.UPSCALE_MODEL if post_models.UPSCALE_MODEL in upscalers else upscalers[0]
        return [Check("post upscale", True, f"{UPSCALE_LOADER} lists {used} (core ImageUpscaleWithModel)")]
    missing = []
    if seedvr2 and not models:
        missing.append(_missing(post_models.SEEDVR2_MODEL, "diffusion_models", "UNETLoader.unet_name for SeedVR2",
                                unets))
    if seedvr2 and not vaes:
        missing.append(_missing(post_models.SEEDVR2_VAE, "vae", "VAELoader.vae_name for SeedVR2", all_vaes))
    if upscalers is not None:
        missing.append(_missing(post_models.UPSCALE_MODEL, "upscale_models", f"{UPSCALE_LOADER}.model_name",
                                upscalers))
    return missing
