"""``wanclip doctor``: every check, each a named result with the fix, for one server.

The graph checks are ``wanclip.checks.graph`` (render's preflight runs the same ones); ``run_doctor``
adds what needs the server or the disk: reachability and version, what the server speaks
("ComfyUI features": ``comfy.capabilities``), the GPU, the model files ComfyUI lists, the files on
disk (through the setup manifest), free space for outputs.

It checks the graphs it is given (a film's: the image-to-video graph only when a shot starts from or
lands on a picture), and the files of a ``wanclip setup --with`` set only when one of them loads
them: a text-to-video film is never failed for missing I2V experts.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from wanclip.checks import nodepack, post_files
from wanclip.checks.graph import Check, command_for, graph_checks, model_check
from wanclip.checks.post_files import PostNeed
from wanclip.checks.preflight import fit_key, graph_object_info
from wanclip.comfy.capabilities import Capabilities, detect
from wanclip.comfy.capabilities import object_info as read_object_info
from wanclip.comfy.client import ComfyClient
from wanclip.comfy.observed import handshake
from wanclip.errors import ServerError
from wanclip.models.manifest import ModelFile, extra_set_of, load_manifest
from wanclip.models.verify import check_files
from wanclip.planning.post import post_job
from wanclip.planning.postgraph import POST_CLASSES, post_nodes, unavailable
from wanclip.planning.workflow import model_files, shipped_graph

MIN_FREE_OUTPUT = 5_000_000_000  # a film of a few hundred clips, plus the stitched result


@dataclass
class DoctorReport:
    server: str
    checks: list[Check] = field(default_factory=list)
    capabilities: Capabilities | None = None

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def to_dict(self) -> dict:
        return {"server": self.server, "ok": self.ok, "checks": [asdict(c) for c in self.checks],
                "capabilities": self.capabilities.to_dict() if self.capabilities else None}


def run_doctor(client: ComfyClient, comfy_dir: Path | None = None, *, graph: dict | None = None,
               graphs: list[dict] | None = None, manifest: list[ModelFile] | None = None,
               output_dir: Path | None = None, disk_free: Callable[[Path], int] | None = None,
               post: PostNeed | None = None) -> DoctorReport:
    """Every check in order; a server that does not answer fails one check and skips its others.

    ``graphs`` (a film's) or ``graph``; neither: the shipped text-to-video graph. ``post``: what the
    film's post steps need (``PostNeed.of(job)``, merged over its clips); the server's post model
    files are checked for it (``checks.post_files``)."""
    graphs = graphs or [graph if graph is not None else shipped_graph()]
    items = manifest if manifest is not None else load_manifest(extras=sets_needed(graphs))
    report = DoctorReport(client.url)
    server, report.capabilities = _server_checks(client, graphs, items, post)
    report.checks += server
    if comfy_dir is not None:
        report.checks += disk_checks(items, Path(comfy_dir))
    report.checks.append(free_space_check(_output_dirs(comfy_dir, output_dir), disk_free or _free))
    return report


def sets_needed(graphs: list[dict]) -> list[str]:
    """The ``wanclip setup --with`` sets whose files these graphs load (``i2v`` for an image-to-video graph)."""
    loaded = {f"{folder}/{name}" for g in graphs for folder, names in model_files(g).items() for name in names}
    return list(dict.fromkeys(s for s in map(extra_set_of, sorted(loaded)) if s))


def distinct_graphs(graphs: list[dict]) -> list[dict]:
    """One graph per set of node classes and model files (a film's shots differ in text and seed)."""
    seen: dict[str, dict] = {}
    for g in graphs:
        seen.setdefault(fit_key(g), g)
    return list(seen.values())


def _server_checks(client: ComfyClient, graphs: list[dict], items: list[ModelFile], post: PostNeed | None = None
                   ) -> tuple[list[Check], Capabilities | None]:
    graphs = distinct_graphs(graphs)
    try:
        caps = detect(client)
        caps = replace(caps, credential_handshake=handshake(client))  # one event socket, nothing posted
        object_info = graph_object_info(client, {n["class_type"] for g in graphs for n in g.values()}, caps)
        listed = {folder: client.models(folder) for folder in sorted({i.folder for i in items})}
        post_info = post_object_info(client, caps) if post and (post.interpolate or post.upscale) else {}
    except ServerError as exc:
        return [Check("server", False, exc.message, exc.hint)], None
    checks = [_version_check(client.url, caps.system_stats), Check("ComfyUI features", True, features_detail(caps)),
              gpu_check(caps.system_stats)]
    checks += [listed_check(item, listed[item.folder]) for item in items]
    for graph in graphs:
        names = {c.name for c in checks}
        checks += [c for c in graph_checks(graph, object_info, caps.node_replacements) if c.name not in names]
    if post and (post.interpolate or post.upscale):
        checks.append(post_nodes_check(post, post_info))
        names = {c.name for c in checks}
        checks += [c for c in post_files.post_model_checks(post, post_info) if c.name not in names]
    checks.append(nodepack.server_check(client, object_info))  # informational: the optional node pack
    return checks, caps


def post_object_info(client: ComfyClient, caps: Capabilities) -> dict:
    """``/object_info`` of every class the post stage may use (its model checks', then its graphs')."""
    info = post_files.post_object_info(client, caps)
    rest = tuple(c for c in POST_CLASSES if c not in info and c not in post_files.POST_MODEL_CLASSES)
    return {**read_object_info(client, rest, caps), **info}


# One 5 s clip's post step of each kind: what unavailable() is asked about to name a missing node.
INTERPOLATE_JOB, UPSCALE_JOB = post_job(2, None, 81, 16, 832, 480), post_job(1, 2, 81, 16, 832, 480)


def post_nodes_check(post: PostNeed, object_info: dict) -> Check:
    """The nodes the film's post steps run on: which ones this server would use, or what it lacks and
    what to install (``planning.postgraph``; the model files are checked apart)."""
    nodes = post_nodes(object_info)
    lacks = [unavailable(job, nodes) for need, there, job in (
        (True, nodes.load, INTERPOLATE_JOB), (post.interpolate, nodes.interpolate, INTERPOLATE_JOB),
        (post.upscale, nodes.upscale, UPSCALE_JOB)) if need and there is None]
    if lacks:
        return Check("post stage nodes", False, lacks[0].split(": ", 1)[0], lacks[0].split(": ", 1)[-1])
    used = [f"load: {'LoadVideo' if nodes.load == 'core' else 'VHS_LoadVideo'}"]
    if post.interpolate:
        used.append(f"interpolation: {'core FrameInterpolate' if nodes.interpolate == 'core' else 'RIFE VFI'}")
    if post.upscale:
        used.append(f"upscale: {'core SeedVR2' if nodes.upscale == 'seedvr2' else 'UpscaleModelLoader'}")
    return Check("post stage nodes", True, "; ".join(used))


def features_detail(caps: Capabilities) -> str:
    """What the server speaks, and how doctor learned the behaviours: it posts nothing, so those seen
    only while a prompt runs stay "not known yet"."""
    return (f"{caps.describe()} (doctor opened one event socket and posted nothing: "
            "the rest shows only while a prompt runs)")


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


def listed_check(item: ModelFile, listed: list[str]) -> Check:
    """The server's ``/models/<folder>`` lists the file under the name the graph uses."""
    return model_check(item.name, [n.replace("\\", "/") for n in listed], item.folder, f"/models/{item.folder}",
                       installable=True, command=command_for(item.dest))


def disk_checks(items: list[ModelFile], comfy_dir: Path) -> list[Check]:
    """The files under ``comfy_dir/models`` are the manifest's bytes (a recorded hash makes this instant)."""
    result = check_files(items, comfy_dir / "models")
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
