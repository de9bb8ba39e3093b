"""Small helpers the tests share (not fixtures)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from wanclip.cli.app import app

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "workflows" / "wan22_t2v_lightx2v_4step.json"
SHIPPED_CORE = ROOT / "workflows" / "wan22_t2v_lightx2v_4step_core.json"


def run_cli(*args: str, env: dict | None = None):
    """Run ``wanclip ARGS`` in-process; returns click's Result (exit_code, stdout, stderr)."""
    return CliRunner().invoke(app, [str(a) for a in args], env=env, catch_exceptions=False)


def load(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_shots(folder: Path, text: str, name: str = "film.yaml") -> Path:
    path = Path(folder) / name
    path.write_text(text, encoding="utf-8")
    return path
