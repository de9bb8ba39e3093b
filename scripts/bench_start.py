"""Benchmark: command start -> the server starts shot 1, `wanclip render` vs a bare client.

Issue #11's target is <= 0.5 s from the command start to the first POST /prompt (it was 1.4 s:
imports, the hub client render never needs, plan building). Both clients run as fresh processes
against the same simulated ComfyUI; the bare one is `python -c` with requests posting the first
shot's graph, the least any Python client pays. The start is measured by the server's own
execution log (the first prompt's start), so it includes the POST itself.

Usage: python scripts/bench_start.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from wanclip.plan import plan_film
from wanclip.sim import serve_in_thread

BARE = """import json, sys, requests
graph = json.load(open(sys.argv[2]))
requests.post(sys.argv[1] + "/prompt", json={"prompt": graph, "client_id": "bare"}, timeout=30)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    rows: dict[str, list[float]] = {"wanclip render": [], "bare requests.post": []}
    with tempfile.TemporaryDirectory(prefix="wanclip-start-") as tmp:
        folder = Path(tmp)
        shots = film(folder)
        graph = folder / "graph.json"
        graph.write_text(json.dumps(plan_film(shots, out=folder / "plan").shots[0].graph))
        sim = serve_in_thread(folder / "comfy", load_seconds=0.0, step_seconds=0.001)
        try:
            for run in range(args.runs):
                started = time.time()
                subprocess.run([sys.executable, "-m", "wanclip", "render", str(shots), "-s", sim.url, "--out",
                                str(folder / f"out{run}"), "--no-stitch", "--quiet"], check=True,
                               capture_output=True)
                rows["wanclip render"].append(first_start(sim, started))
                started = time.time()
                subprocess.run([sys.executable, "-c", BARE, sim.url, str(graph)], check=True, capture_output=True)
                rows["bare requests.post"].append(first_start(sim, started))
        finally:
            sim.stop()
    print(f"command start -> the server starts shot 1 (12-shot film, {args.runs} runs each)\n")
    print(f"{'client':24} {'median s':>9} {'min s':>7} {'max s':>7}")
    for name, values in rows.items():
        print(f"{name:24} {statistics.median(values):>9.3f} {min(values):>7.3f} {max(values):>7.3f}")


if __name__ == "__main__":
    main()
