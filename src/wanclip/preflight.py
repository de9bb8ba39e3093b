"""Checks before any GPU work: each server answers, has every node class and model file the film's
graphs use, and loads the 16-channel VAE. One failure refuses the whole render (exit 2)."""

from __future__ import annotations

from dataclasses import dataclass

from wanclip.checks import Check, graph_checks
from wanclip.comfy.client import ComfyClient
from wanclip.errors import PreflightError, ServerError
from wanclip.workflow import canonical_json, model_files


@dataclass
class ServerInfo:
    url: str
    version: str
    device: str


def _distinct(graphs: list[dict]) -> list[dict]:
    """One graph per distinct set of node classes and model files (shots differ in text and seed)."""
    seen, out = set(), []
    for graph in graphs:
        key = canonical_json({"classes": sorted({n["class_type"] for n in graph.values()}),
                              "models": model_files(graph)})
        if key not in seen:
            seen.add(key)
            out.append(graph)
    return out


def preflight(clients: list[ComfyClient], graphs: list[dict]) -> list[ServerInfo]:
    infos, failed = [], []
    for client in clients:
        try:
            stats, object_info = client.system_stats(), client.object_info()
        except ServerError as exc:
            raise PreflightError(f"{exc.message}; nothing was submitted", exc.hint) from exc
        infos.append(_info(client.url, stats))
        failed += [(client.url, c) for g in _distinct(graphs) for c in graph_checks(g, object_info) if not c.ok]
    if failed:
        raise PreflightError(_describe(failed), "nothing was submitted; fix the above and rerun "
                                                "(`wanclip doctor` shows every check)")
    return infos


def _info(url: str, stats: dict) -> ServerInfo:
    version = (stats.get("system") or {}).get("comfyui_version") or "?"
    devices = stats.get("devices") or [{}]
    return ServerInfo(url, version, str(devices[0].get("name", "?")).split(" : ")[0])


def _describe(failed: list[tuple[str, Check]]) -> str:
    unique = list(dict.fromkeys((url, c.detail, c.fix) for url, c in failed))
    lines = [f"preflight refused the render ({len(unique)} problem{'s' if len(unique) > 1 else ''}):"]
    lines += [f"  - {url}: {detail}" + (f"\n    fix: {fix}" if fix else "") for url, detail, fix in unique]
    return "\n".join(lines)
