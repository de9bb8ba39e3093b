"""Edit API-format ComfyUI graphs by role, never by node id. Pure: dicts in, dicts out.

A Wan 2.2 14B text-to-video graph has two experts, each a ``KSamplerAdvanced``: the high-noise
one adds the noise (``add_noise: enable``) and runs the first steps; the low-noise one continues
from its latent. Everything else is found by following links from those two samplers, so a user's
own export — other ids (``"128:81"``), titles, extra nodes — works as long as it has the roles.

An image-to-video graph is the same with one more node between the prompts and the samplers:
``WanImageToVideo`` (or ``WanFirstLastFrameToVideo``) takes the two ``CLIPTextEncode`` outputs, the
VAE and a ``LoadImage`` as its start image, and its positive, negative and latent outputs feed both
samplers. Its width/height/length make it the latent role as well.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

from wanclip.errors import WorkflowError

SAMPLER_CLASSES = ("KSamplerAdvanced",)
TEXT_CLASSES = ("CLIPTextEncode",)
LATENT_INPUTS = ("width", "height", "length")
IMAGE_TO_VIDEO = "WanImageToVideo"
FIRST_LAST_FRAME = "WanFirstLastFrameToVideo"  # the same inputs plus an optional end_image
IMAGE_TO_VIDEO_CLASSES = (IMAGE_TO_VIDEO, FIRST_LAST_FRAME)
IMAGE_CLASSES = ("LoadImage",)
IMAGE_ROLES = ("start_image", "end_image")  # the image-to-video node's inputs, and the Roles fields
VHS_OUTPUT = "VHS_VideoCombine"
CORE_OUTPUTS = ("SaveVideo", "SaveWEBM", "SaveAnimatedWEBP")
ASYNC_OUTPUT = "WanclipSaveVideo"  # wanclip's node pack (`wanclip setup --nodes`): encodes in the background
# Loader input -> the ComfyUI models folder its file names come from.
LOADER_INPUTS = {
    ("UNETLoader", "unet_name"): "diffusion_models",
    ("CLIPLoader", "clip_name"): "text_encoders",
    ("VAELoader", "vae_name"): "vae",
    ("LoraLoaderModelOnly", "lora_name"): "loras",
    ("LoraLoader", "lora_name"): "loras",
}
SHIPPED_WORKFLOW = "wan22_t2v_lightx2v_4step.json"  # the graph `wanclip setup` installs the models of
CORE_WORKFLOW = "wan22_t2v_lightx2v_4step_core.json"  # the same with core video nodes (no VHS)
I2V_WORKFLOW = "wan22_i2v_lightx2v_4step.json"  # image-to-video: `image:`, `end_image:` and `continue:` shots
I2V_CORE_WORKFLOW = "wan22_i2v_lightx2v_4step_core.json"  # the same with core video nodes (no VHS)
# The start_image a continued shot's planned graph carries: its real frame exists only once the
# previous shot has rendered, and the render swaps in the uploaded name (set_image) at submit time.
CONTINUE_PLACEHOLDER = "wanclip-previous-shot-last-frame.png"
# Nodes a value may come from when an input is linked instead of literal (newer exports).
PRIMITIVE_VALUE_INPUTS = ("value", "string", "text", "int", "float")


@dataclass
class Roles:
    """Node ids of every role wanclip edits in one graph."""

    high_sampler: str
    low_sampler: str
    positive: str
    negative: str
    latent: str
    output: str
    output_kind: str  # "vhs", "core" or "async" (WanclipSaveVideo)
    video_fps_node: str  # VHS_VideoCombine / WanclipSaveVideo (frame_rate) or CreateVideo (fps)
    model_sampling: list[str] = field(default_factory=list)  # [high, low] when present
    loras: list[str] = field(default_factory=list)  # LoRA loaders on either expert's path
    experts: list[str] = field(default_factory=list)  # the UNETLoader of each expert ([high, low])
    image_to_video: str | None = None  # WanImageToVideo / WanFirstLastFrameToVideo (also `latent`)
    start_image: str | None = None  # the LoadImage feeding its start_image
    end_image: str | None = None  # the LoadImage feeding its end_image


@dataclass
class ShotParams:
    """What changes per shot. ``None`` keeps the graph's own value."""

    positive: str
    seed: int
    frames: int
    width: int
    height: int
    fps: float
    filename_prefix: str
    negative: str | None = None
    steps: int | None = None
    switch_step: int | None = None
    cfg: float | None = None
    shift: float | None = None
    lora_strength: float | None = None
    weight_dtype: str | None = None  # both experts' UNETLoader weight_dtype (fp8_e4m3fn_fast: faster, less exact)
    distill_loras: tuple[str, str] | None = None  # (high, low): the LightX2V LoRA file of each expert's path
    # File names in ComfyUI's input/ folder, as LoadImage takes them; an image-to-video graph gets
    # exactly these: no start_image unlinks the start frame, an end_image makes it first-last-frame.
    start_image: str | None = None
    end_image: str | None = None


def image_name(sha256_hex: str) -> str:
    """The content-addressed input/ name of an image: ``wanclip-<first 16 hex of its sha256>.png``."""
    digest = sha256_hex.strip().lower()
    if len(digest) < 16 or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError(f"not a sha256 hex digest: {sha256_hex!r}")
    return f"wanclip-{digest[:16]}.png"


def shipped_path(kind: str, name: str) -> Path:
    """A file shipped inside the package (``workflows`` or ``shots``), in a clone or an installed copy."""
    return Path(str(resources.files("wanclip") / "data" / kind / name))


def shipped_graph(name: str = SHIPPED_WORKFLOW) -> dict:
    """One of the graphs shipped in ``workflows/`` (default: the one `wanclip setup` installs for)."""
    return load_graph(shipped_path("workflows", name))


def load_graph(path: Path) -> dict:
    """Read an API-format graph; a UI-format export or unreadable file is refused with the fix."""
    path = Path(path)
    try:
        graph = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise WorkflowError(f"cannot read the workflow: {exc.strerror or exc}",
                            "check the `workflow:` path in the shots file", path=str(path)) from exc
    except ValueError as exc:
        raise WorkflowError(f"the workflow is not valid JSON: {exc}",
                            "export it from ComfyUI with 'Export (API)'", path=str(path)) from exc
    if isinstance(graph, dict) and "prompt" in graph and isinstance(graph["prompt"], dict):
        graph = graph["prompt"]  # a saved POST /prompt body
    if not isinstance(graph, dict) or "nodes" in graph or not graph:
        raise WorkflowError("this is not an API-format graph (it looks like a UI workflow)",
                            "in ComfyUI use Workflow > Export (API) and point `workflow:` at that file",
                            path=str(path))
    for node_id, node in graph.items():
        if not isinstance(node, dict) or "class_type" not in node:
            raise WorkflowError(f"node {node_id!r} has no class_type: not an API-format graph",
                                "export it from ComfyUI with 'Export (API)'", path=str(path))
    return graph


def canonical_json(graph: dict) -> str:
    """The canonical form hashed for the ledger: keys sorted, no whitespace, UTF-8."""
    return json.dumps(graph, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def graph_sha256(graph: dict) -> str:
    return hashlib.sha256(canonical_json(graph).encode("utf-8")).hexdigest()


def is_link(value: object) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str | int)


def _source(graph: dict, value: object) -> str | None:
    if is_link(value) and str(value[0]) in graph:
        return str(value[0])
    return None


def _summary(graph: dict, classes: tuple[str, ...] | None = None) -> str:
    found = [f"{nid} ({n['class_type']})" for nid, n in graph.items()
             if classes is None or n["class_type"] in classes]
    return ", ".join(found) or "none"


def _missing(role: str, wanted: str, found: str) -> WorkflowError:
    return WorkflowError(f"the workflow has no {role}: wanted {wanted}; found {found}",
                         f"use the shipped workflows/{SHIPPED_WORKFLOW} (text-to-video) or workflows/{I2V_WORKFLOW} "
                         "(image-to-video), or export your own graph in API format with both Wan 2.2 experts",
                         role=role)


def _upstream(graph: dict, start: str, input_name: str, classes: tuple[str, ...]) -> str | None:
    """Follow ``input_name`` from ``start``, then any chain of same-typed links, to a node of ``classes``."""
    node_id = _source(graph, graph[start]["inputs"].get(input_name))
    seen: set[str] = set()
    while node_id and node_id not in seen:
        seen.add(node_id)
        node = graph[node_id]
        if node["class_type"] in classes:
            return node_id
        inputs = node.get("inputs", {})
        nxt = inputs.get(input_name) if input_name in inputs else next(
            (v for v in inputs.values() if _source(graph, v)), None)
        node_id = _source(graph, nxt)
    return None


def _model_chain(graph: dict, sampler: str) -> list[str]:
    """Every node on the sampler's ``model`` input path, nearest first."""
    chain, node_id = [], _source(graph, graph[sampler]["inputs"].get("model"))
    while node_id and node_id not in chain:
        chain.append(node_id)
        node_id = _source(graph, graph[node_id].get("inputs", {}).get("model"))
    return chain


def _samplers(graph: dict) -> tuple[str, str]:
    samplers = [nid for nid, n in graph.items() if n["class_type"] in SAMPLER_CLASSES]
    if len(samplers) != 2:
        raise _missing("pair of expert samplers", "two KSamplerAdvanced (high-noise adds noise, low-noise "
                       "continues)", f"{len(samplers)}: {_summary(graph, SAMPLER_CLASSES)}; nodes: {_summary(graph)}")
    high = [s for s in samplers if graph[s]["inputs"].get("add_noise") == "enable"]
    if len(high) != 1:
        raise _missing("noise-adding sampler", "exactly one KSamplerAdvanced with add_noise 'enable'",
                       ", ".join(f"{s} add_noise={graph[s]['inputs'].get('add_noise')!r}" for s in samplers))
    low = next(s for s in samplers if s != high[0])
    if _source(graph, graph[low]["inputs"].get("latent_image")) != high[0]:
        raise _missing("expert chain", f"the low-noise sampler's latent_image linked to the high-noise sampler "
                       f"{high[0]}", f"latent_image={graph[low]['inputs'].get('latent_image')!r}")
    return high[0], low


def _output(graph: dict) -> tuple[str, str, str]:
    outputs = [nid for nid, n in graph.items() if n["class_type"] in (VHS_OUTPUT, ASYNC_OUTPUT, *CORE_OUTPUTS)]
    if len(outputs) != 1:
        raise _missing("video output", f"one {VHS_OUTPUT} or SaveVideo node",
                       f"{len(outputs)}: {_summary(graph, (VHS_OUTPUT, ASYNC_OUTPUT, *CORE_OUTPUTS))}")
    out = outputs[0]
    if graph[out]["class_type"] in (VHS_OUTPUT, ASYNC_OUTPUT):
        return out, "vhs" if graph[out]["class_type"] == VHS_OUTPUT else "async", out
    fps_node = _upstream(graph, out, "video", ("CreateVideo",)) if "video" in graph[out]["inputs"] else None
    if graph[out]["class_type"] != "SaveVideo":
        fps_node = out  # SaveWEBM / SaveAnimatedWEBP carry fps themselves
    if fps_node is None:
        raise _missing("video frame rate", "a CreateVideo node feeding SaveVideo", _summary(graph))
    return out, "core", fps_node


def find_roles(graph: dict) -> Roles:
    """Locate every role; a missing one raises ``WorkflowError`` naming it and what was found."""
    high, low = _samplers(graph)
    texts = {}
    for side in ("positive", "negative"):
        texts[side] = _upstream(graph, high, side, TEXT_CLASSES)
        if texts[side] is None:
            raise _missing(f"{side} prompt", f"a CLIPTextEncode linked to sampler {high}'s {side} input",
                           f"{side}={graph[high]['inputs'].get(side)!r}")
    latent = _source(graph, graph[high]["inputs"].get("latent_image"))
    if latent is None or not all(k in graph[latent]["inputs"] for k in LATENT_INPUTS):
        raise _missing("empty video latent", "EmptyHunyuanLatentVideo or WanImageToVideo (width, height, length) "
                       f"linked to the high-noise sampler {high}",
                       _summary(graph, ("EmptyHunyuanLatentVideo", *IMAGE_TO_VIDEO_CLASSES)))
    images = _image_roles(graph, high, latent)
    output, kind, fps_node = _output(graph)
    chains = [_model_chain(graph, high), _model_chain(graph, low)]
    sampling = [next((n for n in c if graph[n]["class_type"] == "ModelSamplingSD3"), None) for c in chains]
    loras = [n for c in chains for n in c if graph[n]["class_type"].startswith("LoraLoader")]
    experts = [next((n for n in c if graph[n]["class_type"] == "UNETLoader"), None) for c in chains]
    return Roles(high_sampler=high, low_sampler=low, positive=texts["positive"], negative=texts["negative"],
                 latent=latent, output=output, output_kind=kind, video_fps_node=fps_node,
                 model_sampling=[s for s in sampling if s], loras=loras, experts=[e for e in experts if e],
                 **images)


def _image_roles(graph: dict, high: str, latent: str) -> dict[str, str | None]:
    """The image-to-video node (the latent role when it is one) and the LoadImage nodes feeding it."""
    if graph[latent]["class_type"] not in IMAGE_TO_VIDEO_CLASSES:
        return {}
    for side in ("positive", "negative"):
        if _upstream(graph, high, side, IMAGE_TO_VIDEO_CLASSES) != latent:
            raise _missing(f"image-conditioned {side} prompt", f"sampler {high}'s {side} input linked to the "
                           f"{graph[latent]['class_type']} node {latent} that makes its latent",
                           f"{side}={graph[high]['inputs'].get(side)!r}")
    found = {"image_to_video": latent}
    for role in IMAGE_ROLES:
        linked = _source(graph, graph[latent]["inputs"].get(role))
        found[role] = _upstream(graph, latent, role, IMAGE_CLASSES) if linked else None
        if linked and found[role] is None:
            raise _missing(f"{role.replace('_', ' ')} loader", f"a LoadImage linked to node {latent}'s {role} input",
                           f"{role}={graph[latent]['inputs'][role]!r}")
    return found


def _set(graph: dict, node_id: str, name: str, value: object) -> None:
    """Set a literal input; when it is linked to a primitive node, set the primitive's value."""
    inputs = graph[node_id]["inputs"]
    src = _source(graph, inputs.get(name))
    if src is None:
        inputs[name] = value
        return
    src_inputs = graph[src].get("inputs", {})
    key = next((k for k in PRIMITIVE_VALUE_INPUTS if k in src_inputs and not is_link(src_inputs[k])), None)
    if key is None:
        raise WorkflowError(f"input {name!r} of node {node_id} ({graph[node_id]['class_type']}) comes from node "
                            f"{src} ({graph[src]['class_type']}), which wanclip cannot set",
                            f"make {name!r} a plain value in the exported graph", role=name)
    src_inputs[key] = value


def _get(graph: dict, node_id: str, name: str):
    value = graph[node_id]["inputs"].get(name)
    src = _source(graph, value)
    if src is None:
        return value
    src_inputs = graph[src].get("inputs", {})
    return next((src_inputs[k] for k in PRIMITIVE_VALUE_INPUTS if k in src_inputs), None)


def default_negative(graph: dict, roles: Roles | None = None) -> str:
    """The graph's own negative prompt (the standard Wan one in the shipped graphs)."""
    roles = roles or find_roles(graph)
    return str(_get(graph, roles.negative, "text") or "")


def inject(graph: dict, params: ShotParams) -> dict:
    """A new graph with one shot's values set by role; ``graph`` itself is not changed."""
    return inject_shot(graph, params)[0]


def inject_shot(graph: dict, params: ShotParams) -> tuple[dict, Roles]:
    """``inject``, and the new graph's roles (its image loaders may be new nodes): the plan finds a
    shot's roles here, once, and every later use takes them from the planned shot."""
    out = copy.deepcopy(graph)
    roles = find_roles(out)
    _set(out, roles.positive, "text", params.positive)
    if params.negative is not None:
        _set(out, roles.negative, "text", params.negative)
    for name, value in (("width", params.width), ("height", params.height), ("length", params.frames)):
        _set(out, roles.latent, name, value)
    _inject_samplers(out, roles, params)
    _inject_output(out, roles, params)
    _inject_models(out, roles, params)
    return out, _inject_images(out, roles, params)


def _no_image_node(graph: dict, role: str) -> WorkflowError:
    return WorkflowError(f"the shot has {'an end' if role == 'end_image' else 'a start'} image but the workflow "
                         f"has no image-to-video node (WanImageToVideo or WanFirstLastFrameToVideo) to take it; "
                         f"found {_summary(graph)}",
                         f"render image shots with the shipped workflows/{I2V_WORKFLOW}, or export an "
                         "image-to-video graph in API format", role=role)


def _inject_images(graph: dict, roles: Roles, params: ShotParams) -> Roles:
    """Give the image-to-video node exactly the shot's images; a text-to-video graph takes none.
    Returns the roles with the loaders as they now are."""
    wanted = {"start_image": params.start_image, "end_image": params.end_image}
    node_id = roles.image_to_video
    if node_id is None:
        role = next((r for r in IMAGE_ROLES if wanted[r] is not None), None)
        if role is not None:
            raise _no_image_node(graph, role)
        return roles
    loaders: dict[str, str | None] = {}
    node = graph[node_id]
    if params.end_image is not None and node["class_type"] != FIRST_LAST_FRAME:
        node["class_type"] = FIRST_LAST_FRAME
        if "clip_vision_output" in node["inputs"]:  # WanFirstLastFrameToVideo names it per image
            node["inputs"]["clip_vision_start_image"] = node["inputs"].pop("clip_vision_output")
        if node.get("_meta", {}).get("title") == IMAGE_TO_VIDEO:
            node["_meta"]["title"] = FIRST_LAST_FRAME
    for role in IMAGE_ROLES:
        loader = getattr(roles, role)
        if wanted[role] is None:
            if loader is not None:
                del node["inputs"][role]
                _drop_if_unread(graph, loader)
            loaders[role] = None
            continue
        if loader is None or (role == "end_image" and loader == roles.start_image
                              and wanted["start_image"] != wanted["end_image"]):  # one loader fed both
            loader = _new_id(graph, f"{node_id}_{role}")
            graph[loader] = {"inputs": {"image": wanted[role]}, "class_type": IMAGE_CLASSES[0],
                             "_meta": {"title": f"Load Image ({role.replace('_', ' ')})"}}
            node["inputs"][role] = [loader, 0]
        else:
            _set(graph, loader, "image", wanted[role])
        loaders[role] = loader
    return replace(roles, start_image=loaders["start_image"], end_image=loaders["end_image"])


def _new_id(graph: dict, fallback: str) -> str:
    """A node id the graph does not use: the next number when its ids are numbers."""
    numbers = [int(nid) for nid in graph if nid.isdigit()]
    candidate = str(max(numbers) + 1) if numbers else fallback
    while candidate in graph:
        candidate += "_"
    return candidate


def _drop_if_unread(graph: dict, node_id: str) -> None:
    """Remove a node nothing links to any more (an unlinked LoadImage would still need its file)."""
    if not any(_source(graph, v) == node_id for n in graph.values() for v in n.get("inputs", {}).values()):
        del graph[node_id]


def image_names(graph: dict) -> dict[str, str]:
    """Role ("start_image" / "end_image") -> the file name its LoadImage loads; empty for text-to-video."""
    roles = find_roles(graph)
    return {role: str(_get(graph, getattr(roles, role), "image")) for role in IMAGE_ROLES
            if getattr(roles, role) is not None}


def set_image(graph: dict, role: str, name: str, roles: Roles | None = None) -> dict:
    """A new graph whose ``role`` LoadImage loads ``name`` (the name the server's upload answered).
    ``roles``: the graph's, found at plan (found again when not given)."""
    if role not in IMAGE_ROLES:
        raise ValueError(f"unknown image role {role!r}: one of {', '.join(IMAGE_ROLES)}")
    out = copy.deepcopy(graph)
    roles = roles or find_roles(out)
    if roles.image_to_video is None:
        raise _no_image_node(out, role)
    loader = getattr(roles, role)
    if loader is None:
        raise WorkflowError(f"the workflow's {out[roles.image_to_video]['class_type']} node {roles.image_to_video} "
                            f"has no {role} LoadImage to set",
                            f"plan the shot with its {role.replace('_', ' ')} so the graph carries one", role=role)
    _set(out, loader, "image", name)
    return out


def _inject_samplers(graph: dict, roles: Roles, params: ShotParams) -> None:
    high, low = roles.high_sampler, roles.low_sampler
    _set(graph, high, "noise_seed", params.seed)
    _set(graph, low, "noise_seed", params.seed)  # unused (add_noise disable) but kept equal for readers
    steps = params.steps if params.steps is not None else _get(graph, high, "steps")
    if params.steps is not None:
        old_low_end = _get(graph, low, "end_at_step")
        _set(graph, high, "steps", steps)
        _set(graph, low, "steps", steps)
        if isinstance(old_low_end, int) and old_low_end < 10000:
            _set(graph, low, "end_at_step", steps)
    if params.switch_step is not None or params.steps is not None:
        switch = params.switch_step if params.switch_step is not None else steps // 2
        _set(graph, high, "end_at_step", switch)
        _set(graph, low, "start_at_step", switch)
    if params.cfg is not None:
        _set(graph, high, "cfg", params.cfg)
        _set(graph, low, "cfg", params.cfg)


def _inject_output(graph: dict, roles: Roles, params: ShotParams) -> None:
    fps_input = "frame_rate" if roles.output_kind in ("vhs", "async") else "fps"
    _set(graph, roles.video_fps_node, fps_input, params.fps)
    _set(graph, roles.output, "filename_prefix", params.filename_prefix)


# VHS formats WanclipSaveVideo reproduces: (preset, default crf). Others (h265, webm, ...) keep VHS.
ASYNC_FORMATS = {"video/h264-mp4": ("medium", 19), "video/wanclip-h264-ultrafast": ("ultrafast", 17)}
CORE_CRF = 23  # core SaveVideo encodes through PyAV with libx264's default quality


def use_async_output(graph: dict, roles: Roles | None = None) -> dict:
    """A new graph whose output node (found by role) is ``WanclipSaveVideo``, keeping its node id,
    images link, frame rate (literal or link), filename prefix and quality (crf, pixel format).

    Call it only when the server's ``/object_info`` lists ``WanclipSaveVideo``. ``VHS_VideoCombine``
    with ``video/h264-mp4`` keeps its crf and pix_fmt (the same frames, encoded in the background);
    core ``CreateVideo`` -> ``SaveVideo`` (mp4/h264) becomes one node at crf 23, and the CreateVideo
    goes when nothing else reads it. An output this node cannot reproduce (another VHS format,
    audio, ping-pong, a loop, latents through a VAE, SaveWEBM) is left as it is; so is a graph that
    already has it. ``graph`` itself is not changed. ``roles``: the graph's, found at plan."""
    out = copy.deepcopy(graph)
    roles = roles or find_roles(out)
    node = out[roles.output]
    inputs = node["inputs"]
    if roles.output_kind == "vhs":
        fmt = inputs.get("format")
        if (fmt not in ASYNC_FORMATS or inputs.get("audio") is not None or inputs.get("vae") is not None
                or inputs.get("pingpong") is True or inputs.get("loop_count") not in (None, 0)):
            return out
        preset, crf = ASYNC_FORMATS[fmt]
        new = {"images": inputs["images"], "frame_rate": inputs["frame_rate"],
               "filename_prefix": inputs.get("filename_prefix", "video/wanclip"), "crf": inputs.get("crf", crf),
               "pix_fmt": inputs.get("pix_fmt", "yuv420p"), "preset": preset,
               "save_output": inputs.get("save_output", True), "save_metadata": inputs.get("save_metadata", True)}
    elif node["class_type"] == "SaveVideo":
        create = out[roles.video_fps_node]
        codec = inputs.get("format.codec") or inputs.get("codec") or "auto"
        if (create["class_type"] != "CreateVideo" or create["inputs"].get("audio") is not None
                or inputs.get("format", "auto") not in ("auto", "mp4") or codec not in ("auto", "h264")):
            return out
        new = {"images": create["inputs"]["images"], "frame_rate": create["inputs"]["fps"],
               "filename_prefix": inputs.get("filename_prefix", "video/wanclip"), "crf": CORE_CRF,
               "pix_fmt": "yuv420p", "preset": "medium", "save_output": True,
               "save_metadata": True}  # core SaveVideo embeds the prompt and workflow too
        if not any(_source(out, v) == roles.video_fps_node for nid, n in out.items() if nid != roles.output
                   for v in n.get("inputs", {}).values()):
            del out[roles.video_fps_node]
    else:
        return out  # already WanclipSaveVideo, or SaveWEBM / SaveAnimatedWEBP
    out[roles.output] = {"class_type": ASYNC_OUTPUT, "inputs": new,
                         "_meta": {"title": "Save Video in Background (wanclip)"}}
    return out


def _inject_models(graph: dict, roles: Roles, params: ShotParams) -> None:
    if params.shift is not None:
        if not roles.model_sampling:
            raise _missing("model sampling (shift)", "ModelSamplingSD3 on the experts' model path",
                           _summary(graph))
        for node_id in roles.model_sampling:
            _set(graph, node_id, "shift", params.shift)
    if params.lora_strength is not None:
        if not roles.loras:
            raise _missing("LoRA loader", "LoraLoaderModelOnly on the experts' model path", _summary(graph))
        for node_id in roles.loras:
            _set(graph, node_id, "strength_model", params.lora_strength)
    if params.distill_loras is not None:
        _set_distill_loras(graph, roles, params.distill_loras)
    if params.weight_dtype is not None:
        if len(roles.experts) != 2:
            raise _missing("expert loaders (weight_dtype)", "a UNETLoader on each expert's model path",
                           _summary(graph, ("UNETLoader",)))
        for node_id in roles.experts:
            _set(graph, node_id, "weight_dtype", params.weight_dtype)


def _set_distill_loras(graph: dict, roles: Roles, names: tuple[str, str]) -> None:
    """Each expert's LightX2V distillation LoRA (the LoRA loader on its model path whose file is a
    lightx2v one; another LoRA there, a style, is left alone) loads ``names`` (high, low)."""
    for sampler, name in zip((roles.high_sampler, roles.low_sampler), names, strict=True):
        loaders = [n for n in _model_chain(graph, sampler) if graph[n]["class_type"].startswith("LoraLoader")
                   and "lightx2v" in str(graph[n]["inputs"].get("lora_name", "")).lower()]
        if len(loaders) != 1:
            raise _missing("LightX2V LoRA loader (lightx2v:)", "one LoraLoaderModelOnly loading a lightx2v LoRA on "
                           f"each expert's model path (sampler {sampler} has {len(loaders)})",
                           _summary(graph, ("LoraLoaderModelOnly", "LoraLoader")))
        _set(graph, loaders[0], "lora_name", name)


def sampler_steps(graph: dict) -> tuple[int, int, int]:
    """(total steps, high-noise steps, low-noise steps) as the graph stands."""
    roles = find_roles(graph)
    high_end = int(_get(graph, roles.high_sampler, "end_at_step"))
    total = int(_get(graph, roles.high_sampler, "steps"))
    low_end = min(int(_get(graph, roles.low_sampler, "end_at_step")), total)
    low_start = int(_get(graph, roles.low_sampler, "start_at_step"))
    return total, high_end, max(low_end - low_start, 0)


def model_files(graph: dict) -> dict[str, list[str]]:
    """Model file names the graph loads, by ComfyUI models folder."""
    found: dict[str, list[str]] = {}
    for node in graph.values():
        for (class_type, name), folder in LOADER_INPUTS.items():
            if node["class_type"] == class_type and isinstance(node["inputs"].get(name), str):
                found.setdefault(folder, []).append(node["inputs"][name])
    return found


def fresh_output(graph: dict, roles: Roles, attempt: str) -> dict:
    """The graph with its output file named after this attempt (``..._1a2b3c4d``).

    Newer ComfyUI keeps earlier prompts' outputs cached (RAM-pressure cache), so an identical
    resubmit (``--force``, a re-render of the same shot) would come back fully cached, replaying the
    old file name with no new file, or one since deleted. A prefix of its own makes the output node
    write a new file every time (only that node runs again)."""
    node = graph[roles.output]
    name = node["inputs"].get("filename_prefix")
    if not isinstance(name, str):
        return graph
    return {**graph, roles.output: {**node, "inputs": {**node["inputs"], "filename_prefix": f"{name}_{attempt[:8]}"}}}


def posted_graph(graph: dict, roles: Roles, attempt: str, *, async_output: bool = False,
                 pictures: dict[str, str] | None = None) -> dict:
    """The one submit-time edit: the planned ``graph`` (whose ``roles`` were found at plan) as it is
    posted for ``attempt`` to a server with (``async_output``) or without wanclip's node pack, loading
    the uploaded ``pictures`` (role -> the name the server's upload answered). Pure: the ledger
    records the sha256 of exactly this graph. ``graph`` itself is not changed."""
    out = use_async_output(graph, roles) if async_output else graph  # the output node keeps its id
    for role, name in (pictures or {}).items():
        out = set_image(out, role, name, roles)
    return fresh_output(out, roles, attempt)
