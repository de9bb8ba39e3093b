"""Checks before any GPU work: each server answers, has every node class and model file the film's
graphs use, and loads the 16-channel VAE. A server that cannot run a graph only gets no shot of
that graph (``ServerInfo.unfit``); a graph no server can run refuses the whole render (exit 2).

Each server's capabilities are detected here (``comfy.capabilities.detect``) and handed back in
``ServerInfo.capabilities``, so the render does not probe twice. Only the graphs' own classes are
read (``/object_info/{class}``), plus the classes a newer server would replace a missing one by.
Independent requests go at once (``capabilities.together``), and so do the servers: a server far
away costs a few round trips before the first shot, not one per request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

from wanclip.checks.graph import Check, graph_checks
from wanclip.comfy.capabilities import Capabilities, detect, object_info, together
from wanclip.comfy.client import ComfyClient
from wanclip.errors import PreflightError, ServerError
from wanclip.planning.workflow import canonical_json, model_files


@dataclass
class ServerInfo:
    url: str
    version: str
    device: str
    capabilities: Capabilities | None = None
    unfit: dict[str, list[str]] = field(default_factory=dict)  # fit_key(graph) -> what this server lacks
    problems: dict[str, list[Check]] = field(default_factory=dict, repr=False)  # the same, as failed checks


def fit_key(graph: dict) -> str:
    """What decides whether a server can run a graph: its node classes and model files."""
    return canonical_json({"classes": sorted({n["class_type"] for n in graph.values()}),
                           "models": model_files(graph)})


def _distinct(graphs: list[dict]) -> list[dict]:
    """One graph per distinct set of node classes and model files (shots differ in text and seed)."""
    seen, out = set(), []
    for graph in graphs:
        key = fit_key(graph)
        if key not in seen:
            seen.add(key)
            out.append(graph)
    return out


def preflight(clients: list[ComfyClient], graphs: list[dict]) -> list[ServerInfo]:
    """Probe every server at once, then refuse a graph that none of them can run."""
    return judge(together([partial(probe_server, client, graphs) for client in clients]))


def probe_server(client: ComfyClient, graphs: list[dict]) -> ServerInfo:
    """One server: its capabilities, and what it lacks for each distinct graph (``unfit``)."""
    distinct = _distinct(graphs)
    caps, info = _probe(client, {n["class_type"] for g in distinct for n in g.values()})
    server = _info(client.url, caps.system_stats, caps)
    for graph in distinct:
        problems = [c for c in graph_checks(graph, info, caps.node_replacements) if not c.ok]
        if problems:
            server.unfit[fit_key(graph)] = [c.detail for c in problems]
            server.problems[fit_key(graph)] = problems
    return server


def judge(infos: list[ServerInfo]) -> list[ServerInfo]:
    """``infos`` when every graph fits some server; else ``PreflightError`` naming what each lacks."""
    hopeless = {key for info in infos for key in info.unfit if all(key in i.unfit for i in infos)}
    if hopeless:
        failed = [(i.url, c) for i in infos for key, cs in i.problems.items() if key in hopeless for c in cs]
        raise PreflightError(_describe(failed),
                             "nothing was submitted; fix the above and rerun (`wanclip doctor` shows every check)")
    return infos


def _probe(client: ComfyClient, classes: set[str]) -> tuple[Capabilities, dict]:
    try:
        caps = detect(client)
        return caps, graph_object_info(client, classes, caps)
    except ServerError as exc:
        raise PreflightError(f"{exc.message}; nothing was submitted", exc.hint) from exc


def graph_object_info(client: ComfyClient, classes: set[str], caps: Capabilities) -> dict:
    """``/object_info`` of ``classes``, and of the class a newer server would run a missing one as."""
    info = object_info(client, classes, caps)
    targets = {caps.replacement_for(c) for c in set(classes) - set(info)} - {None} - set(info)
    if targets:
        info.update(object_info(client, targets, caps))
    return info


def _info(url: str, stats: dict, caps: Capabilities | None = None) -> ServerInfo:
    version = (stats.get("system") or {}).get("comfyui_version") or "?"
    devices = stats.get("devices") or [{}]
    return ServerInfo(url, version, str(devices[0].get("name", "?")).split(" : ")[0], caps)


def _describe(failed: list[tuple[str, Check]]) -> str:
    unique = list(dict.fromkeys((url, c.detail, c.fix) for url, c in failed))
    lines = [f"preflight refused the render ({len(unique)} problem{'s' if len(unique) > 1 else ''}):"]
    lines += [f"  - {url}: {detail}" + (f"\n    fix: {fix}" if fix else "") for url, detail, fix in unique]
    return "\n".join(lines)
