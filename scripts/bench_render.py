"""Benchmark: `wanclip render` vs the write-up's submit-poll-next loop, on simulated ComfyUI servers.

Each run renders the same 12-shot film with a fixed model-load and step time. "Ideal" is what the
GPU(s) could not avoid: the model load plus the sum of the shot times the servers themselves
measured (their execution logs), split over the servers. The idle gap is the time a server sat
with nothing to do between two shots, from the servers' own timestamps. The client runs as a
separate process so its peak RSS is its own.

Usage: python scripts/bench_render.py [--shots 12] [--load 2] [--step 0.25] [--size 832x480]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from wanclip.planning.plan import plan_film
from wanclip.sim import serve_in_thread

ROOT = Path(__file__).resolve().parent.parent


def film_file(folder: Path, shots: int, width: int, height: int) -> Path:
    lines = ["title: Bench Film", f"width: {width}", f"height: {height}", "frames: 81", "seed_base: 100", "shots:"]
    lines += [f"  - {{name: shot-{i:02d}, prompt: 'benchmark shot {i}'}}" for i in range(1, shots + 1)]
    path = folder / "bench.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def start_sims(folder: Path, count: int, load: float, step: float) -> list:
    return [serve_in_thread(folder / f"comfy{i}", load_seconds=load, step_seconds=step) for i in range(count)]


def gaps(log: list[dict]) -> list[float]:
    runs = sorted((e["started_ms"], e["finished_ms"]) for e in log if e["status"] == "success")
    return [(b[0] - a[1]) / 1000 for a, b in zip(runs, runs[1:], strict=False)]


def ideal(logs: list[list[dict]]) -> float:
    """Busy time of the busiest-possible balanced split: Σ server time / servers, at least the longest log."""
    busy = [sum((e["finished_ms"] - e["started_ms"]) / 1000 for e in log if e["status"] == "success") for log in logs]
    return max(sum(busy) / len(busy), 0.0)


def run_wanclip(shots: Path, urls: list[str], out: Path) -> tuple[float, int]:
    """Wall seconds and peak RSS (MB) of `wanclip render --no-stitch` in its own process."""
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "wanclip", "render", str(shots), "--server", ",".join(urls),
                           "--out", str(out), "--no-stitch", "--quiet"], capture_output=True, text=True)
    wall = time.monotonic() - start
    if proc.returncode:
        raise SystemExit(f"wanclip render failed:\n{proc.stdout}\n{proc.stderr}")
    return wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024


def run_loop(shots: Path, url: str, out: Path, interval: float) -> float:
    """The write-up's method: submit one shot, poll /history every `interval` s, download, next."""
    plan = plan_film(shots, out=out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with requests.Session() as http:
        for shot in plan.shots:
            pid = http.post(f"{url}/prompt", json={"prompt": shot.graph}, timeout=30).json()["prompt_id"]
            while not (entry := http.get(f"{url}/history/{pid}", timeout=30).json().get(pid)):
                time.sleep(interval)
            for output in entry["outputs"].values():
                for item in output.get("gifs", []):
                    data = http.get(f"{url}/view", params={k: item[k] for k in ("filename", "subfolder", "type")},
                                    timeout=60).content
                    (out / f"{shot.stem}.mp4").write_bytes(data)
    return time.monotonic() - start


def measure(name: str, sims: list, wall: float, rss: int | None) -> dict:
    logs = [s.log() for s in sims]
    all_gaps = [g for log in logs for g in gaps(log)]
    best = ideal(logs)
    return {"run": name, "servers": len(sims), "wall": wall, "ideal": best, "ratio": wall / best,
            "gap_median": statistics.median(all_gaps) * 1000 if all_gaps else 0.0,
            "gap_max": max(all_gaps) * 1000 if all_gaps else 0.0, "rss": rss}


def film_parser(description: str) -> argparse.ArgumentParser:
    """The benchmark film's options (bench_pieces renders the same film)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--shots", type=int, default=12)
    parser.add_argument("--load", type=float, default=2.0)
    parser.add_argument("--step", type=float, default=0.25)
    parser.add_argument("--size", default="832x480")
    return parser


def main() -> None:
    args = film_parser(__doc__.splitlines()[0]).parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    rows = []
    with tempfile.TemporaryDirectory(prefix="wanclip-bench-") as tmp:
        folder = Path(tmp)
        shots = film_file(folder, args.shots, width, height)
        for count in (1, 4):
            sims = start_sims(folder / f"w{count}", count, args.load, args.step)
            try:
                wall, rss = run_wanclip(shots, [s.url for s in sims], folder / f"out-w{count}")
                rows.append(measure(f"wanclip render ({count} server{'s' * (count > 1)})", sims, wall, rss))
            finally:
                for sim in sims:
                    sim.stop()
        sims = start_sims(folder / "loop", 1, args.load, args.step)
        try:
            shot_time = rows[0]["ideal"] / args.shots
            interval = shot_time * 5 / 40  # the write-up polled every 5 s for 40 s shots
            wall = run_loop(shots, sims[0].url, folder / "out-loop", interval)
            rows.append(measure(f"submit, poll every {interval:.2f} s, next", sims, wall, None))
        finally:
            sims[0].stop()
    print(f"{args.shots} shots of 81 frames at {width}x{height}; simulated load {args.load} s, "
          f"{args.step} s per step (4 steps)\n")
    print(f"{'run':40} {'servers':>7} {'wall s':>8} {'ideal s':>8} {'wall/ideal':>10} "
          f"{'idle gap median ms':>18} {'max ms':>8} {'client RSS MB':>13}")
    for r in rows:
        rss = f"{r['rss']}" if r["rss"] is not None else "-"
        print(f"{r['run']:40} {r['servers']:>7} {r['wall']:>8.2f} {r['ideal']:>8.2f} {r['ratio']:>10.3f} "
              f"{r['gap_median']:>18.1f} {r['gap_max']:>8.1f} {rss:>13}")


if __name__ == "__main__":
    main()
