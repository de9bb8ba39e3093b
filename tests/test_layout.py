"""The package's shape holds: no import circle (lazy and TYPE_CHECKING imports count), each package
imports only the layers below it, each third-party library lives in one place, few flat modules, and
no module past 600 lines. The layers, top to bottom (a unit may import any unit below it that its
row names):

    cli        -> everything
    __init__   -> the facade, lazily
    film       -> render, stitch, review, serve, planning, ledger, media, files, config, errors, signals
    render     -> planning, comfy, checks, ledger, media, files, config, errors, signals
    review     -> planning, ledger, media, files, config, errors
    stitch     -> planning, ledger, media, files, config, errors, signals
    checks     -> comfy, planning, models, files, config, errors
    serve      -> comfy, planning, files, config, errors, signals
    models     -> files, config, errors
    comfy      -> media, files, config, errors
    planning   -> ledger, files, config, errors  (a shot keeps the seed it rendered with: the ledger)
    ledger     -> files, errors
    media      -> files, config, errors
    files, config, signals -> errors;  urls -> nothing
    errors     -> nothing
    sim        -> nothing of wanclip outside wanclip.sim (a client bug cannot be copied into the fake)
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "wanclip"
LOWER = {
    "errors": set(),
    "files": {"errors"}, "config": {"errors"}, "signals": {"errors"}, "urls": set(),
    "media": {"files", "config", "errors"},
    "ledger": {"files", "errors"},
    "planning": {"ledger", "files", "config", "errors"},
    "comfy": {"media", "files", "config", "errors", "urls"},
    "models": {"files", "config", "errors", "urls"},
    "serve": {"comfy", "planning", "files", "config", "errors", "signals"},
    "checks": {"comfy", "planning", "models", "files", "config", "errors"},
    "stitch": {"planning", "ledger", "media", "files", "config", "errors", "signals"},
    "review": {"planning", "ledger", "media", "files", "config", "errors", "urls"},
    "render": {"planning", "comfy", "checks", "ledger", "media", "files", "config", "errors", "signals", "urls"},
    "film": {"render", "stitch", "review", "serve", "planning", "ledger", "media", "files", "config", "errors",
             "signals"},
}
THIRD_PARTY = {  # library -> the packages or modules that may import it (ffmpeg-python: none)
    "aiohttp": {"wanclip.sim"}, "typer": {"wanclip.cli"}, "rich": {"wanclip.cli"},
    "huggingface_hub": {"wanclip.models.install"}, "httpx2": {"wanclip.models.install"},
    "websocket": {"wanclip.comfy"}, "requests": {"wanclip.comfy", "wanclip.models"}, "ffmpeg": set(),
}
# Inside stitch/, top to bottom: each module may import only the ones before it.
STITCH_ORDER = ["filtergraph", "graph", "layout", "run", "contact_sheet", "pieces", "join"]
MAX_FLAT = 12
MAX_LINES = 600


def modules() -> dict[str, Path]:
    found = {}
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC.parent).with_suffix("")
        if "data" in rel.parts:
            continue  # the node pack runs inside ComfyUI, not in wanclip
        name = ".".join(rel.parts).removesuffix(".__init__")
        found[name] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Every module ``path`` imports anywhere (functions and TYPE_CHECKING blocks too): ``from p import m``
    counts as importing the submodule ``p.m`` where it is one, else ``p``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
            for alias in node.names:
                out.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return out


def unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


GRAPH = {n: imports(n, p, modules()) for n, p in modules().items()}


def cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(GRAPH[v] & GRAPH.keys()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    return out


def test_no_import_circle_counting_lazy_imports():
    assert cycles() == []


def test_each_package_imports_only_the_layers_below_it():
    wrong = []
    for module, targets in sorted(GRAPH.items()):
        here = unit(module)
        if here in ("cli", "__init__", "__main__"):
            continue
        for target in sorted(t for t in targets if t.startswith("wanclip.") and t in GRAPH):
            there = unit(target)
            if there == here:
                continue
            if here == "sim" or there not in LOWER.get(here, set()):
                wrong.append(f"{module} imports {target}")
    assert wrong == []


@pytest.mark.parametrize("library", sorted(THIRD_PARTY))
def test_each_third_party_library_lives_in_one_place(library):
    users = sorted(m for m, targets in GRAPH.items()
                   if any(t == library or t.startswith(library + ".") for t in targets)
                   and not any(m == home or m.startswith(home + ".") for home in THIRD_PARTY[library]))
    assert users == []


def test_every_stitch_module_imports_only_those_above_it():
    stitch = sorted(m.removeprefix("wanclip.stitch.") for m in GRAPH if m.startswith("wanclip.stitch."))
    assert stitch == sorted(STITCH_ORDER)
    for position, name in enumerate(STITCH_ORDER):
        inside = {t.removeprefix("wanclip.stitch.") for t in GRAPH[f"wanclip.stitch.{name}"]
                  if t.startswith("wanclip.stitch.")}
        assert inside <= set(STITCH_ORDER[:position]), name


def test_few_flat_modules_and_none_past_600_lines():
    flat = sorted(p.name for p in SRC.glob("*.py"))
    assert len(flat) <= MAX_FLAT, flat
    long = {n: len(p.read_text(encoding="utf-8").splitlines()) for n, p in modules().items()}
    assert {n: lines for n, lines in long.items() if lines > MAX_LINES} == {}
