"""How fast the simulator is, so it is never the bottleneck of a test or the demo.

Prints POST /prompt + GET /history round trips per second (target >= 200/s on 2 cores) and the
seconds to write an 81-frame 832x480 clip (target <= 1 s).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import requests

from wanclip.sim import serve_in_thread
from wanclip.sim.video import Clip, write_mp4

ROOT = Path(__file__).resolve().parent.parent


def round_trips(url: str, seconds: float = 3.0) -> float:
    graph = json.loads((ROOT / "workflows" / "wan22_t2v_lightx2v_4step.json").read_text(encoding="utf-8"))
    graph["74"]["inputs"].update(width=64, height=64, length=5)
    body = json.dumps({"prompt": graph, "client_id": "bench"})
    session = requests.Session()
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        pid = session.post(url + "/prompt", data=body).json()["prompt_id"]
        session.get(f"{url}/history/{pid}")
        done += 1
    return done / (time.perf_counter() - start)


def clip_seconds(folder: Path, runs: int = 3) -> float:
    best = float("inf")
    for i in range(runs):
        start = time.perf_counter()
        write_mp4(folder / f"bench_{i}.mp4", Clip(832, 480, 81, "a red fox running through fresh snow", 42), 16.0)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        handle = serve_in_thread(Path(tmp) / "output", load_seconds=0, step_seconds=0)
        try:
            rate = round_trips(handle.url)
        finally:
            handle.stop()
        seconds = clip_seconds(Path(tmp))
    print(f"{'measure':<44} {'value':>10} {'target':>10}")
    print(f"{'POST /prompt + GET /history round trips/s':<44} {rate:>10.0f} {'>= 200':>10}")
    print(f"{'81-frame 832x480 clip, seconds':<44} {seconds:>10.2f} {'<= 1.00':>10}")


if __name__ == "__main__":
    main()
