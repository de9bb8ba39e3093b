"""Benchmark: command start -> the server starts shot 1, `wanclip render` vs a bare client.

Issue #11's target is <= 0.5 s from the command start to the first POST /prompt (it was 1.4 s:
imports, the hub client render never needs, plan building); issue #22's is <= 0.35 s on the GPU host,
whose page cache is cold at a film's start. Both clients run as fresh processes
against the same simulated ComfyUI; the bare one is `python -c` with requests posting the first
shot's graph, the least any Python client pays. The start is measured by the server's own
execution log (the first prompt's start), so it includes the POST itself. Each start begins with
the server idle (the bare client exits with its prompt still rendering).

`wanclip render` is timed as the target names it (it stitches while rendering) and with
--no-stitch. "modules" is how many modules each client has imported when it sends its first POST
/prompt (one more, untimed run under a launcher that records them): on a host whose page cache is
cold, as the GPU host's is at the start of a film, each one is a file read before the GPU starts. The processes read compiled bytecode, as an installed package does (pip writes the
.pyc files): into a cache of their own (PYTHONPYCACHEPREFIX), filled by one untimed run first,
even where PYTHONDONTWRITEBYTECODE is set. --cold adds a row that compiles wanclip's own modules
on every start (PYTHONDONTWRITEBYTECODE, no cache: a source checkout that never wrote one).

Usage: python scripts/bench_start.py [--runs 5] [--cold]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from wanclip.planning.plan import plan_film
from wanclip.sim import serve_in_thread

BARE = """import json, sys, requests
graph = json.load(open(sys.argv[2]))
requests.post(sys.argv[1] + "/prompt", json={"prompt": graph, "client_id": "bare"}, timeout=30)
"""
# `python -c COUNTED RECORD -m MODULE ARGS...` or `... RECORD -c CODE ARGS...`: the client, which writes
# how many modules it has imported when it sends its first POST /prompt to RECORD.
COUNTED = """import http.client, os, runpy, sys
record, send = sys.argv[1], http.client.HTTPConnection.putrequest
def putrequest(self, method, url, *args, **kwargs):
    if method == "POST" and url.split("?")[0].endswith("/prompt") and not os.path.exists(record):
        with open(record, "w") as out:
            out.write(str(len(sys.modules)))
    return send(self, method, url, *args, **kwargs)
http.client.HTTPConnection.putrequest = putrequest
how, what = sys.argv[2:4]
sys.argv = [what, *sys.argv[4:]]
if how == "-m":
    runpy.run_module(what, run_name="__main__", alter_sys=True)
else:
    exec(compile(what, "<bare>", "exec"), {"__name__": "__main__"})
"""


def film(folder: Path) -> Path:
    path = folder / "start.yaml"
    path.write_text("title: Start\nwidth: 832\nheight: 480\nframes: 81\nseed_base: 1\nshots:\n"
                    + "".join(f"  - {{name: s{i:02d}, prompt: 'start benchmark shot {i}'}}\n" for i in range(12)))
    return path


def first_start(sim, after: float) -> float:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        starts = [e["started_ms"] / 1000 for e in sim.log() if e.get("started_ms") and e["started_ms"] / 1000 > after]
        if starts:
            return min(starts) - after
        time.sleep(0.01)
    raise SystemExit("the server never started a prompt")


def idle(sim) -> None:
    """Wait until the server has nothing queued or running: the bare client leaves its prompt rendering
    when it exits, and the next start must not queue behind it (nor share the CPU with its encode)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        queue = requests.get(sim.url + "/queue", timeout=10).json()
        if not queue.get("queue_running") and not queue.get("queue_pending"):
            return
        time.sleep(0.02)
    raise SystemExit("the server never went idle")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cold", action="store_true", help="also time starts that compile wanclip's modules")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wanclip-start-") as tmp:
        folder = Path(tmp)
        shots = film(folder)
        graph = folder / "graph.json"
        graph.write_text(json.dumps(plan_film(shots, out=folder / "plan").shots[0].graph))
        cached = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        cached["PYTHONPYCACHEPREFIX"] = str(folder / "pycache")
        cold = {k: v for k, v in os.environ.items() if k != "PYTHONPYCACHEPREFIX"}
        cold["PYTHONDONTWRITEBYTECODE"] = "1"
        render = [sys.executable, "-m", "wanclip", "render", str(shots), "--quiet"]
        clients = {"wanclip render": (render, cached), "wanclip render --no-stitch": ([*render, "--no-stitch"], cached),
                   **({"wanclip render, no .pyc": ([*render, "--no-stitch"], cold)} if args.cold else {}),
                   "bare requests.post": ([sys.executable, "-c", BARE], cached)}
        rows: dict[str, list[float]] = {name: [] for name in clients}
        modules: dict[str, int] = {}
        sim = serve_in_thread(folder / "comfy", load_seconds=0.0, step_seconds=0.001)

        def start(name: str, run: int, record: Path | None = None) -> float:
            command, env = clients[name]
            command = [*command, sim.url, str(graph)] if name.startswith("bare") else \
                [*command, "-s", sim.url, "--out", str(folder / f"out-{list(clients).index(name)}-{run}")]
            if record is not None:  # python -m wanclip ... / python -c BARE ... under the counting launcher
                command = [command[0], "-c", COUNTED, str(record), *command[1:]]
            idle(sim)
            started = time.time()
            subprocess.run(command, check=True, capture_output=True, env=env)
            return first_start(sim, started)

        try:
            for name in clients:  # fills the bytecode cache (and warms the disk cache): not timed
                start(name, -1)
            for run in range(args.runs):
                for name in clients:
                    rows[name].append(start(name, run))
            for name in clients:
                record = folder / f"modules-{list(clients).index(name)}.txt"
                start(name, args.runs, record)
                modules[name] = int(record.read_text())
        finally:
            sim.stop()
    print(f"command start -> the server starts shot 1 (12-shot film, {args.runs} runs each)\n")
    print(f"{'client':28} {'median s':>9} {'min s':>7} {'max s':>7} {'modules':>8}")
    for name, values in rows.items():
        print(f"{name:28} {statistics.median(values):>9.3f} {min(values):>7.3f} {max(values):>7.3f} "
              f"{modules[name]:>8}")


if __name__ == "__main__":
    main()
