"""The simulator is a test double: it imports nothing from the rest of wanclip, so a client bug
cannot be copied into the fake, and the packages split out of review/, models/ and sim/ keep
their shape (no circle, no module over 600 lines), counting imports inside functions too."""

from __future__ import annotations

import ast
from pathlib import Path

import wanclip

PACKAGE = Path(wanclip.__file__).resolve().parent
SPLIT = ("review", "models", "sim")
MAX_LINES = 600


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(package: str) -> dict[str, Path]:
    return {module_name(p): p for p in sorted((PACKAGE / package).rglob("*.py"))}


def imported(path: Path) -> set[str]:
    """Every module name an ``import`` or ``from ... import`` anywhere in the file names
    (lazy and TYPE_CHECKING ones included); relative imports resolved."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            found.update(f"{base}.{alias.name}" for alias in node.names)
            found.add(base)
    return found


def wanclip_edges(package: str) -> dict[str, set[str]]:
    """module -> the modules of the same package it imports (``from pkg import mod`` names mod)."""
    mods = modules(package)
    edges = {}
    for name, path in mods.items():
        edges[name] = {m for m in imported(path) if m in mods and m != name}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every module that can reach itself, with the path back (depth-first)."""
    found = []
    for start in edges:
        stack = [(start, [start])]
        seen = set()
        while stack:
            node, trail = stack.pop()
            for nxt in edges[node]:
                if nxt == start and not _is_parent(nxt, node):
                    found.append(trail + [start])
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, trail + [nxt]))
    return found


def _is_parent(package: str, module: str) -> bool:
    """A module importing its own package (``from wanclip.sim import jobs``) is how Python imports
    a sibling, not a circle: the package's ``__init__`` is already being run."""
    return module.startswith(package + ".")


def test_the_simulator_imports_nothing_from_wanclip_outside_it():
    outside = {name: sorted(m for m in imported(path) if m.split(".")[0] == "wanclip"
                            and m not in ("wanclip", "wanclip.sim") and not m.startswith("wanclip.sim."))
               for name, path in modules("sim").items()}
    assert {name: found for name, found in outside.items() if found} == {}


def test_no_import_circle_in_review_models_or_sim():
    for package in SPLIT:
        edges = wanclip_edges(package)
        edges = {m: {t for t in targets if not _is_parent(t, m)} for m, targets in edges.items()}
        assert cycles(edges) == [], package


def test_no_module_of_review_models_or_sim_is_longer_than_600_lines():
    long = {name: n for package in SPLIT for name, path in modules(package).items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}


def test_aiohttp_is_imported_only_by_the_simulator_and_the_hub_client_only_by_the_installer():
    users: dict[str, set[str]] = {"aiohttp": set(), "huggingface_hub": set(), "httpx2": set()}
    for path in PACKAGE.rglob("*.py"):
        if (PACKAGE / "data") in path.parents:
            continue  # the node pack that runs inside ComfyUI, not wanclip's own code
        for module in imported(path):
            if module.split(".")[0] in users:
                users[module.split(".")[0]].add(module_name(path))
    assert all(name.startswith("wanclip.sim.") for name in users["aiohttp"]), users["aiohttp"]
    assert users["huggingface_hub"] <= {"wanclip.models.install"} and users["httpx2"] <= {"wanclip.models.install"}
