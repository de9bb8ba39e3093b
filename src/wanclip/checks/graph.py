"""The checks of a graph against a server's ``/object_info``, each a named result with its fix.

Pure over dicts, so render's preflight runs them before queueing anything and ``wanclip doctor``
reports them with its own server and disk checks. Node classes exist, every model file name is
among ComfyUI's choices, and the VAE is the 16-channel one the 14B experts need.

A missing model file is never "fixed" by a file of another expert or model: the high-noise LoRA in
place of the low-noise one, an i2v or 5B expert, Wan 2.1 for 2.2 all render a wrong film without
any error. ``similar_model`` suggests only a file that is the same one under another spelling.

Newer servers (drift §1.1) rewrite a node class they no longer have into its registered
replacement before validating (``GET /node_replacements``): ``graph_checks`` takes that map and
checks the graph as the server will run it. They also send ``(list of length N)`` and no
``input_config`` for long lists in a 400: ``explain_rejection`` fills the allowed values back in
from ``/object_info/{class}`` of the classes the errors name.
"""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

from wanclip.errors import WanclipError
from wanclip.planning.workflow import CORE_WORKFLOW, LOADER_INPUTS, VHS_OUTPUT, is_link

WAN21_VAE = "wan_2.1_vae.safetensors"
DYNAMIC_COMBO = "COMFY_DYNAMICCOMBO_V3"
WAN22_VAE = "wan2.2_vae.safetensors"
CUSTOM_NODE_PACKS = {VHS_OUTPUT: "ComfyUI-VideoHelperSuite"}
SETUP_COMMAND = "wanclip setup --comfy-dir DIR"  # for a file of a --with set: "wanclip setup --with i2v ..."
# Spellings of one file's precision and packing: the same weights, the same film.
QUALIFIERS = frozenset({"fp8", "fp16", "bf16", "fp32", "scaled", "e4m3fn", "e5m2", "fp8e4m3fn", "fp8e5m2"})
# Words that make a file another model: its expert, task, or kind. A typo may not touch them.
MARKERS = re.compile(r"high|low|flf2v|ti2v|t2v|i2v|s2v|vace|fun|animate|lora|vae|lightx2v|causvid")


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def combo_options(spec: object) -> list[str] | None:
    """The choices of a combo input in either encoding, or None when the input is no combo.

    V1 nodes write ``[[opt, ...], {...}]``; V3 nodes write ``["COMBO", {"options": [...]}]``; a
    newer server's DynamicCombo (SaveVideo's ``format``) writes ``["COMFY_DYNAMICCOMBO_V3",
    {"options": [{"key": opt, "inputs": {...}}, ...]}]``: its keys are the choices.
    """
    if not isinstance(spec, list | tuple) or not spec:
        return None
    if isinstance(spec[0], list):
        return [str(o) for o in spec[0]]
    if spec[0] == "COMBO" and len(spec) > 1 and isinstance(spec[1], dict):
        return [str(o) for o in spec[1].get("options", [])]
    if spec[0] == DYNAMIC_COMBO and len(spec) > 1 and isinstance(spec[1], dict):
        return [str(o["key"]) for o in spec[1].get("options", []) if isinstance(o, dict) and "key" in o]
    return None


def input_spec(node_info: dict, name: str) -> object:
    inputs = node_info.get("input") or {}
    for group in ("required", "optional"):
        if name in (inputs.get(group) or {}):
            return inputs[group][name]
    return None


def graph_checks(graph: dict, object_info: dict, replacements: dict | None = None) -> list[Check]:
    """Node classes exist, every model file name is among ComfyUI's choices, the VAE is the 16-channel one.

    ``replacements`` is the server's ``/node_replacements`` map: a class the server lacks but would
    replace by one it has is checked as that class (and said so), not refused as missing."""
    graph, replaced = apply_replacements(graph, replacements or {}, object_info)
    checks = [_classes_check(graph, object_info)]
    if replaced:
        checks.append(Check("node replacements", True, "; ".join(
            f"ComfyUI will run node {node_id} {old} as {new} (its registered replacement)"
            for node_id, old, new in replaced)))
    checks += [check for node_id in sorted(graph, key=str)
               for check in _model_checks(node_id, graph[node_id], object_info)]
    checks += [_vae_check(node_id, node) for node_id, node in sorted(graph.items())
               if node.get("class_type") == "VAELoader" and isinstance(node["inputs"].get("vae_name"), str)]
    return checks


def apply_replacements(graph: dict, replacements: dict, object_info: dict) -> tuple[dict, list[tuple[str, str, str]]]:
    """The graph as a newer ComfyUI rewrites it before validation (``app/node_replace_manager.py``):
    a node whose class the server lacks, with a registered replacement the server has, gets the
    first replacement's class and its inputs mapped (``set_value`` / ``old_id`` -> ``new_id``).
    Returns (a new graph, [(node id, old class, new class)]); ``graph`` is not changed."""
    out, replaced = graph, []
    for node_id in sorted(graph, key=str):
        node = graph[node_id]
        old = node.get("class_type")
        rules = replacements.get(old) if old not in object_info else None
        rule = rules[0] if isinstance(rules, list) and rules and isinstance(rules[0], dict) else None
        new = rule.get("new_node_id") if rule else None
        if not new or new not in object_info:
            continue
        if out is graph:
            out = copy.deepcopy(graph)
        old_inputs, mappings = node.get("inputs") or {}, rule.get("input_mapping")
        if isinstance(mappings, dict):  # {old_id: new_id}, the unmapped inputs kept (wanclip's simulator)
            inputs = {str(mappings.get(k, k)): v for k, v in old_inputs.items()}
        else:  # ComfyUI: [{new_id, old_id | set_value}], only the mapped inputs survive
            inputs = {}
            for mapping in mappings or []:
                if not isinstance(mapping, dict) or "new_id" not in mapping:
                    continue
                if "set_value" in mapping:
                    inputs[mapping["new_id"]] = mapping["set_value"]
                elif mapping.get("old_id") in old_inputs:
                    inputs[mapping["new_id"]] = old_inputs[mapping["old_id"]]
        out[node_id] = {**out[node_id], "class_type": new, "inputs": inputs}
        replaced.append((str(node_id), str(old), str(new)))
    return out, replaced


def _classes_check(graph: dict, object_info: dict) -> Check:
    missing = sorted({node["class_type"] for node in graph.values()} - set(object_info))
    if not missing:
        return Check("nodes", True, f"all {len({n['class_type'] for n in graph.values()})} node classes are installed")
    where = {c: sorted(i for i, n in graph.items() if n["class_type"] == c) for c in missing}
    detail = "; ".join(f"{c} (node {', '.join(where[c])})" for c in missing)
    return Check("nodes", False, f"ComfyUI has no {detail}", _classes_fix(missing))


def _classes_fix(missing: list[str]) -> str:
    # custom nodes, unlike model files, are loaded only when ComfyUI starts: here a restart is needed
    packs = sorted({CUSTOM_NODE_PACKS[c] for c in missing if c in CUSTOM_NODE_PACKS})
    fix = f"install {', '.join(packs)} (ComfyUI-Manager, or git clone into custom_nodes/) and restart ComfyUI" \
        if packs else "install the custom nodes that provide them, or update ComfyUI, then restart it"
    if VHS_OUTPUT in missing:
        fix += f"; or render with the core-nodes graph workflows/{CORE_WORKFLOW}"
    return fix


def _model_checks(node_id: str, node: dict, object_info: dict) -> list[Check]:
    class_type, info = node.get("class_type"), object_info.get(node.get("class_type"))
    checks = []
    for name, value in (node.get("inputs") or {}).items():
        folder = LOADER_INPUTS.get((class_type, name))
        if info is None or is_link(value) or not isinstance(value, str):
            continue
        options = combo_options(input_spec(info, name))
        if folder is None and not (options is not None and _looks_like_model(value)):
            continue
        # the setup line matters only for a missing file: reading the manifests is not on a render's path
        command = None if value in (options or []) else setup_files().get(value)
        checks.append(model_check(value, options or [], folder, f"node {node_id} {class_type}.{name}",
                                  installable=command is not None, command=command or SETUP_COMMAND))
    return checks


def _looks_like_model(value: str) -> bool:
    return value.endswith((".safetensors", ".ckpt", ".pt", ".pth", ".gguf", ".bin", ".sft"))


@cache
def setup_files() -> dict[str, str]:
    """The model files `wanclip setup` can install (those of the shipped T2V and I2V graphs, of the post
    stage and of the LoRA sets), each with the command that does: ``wanclip setup --comfy-dir DIR``, or
    ``wanclip setup --with SET --comfy-dir DIR`` (i2v, interpolation, upscale, lightx2v-1217)."""
    from wanclip.models import manifest

    return {item.name: command_for(item.dest) for item in manifest.load_manifest(extras=manifest.EXTRAS)}


def command_for(dest: str) -> str:
    """The setup line for one manifest file (``folder/name``), with the DIR placeholder."""
    from wanclip.models import manifest

    return manifest.setup_command(dest) + SETUP_COMMAND.removeprefix("wanclip setup")


def model_check(value: str, options: list[str], folder: str | None, where: str, installable: bool,
                command: str = SETUP_COMMAND) -> Check:
    """``value`` is among ComfyUI's ``options``; else the fix names the file, its folder and how to get it
    (``command``: the setup line that installs it, when ``installable``).

    ComfyUI lists its model folders afresh on each request, so no restart is part of the fix.
    """
    if value in options:
        return Check(f"model {value}", True, f"ComfyUI lists it ({where})")
    where_to = f"models/{folder}/" if folder else "its models/ folder"
    detail = f"ComfyUI does not list {value} ({where})"
    if installable:
        fix = (f"{value} is missing from {where_to}: install it with `{command}` (DIR: that server's "
               "ComfyUI folder); ComfyUI sees it on the next request")
    else:
        fix = (f"put {value} in {where_to} (wanclip setup installs only the files of the shipped graphs); "
               "ComfyUI sees it on the next request")
    meant = similar_model(value, options)
    if meant:
        fix = f"did you mean {meant}? ComfyUI has that one: set it in the graph; else {fix}"
    return Check(f"model {value}", False, detail, fix)


def similar_model(value: str, options: list[str]) -> str | None:
    """The file among ``options`` that is ``value`` under another spelling: another subfolder or
    case, a precision suffix (``_fp8`` / ``_fp8_scaled``), or a small typo that leaves every digit and
    every expert, task and kind word (high/low, t2v/i2v, 14B/5B, 2.1/2.2, lora, vae) as it is.
    Never a file of another expert or model, however close its name."""
    mine = _identity(value)
    same = [o for o in options if _identity(o) == mine] or [o for o in options if _typo(mine, _identity(o))]
    if not same:
        return None
    return max(same, key=lambda o: difflib.SequenceMatcher(None, value, o).ratio())


def _identity(name: str) -> str:
    """The file's name with folder, case, extension, separators and precision words removed."""
    stem = re.sub(r"\.[a-z]+$", "", name.replace("\\", "/").rsplit("/", 1)[-1].lower())
    return "".join(t for t in re.split(r"[_\-\s]+", stem) if t and t not in QUALIFIERS).replace(".", "")


def _typo(mine: str, other: str) -> bool:
    ops = difflib.SequenceMatcher(None, mine, other).get_opcodes()
    changed = "".join(mine[i1:i2] + other[j1:j2] for tag, i1, i2, j1, j2 in ops if tag != "equal")
    return (0 < len(changed) <= 4 and not any(c.isdigit() for c in changed)
            and MARKERS.findall(mine) == MARKERS.findall(other))


def _vae_check(node_id: str, node: dict) -> Check:
    value = node["inputs"]["vae_name"]
    if value.split("/")[-1] == WAN22_VAE or "wan2.2_vae" in value.lower():
        return Check("vae", False,
                     f"node {node_id} loads {value}, the 48-channel VAE of the 5B model: with the 14B "
                     "experts VAEDecode fails only after sampling, minutes in ('expected input … to have 48 "
                     "channels, but got 16')",
                     f"set vae_name to {WAN21_VAE} (wanclip setup puts it in models/vae/)")
    if value.split("/")[-1] == WAN21_VAE:
        return Check("vae", True, f"node {node_id} loads {value}, the 16-channel Wan 2.1 VAE the 14B model needs")
    return Check("vae", True, f"node {node_id} loads {value}; make sure it is the 16-channel Wan 2.1 VAE "
                 f"({WAN21_VAE}), not the 48-channel {WAN22_VAE}")


# -- a 400 from ComfyUI, explained ----------------------------------------------------------------------
@dataclass
class RejectedInput:
    """One row of the 400 table: what ComfyUI refused, what it would take, and a safe did-you-mean."""

    node: str
    class_type: str
    input: str
    received: object = None  # the value sent (absent: None and has_received False)
    has_received: bool = False
    allowed: list[str] = field(default_factory=list)
    problem: str = ""
    did_you_mean: str | None = None


def explain_rejection(node_errors: dict, object_info_for: Callable[[str], dict | None] | None = None
                      ) -> list[RejectedInput]:
    """The rows of a 400's ``node_errors``, with the allowed values even where the server left them
    out: ``(list of length N)`` and ``input_config: None`` for long lists (model folders, samplers).

    ``object_info_for(class_type)`` returns that class's ``/object_info`` entry (or None); it is
    called at most once per class, only for classes whose errors lack their choices, and a
    failure (a ``WanclipError``, e.g. the server went away) only leaves those choices out."""
    infos: dict[str, dict | None] = {}

    def info(class_type: str) -> dict | None:
        if class_type not in infos:
            try:
                infos[class_type] = object_info_for(class_type) if object_info_for else None
            except WanclipError:
                infos[class_type] = None
        return infos[class_type]

    rows = []
    for node_id, entry in (node_errors or {}).items():
        entry = entry if isinstance(entry, dict) else {}
        class_type = str(entry.get("class_type") or "")
        for item in entry.get("errors") or []:
            if not isinstance(item, dict):
                continue
            extra = item.get("extra_info") if isinstance(item.get("extra_info"), dict) else {}
            name = str(extra.get("input_name") or "")
            allowed = _config_options(extra.get("input_config"))
            if allowed is None and name and class_type and item.get("type") == "value_not_in_list":
                node_info = info(class_type)
                allowed = combo_options(input_spec(node_info, name)) if isinstance(node_info, dict) else None
            received = extra.get("received_value")
            meant = similar_model(received, allowed) if allowed and isinstance(received, str) else None
            details = item.get("details")
            problem = f"{item.get('message', '')}: {details}" if details else str(item.get("message", ""))
            rows.append(RejectedInput(str(node_id), class_type, name, received, "received_value" in extra,
                                      allowed or [], problem, meant))
    return rows


def _config_options(config: object) -> list[str] | None:
    """The choices an error's ``input_config`` still carries (V1 list or V3 COMBO), else None."""
    return combo_options(config) if isinstance(config, list | tuple) else None
