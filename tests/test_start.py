"""What `wanclip render` does before its first POST /prompt stays small (issue #11: <= 0.5 s; issue
#22: <= 0.35 s on the GPU host, where the page cache is cold and each module imported is a disk read).

These guard behaviour, never time: `scripts/bench_start.py` measures the start.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from helpers import SHIPPED, load, write_shots
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


# `python -c FIRST_POST RECORD render ...` is `wanclip render ...` that writes, when it sends its first
# POST /prompt, the modules imported, how often it wrote the ledger and which installed packages'
# entry points it read by then (the request goes on: the render runs to its end).
FIRST_POST = """import http.client, importlib.metadata as metadata, json, os, runpy, sys
record, send, replace, writes = sys.argv[1], http.client.HTTPConnection.putrequest, os.replace, []
entry_points, scans = metadata.entry_points, []
def putrequest(self, method, url, *args, **kwargs):
    if method == "POST" and url.split("?")[0].endswith("/prompt") and not os.path.exists(record):
        with open(record, "w") as out:
            json.dump({"modules": sorted(sys.modules), "ledger_writes": len(writes), "scans": scans}, out)
    return send(self, method, url, *args, **kwargs)
def counted(source, target, **kwargs):
    writes.extend([target] if str(target).endswith("ledger.json") else [])
    return replace(source, target, **kwargs)
def scanned(**kwargs):
    scans.append(kwargs)
    return entry_points(**kwargs)
http.client.HTTPConnection.putrequest, os.replace, metadata.entry_points = putrequest, counted, scanned
sys.argv = ["wanclip", *sys.argv[2:]]
runpy.run_module("wanclip", run_name="__main__", alter_sys=True)
"""
# Each module imported before the first prompt is a file read on a start with a cold page cache (the
# GPU host's): these come after it, or only where the render needs them. rich: --quiet draws nothing;
# on a terminal the live table starts with the first shot event, once the first prompt is posted.
NOT_BEFORE_FIRST_POST = ("PIL", "huggingface_hub", "aiohttp", "numpy", "wanclip.sim", "wanclip.models",
                         "wanclip.stitch", "wanclip.review", "wanclip.render.v2", "wanclip.checks.v2_probe",
                         "wanclip.checks.doctor")
MOST_BEFORE_FIRST_POST = 604  # 525 measured (Python 3.11, this lockfile) + 15 %


@pytest.mark.parametrize(("how", "env", "not_yet"), [
    ("--quiet", {}, ("rich",)),
    ("--no-stitch", {"TTY_COMPATIBLE": "1"}, ("rich.live", "rich.table")),  # rich draws as on a terminal
])
def test_a_render_posts_its_first_prompt_before_importing_what_it_needs_later(sim, tmp_path, how, env, not_yet):
    shots = write_shots(tmp_path, "title: Start\nwidth: 64\nheight: 64\nframes: 5\nseed_base: 1\nshots:\n"
                                  "  - {name: one, prompt: 'first'}\n  - {name: two, prompt: 'second'}\n")
    record = tmp_path / "modules.json"
    done = subprocess.run([sys.executable, "-c", FIRST_POST, str(record), "render", str(shots), how,
                           "-s", sim.url, "--out", str(tmp_path / "out")], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **env})
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "film.mp4").is_file() == (how != "--no-stitch")  # its stitcher imported after
    seen = json.loads(record.read_text())
    modules = seen["modules"]
    early = [m for m in modules if any(m == n or m.startswith(n + ".") for n in (*NOT_BEFORE_FIRST_POST, *not_yet))]
    assert early == []
    assert len(modules) <= MOST_BEFORE_FIRST_POST, f"{len(modules)} modules imported before the first POST"
    # each write is an fsync: the ledger as merged with the plan (and the servers), then the shot's
    # prompt id, recorded before its POST so that a rerun re-attaches to it
    assert seen["ledger_writes"] == 2
    # pydantic's plugins, looked for in every installed package's metadata (a file each) when the
    # first model is made: the shots file's models use none
    assert seen["scans"] == []


def test_the_plugins_setting_is_only_for_the_import_and_a_users_own_is_kept(monkeypatch):
    from wanclip.cli.entry import PLUGINS, no_pydantic_plugins

    monkeypatch.delenv(PLUGINS, raising=False)
    with no_pydantic_plugins():
        assert os.environ[PLUGINS] == "__all__"
    assert PLUGINS not in os.environ  # a child process (ComfyUI under `wanclip serve`) never sees it
    monkeypatch.setenv(PLUGINS, "their_plugin")
    with no_pydantic_plugins():
        assert os.environ[PLUGINS] == "their_plugin"
    assert os.environ[PLUGINS] == "their_plugin"


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
