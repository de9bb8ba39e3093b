"""The stitch package's modules import only those above them (lazy imports count too), so no circle
comes back (core.py and pieces.py imported each other until issue 18); and ffmpeg-python stays gone."""

from __future__ import annotations

import ast
from pathlib import Path

import wanclip.stitch

PACKAGE = Path(wanclip.stitch.__file__).parent
# top to bottom: each module may import the ones before it in this list
ORDER = ["filtergraph", "graph", "layout", "run", "contact_sheet", "pieces", "join"]


def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module == "wanclip.stitch":
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("wanclip.stitch."):
            names.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            names |= {a.name.split(".")[2] for a in node.names if a.name.startswith("wanclip.stitch.")}
        if isinstance(node, ast.Import | ast.ImportFrom):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            assert not any(m == "ffmpeg" or m.startswith("ffmpeg.") for m in modules), path
    return names


def test_every_stitch_module_imports_only_those_above_it():
    assert {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"} == set(ORDER)
    for position, name in enumerate(ORDER):
        assert imported(PACKAGE / f"{name}.py") <= set(ORDER[:position]), name


def test_no_stitch_module_is_longer_than_600_lines():
    for path in PACKAGE.glob("*.py"):
        assert len(path.read_text(encoding="utf-8").splitlines()) <= 600, path.name
