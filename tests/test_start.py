"""What `wanclip render` does before its first POST /prompt stays small (issue #11: <= 0.5 s).

These guard behaviour, never time: `scripts/bench_start.py` measures the start.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest

from helpers import SHIPPED, load
from wanclip.checks.graph import graph_checks
from wanclip.comfy.capabilities import together
from wanclip.planning.workflow import is_link

# Loaded only where they are used: keyframes (PIL), setup (the hub client, the manifests), the
# simulator (aiohttp), the stitcher, and the tables drawn at the end of a render.
NOT_AT_START = ("PIL", "huggingface_hub", "aiohttp", "numpy", "wanclip.sim", "wanclip.models.manifest",
                "wanclip.models.install", "wanclip.checks.doctor", "wanclip.stitch.graph", "wanclip.stitch.join",
                "wanclip.stitch.pieces", "rich.table", "rich.live")


def test_the_render_command_imports_nothing_it_needs_only_later():
    code = ("import sys, wanclip.cli.entry, wanclip.cli.cmd_render; "
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {NOT_AT_START!r} or m in {NOT_AT_START!r}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def lists_every_model(graph: dict, missing: str | None = None) -> dict:
    """An ``/object_info`` of the graph's classes whose combos list exactly the graph's values."""
    info: dict = {}
    for node in graph.values():
        required = info.setdefault(node["class_type"], {"input": {"required": {}}})["input"]["required"]
        for name, value in node["inputs"].items():
            if isinstance(value, str) and not is_link(value):
                required.setdefault(name, [[], {}])[0].extend([] if value == missing else [value])
    return info


def test_model_checks_that_pass_do_not_read_the_setup_manifests(tmp_path):
    graph = load(SHIPPED)
    (tmp_path / "info.json").write_text(json.dumps(lists_every_model(graph)))
    code = ("import sys, json; from wanclip.checks.graph import graph_checks; "
            f"checks = graph_checks(json.load(open({str(SHIPPED)!r})), json.load(open({str(tmp_path / 'info.json')!r}))); "
            "assert all(c.ok for c in checks), checks; "
            "print('wanclip.models.manifest' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_a_missing_model_still_names_the_setup_command():
    graph = load(SHIPPED)
    name = next(v for n in graph.values() for k, v in n["inputs"].items() if k == "vae_name")
    [failed] = [c for c in graph_checks(graph, lists_every_model(graph, missing=name)) if not c.ok]
    assert name in failed.detail and "wanclip setup" in failed.fix


def test_together_runs_at_once_keeps_the_order_and_raises_the_first_error():
    running, most = [], []

    def call(value, wait=0.05):
        def run():
            running.append(value)
            most.append(len(running))
            time.sleep(wait)
            running.remove(value)
            if isinstance(value, Exception):
                raise value
            return value
        return run

    meeting = threading.Barrier(6, timeout=60)  # passes only when all six run at once (no clock)

    def meet(value):
        def run():
            running.append(value)
            most.append(len(running))
            meeting.wait()
            running.remove(value)
            return value
        return run

    assert together([meet(n) for n in range(6)]) == list(range(6))
    assert max(most) == 6
    with pytest.raises(KeyError):
        together([call(1), call(KeyError("first")), call(ValueError("second"), wait=0.0)])
    assert together([call(7)]) == [7] and threading.current_thread() is threading.main_thread()
