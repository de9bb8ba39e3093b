"""Preflight checks, each a named result with the fix: ``wanclip doctor`` and render's preflight.

``graph_checks`` is pure over dicts (an API graph and the ``/object_info`` the caller fetched once),
so render can run it before queueing anything. ``run_doctor`` adds what needs the server or the
disk: reachability and version, the GPU, the model files ComfyUI lists, the files on disk, free
space for outputs.
"""

from __future__ import annotations

import difflib
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

from wanclip import assets
from wanclip.comfy.client import ComfyClient
from wanclip.errors import ServerError
from wanclip.workflow import LOADER_INPUTS, VHS_OUTPUT, is_link, load_graph

# Which loader input takes a file from which models/ folder (ComfyUI's folder_paths keys).
WAN21_VAE = "wan_2.1_vae.safetensors"
WAN22_VAE = "wan2.2_vae.safetensors"
DEFAULT_WORKFLOW = "wan22_t2v_lightx2v_4step.json"
CORE_WORKFLOW = "wan22_t2v_lightx2v_4step_core.json"
MIN_FREE_OUTPUT = 5_000_000_000  # a film of a few hundred clips, plus the stitched result
CUSTOM_NODE_PACKS = {VHS_OUTPUT: "ComfyUI-VideoHelperSuite"}


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


@dataclass
class DoctorReport:
    server: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def to_dict(self) -> dict:
        return {"server": self.server, "ok": self.ok, "checks": [asdict(c) for c in self.checks]}


# -- graph checks (pure) ---------------------------------------------------------------------------
def combo_options(spec: object) -> list[str] | None:
    """The choices of a combo input in either encoding, or None when the input is no combo.

    V1 nodes write ``[[opt, ...], {...}]``; V3 nodes write ``["COMBO", {"options": [...]}]``.
    """
    if not isinstance(spec, list | tuple) or not spec:
        return None
    if isinstance(spec[0], list):
        return [str(o) for o in spec[0]]
    if spec[0] == "COMBO" and len(spec) > 1 and isinstance(spec[1], dict):
        return [str(o) for o in spec[1].get("options", [])]
    return None


def input_spec(node_info: dict, name: str) -> object:
    inputs = node_info.get("input") or {}
    for group in ("required", "optional"):
        if name in (inputs.get(group) or {}):
            return inputs[group][name]
    return None


def graph_checks(graph: dict, object_info: dict) -> list[Check]:
    """Node classes exist, every model file name is among ComfyUI's choices, the VAE is the 16-channel one."""
    checks = [_classes_check(graph, object_info)]
    checks += [check for node_id in sorted(graph, key=str)
               for check in _model_checks(node_id, graph[node_id], object_info)]
    checks += [_vae_check(node_id, node) for node_id, node in sorted(graph.items())
               if node.get("class_type") == "VAELoader" and isinstance(node["inputs"].get("vae_name"), str)]
    return checks


def _classes_check(graph: dict, object_info: dict) -> Check:
    missing = sorted({node["class_type"] for node in graph.values()} - set(object_info))
    if not missing:
        return Check("nodes", True, f"all {len({n['class_type'] for n in graph.values()})} node classes are installed")
    where = {c: sorted(i for i, n in graph.items() if n["class_type"] == c) for c in missing}
    detail = "; ".join(f"{c} (node {', '.join(where[c])})" for c in missing)
    return Check("nodes", False, f"ComfyUI has no {detail}", _classes_fix(missing))


def _classes_fix(missing: list[str]) -> str:
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
        checks.append(_model_check(value, options or [], folder, f"node {node_id} {class_type}.{name}"))
    return checks


def _looks_like_model(value: str) -> bool:
    return value.endswith((".safetensors", ".ckpt", ".pt", ".pth", ".gguf", ".bin", ".sft"))


def _model_check(value: str, options: list[str], folder: str | None, where: str) -> Check:
    where_to = f"models/{folder}/" if folder else "its models/ folder"
    if value in options:
        return Check(f"model {value}", True, f"ComfyUI lists it ({where})")
    close = difflib.get_close_matches(value, options, n=1, cutoff=0.6)
    detail = f"ComfyUI does not list {value} ({where})"
    fix = f"put {value} in {where_to} (wanclip setup installs the Wan 2.2 files), then restart ComfyUI"
    if close:
        fix = f"did you mean {close[0]}? ComfyUI has that one; else {fix}"
    return Check(f"model {value}", False, detail, fix)


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


# -- doctor ----------------------------------------------------------------------------------------
def default_graph() -> dict:
    return load_graph(resources.files("wanclip").joinpath(f"data/workflows/{DEFAULT_WORKFLOW}"))


def run_doctor(client: ComfyClient, comfy_dir: Path | None = None, *, graph: dict | None = None,
               manifest: list[assets.ModelFile] | None = None, output_dir: Path | None = None,
               disk_free: Callable[[Path], int] | None = None) -> DoctorReport:
    """Every check in order; a server that does not answer fails one check and skips its others."""
    graph = graph if graph is not None else default_graph()
    items = manifest if manifest is not None else assets.load_manifest()
    report = DoctorReport(client.url)
    server = _server_checks(client, graph, items)
    report.checks += server
    if comfy_dir is not None:
        report.checks += disk_checks(items, Path(comfy_dir))
    report.checks.append(free_space_check(_output_dirs(comfy_dir, output_dir), disk_free or _free))
    return report


def _server_checks(client: ComfyClient, graph: dict, items: list[assets.ModelFile]) -> list[Check]:
    try:
        stats = client.system_stats()
        object_info = client.object_info()
        listed = {folder: client.models(folder) for folder in sorted({i.folder for i in items})}
    except ServerError as exc:
        return [Check("server", False, exc.message, exc.hint)]
    checks = [_version_check(client.url, stats), gpu_check(stats)]
    checks += [listed_check(item, listed[item.folder]) for item in items]
    names = {c.name for c in checks}
    checks += [c for c in graph_checks(graph, object_info) if c.name not in names]
    return checks


def _version_check(url: str, stats: dict) -> Check:
    version = (stats.get("system") or {}).get("comfyui_version") or "unknown version"
    return Check("server", True, f"ComfyUI {version} answers at {url}")


def gpu_check(stats: dict) -> Check:
    gpus = [d for d in stats.get("devices") or [] if d.get("type") != "cpu"]
    if not gpus:
        return Check("gpu", False, "ComfyUI reports no GPU: Wan 2.2 14B would run on the CPU",
                     "start ComfyUI on a machine with a CUDA GPU (check its console for the device it found)")
    gpu = gpus[0]
    name = str(gpu.get("name", "?")).split(" : ")[0]
    name = name.split(" ", 1)[1] if name.startswith(("cuda:", "xpu:", "mps")) and " " in name else name
    free, total = gpu.get("vram_free") or 0, gpu.get("vram_total") or 0
    return Check("gpu", True, f"{name}, {free / 2**30:.1f} GiB free of {total / 2**30:.1f} GiB VRAM")


def listed_check(item: assets.ModelFile, listed: list[str]) -> Check:
    """The server's ``/models/<folder>`` lists the file under the name the graph uses."""
    return _model_check(item.name, [n.replace("\\", "/") for n in listed], item.folder, f"/models/{item.folder}")


def disk_checks(items: list[assets.ModelFile], comfy_dir: Path) -> list[Check]:
    """The files under ``comfy_dir/models`` are the manifest's bytes (a recorded hash makes this instant)."""
    result = assets.check(items, comfy_dir / "models")
    checks = [Check(f"disk {f.dest}", False, f.detail, f.fix) for f in result.files if not f.ok]
    if not checks:
        checks = [Check("disk", True, f"{len(result.files)} model files verified in {comfy_dir / 'models'}")]
    checks += [Check("vae on disk", True, warning) for warning in result.warnings]
    return checks


def _output_dirs(comfy_dir: Path | None, output_dir: Path | None) -> list[Path]:
    dirs = [Path(output_dir) if output_dir else Path.cwd()]
    return dirs + ([Path(comfy_dir) / "output"] if comfy_dir else [])


def _free(path: Path) -> int:
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def free_space_check(dirs: list[Path], disk_free: Callable[[Path], int]) -> Check:
    low = [(d, disk_free(d)) for d in dirs]
    short = [(d, free) for d, free in low if free < MIN_FREE_OUTPUT]
    detail = ", ".join(f"{free / 1e9:.1f} GB free in {d}" for d, free in low)
    if short:
        return Check("free disk", False, detail,
                     f"free at least {MIN_FREE_OUTPUT / 1e9:.0f} GB for clips and the film, or choose another output folder")
    return Check("free disk", True, detail)
