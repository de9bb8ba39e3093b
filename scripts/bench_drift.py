"""Colour drift along a chain, with and without wanclip's correction, on the simulator's drift model.

Each pass of a real chain through VAE encode, sampling and decode shifts colour a little; after
about six links it shows. The simulator models that: a clip started from a picture ends on that
picture with a warm cast (R x (1 + drift), B x (1 - drift)). This renders the same chain twice on
one simulator, through the real render path (upload, exact last-frame decode, queue), once with
``colour_match: false`` and once with ``colour_match: true`` (each link's input matched to the
chain's first keyframe, ``drift.match_colours``), and prints, per link, how far its last frame's
colour is from the first keyframe's: the largest per-channel mean difference (levels, 0-255) and
the Hellinger distance of the 32-bin histograms (0-1).

No GPU here: the real engine's drift is not measured (the GPU kit has random weights, whose output
is noise). The script shows the correction holds a steady per-link cast to one link's worth.

    .venv/bin/python scripts/bench_drift.py [--links 6] [--drift 0.03] [--size 256x144]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from PIL import Image

from wanclip import media
from wanclip.ledger import load_ledger
from wanclip.planning.plan import plan_film
from wanclip.render.drift import Drift, colour_stats, distance
from wanclip.render.loop import RenderOptions, render_film
from wanclip.sim import serve_in_thread
from wanclip.sim.video import band_height, strip_height


def chain_file(folder: Path, links: int, width: int, height: int, match: bool) -> Path:
    lines = ["title: Drift Bench", f"width: {width}", f"height: {height}", "frames: 17", "seed_base: 40",
             f"colour_match: {str(match).lower()}", "shots:",
             "  - {name: link-1, prompt: 'a dancer in a red coat on a rainy street'}"]
    lines += [f"  - {{name: link-{i}, prompt: 'the dancer keeps turning, link {i}', continue: true}}"
              for i in range(2, links + 1)]
    path = folder / f"chain-{match}.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def last_frame(clip: Path) -> Image.Image:
    info = media.probe(clip)
    raw = media.grab_frames(info, [info.frames - 1], info.width, info.height)[0]
    return Image.frombytes("RGB", (info.width, info.height), raw)


def chain_drift(url: str, folder: Path, links: int, width: int, height: int, match: bool) -> list[Drift]:
    """Render the chain; each link's last frame against the first keyframe (link 1's last frame)."""
    plan = plan_film(chain_file(folder, links, width, height, match), out=folder / f"film-{match}")
    result = render_film(plan, RenderOptions(servers=[url]))
    if result.exit_code:
        raise SystemExit(f"the chain did not render: {[s.error for s in result.ledger.shots if s.error]}")
    ledger = load_ledger(plan.out_dir)
    frames = [last_frame(plan.out_dir / s.clip) for s in ledger.shots]
    picture = (0, 0, width, height - strip_height(band_height(height)))  # the simulator's strip is no picture
    reference = colour_stats(frames[0].crop(picture))
    return [distance(reference, colour_stats(f.crop(picture))) for f in frames]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--links", type=int, default=6, help="links in the chain (default 6)")
    parser.add_argument("--drift", type=float, default=0.03, help="the simulator's per-link cast (default 0.03)")
    parser.add_argument("--size", default="256x144", help="frame size WxH, multiples of 16 (default 256x144)")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory(prefix="wanclip-drift-") as tmp:
        folder = Path(tmp)
        sim = serve_in_thread(folder / "comfy" / "output", load_seconds=0.05, step_seconds=0.01, drift=args.drift)
        try:
            plain = chain_drift(sim.url, folder, args.links, width, height, match=False)
            matched = chain_drift(sim.url, folder, args.links, width, height, match=True)
        finally:
            sim.stop()
    print(f"colour drift of each link's last frame from the chain's first keyframe "
          f"(simulator drift {args.drift:g} per link, {width}x{height})")
    print(f"{'link':>4} | {'no correction: mean Δ':>22} {'hist':>6} | {'colour_match: mean Δ':>21} {'hist':>6}")
    print("-" * 70)
    for i, (a, b) in enumerate(zip(plain, matched, strict=True), 1):
        print(f"{i:>4} | {a.mean_delta:>22.2f} {a.hist:>6.3f} | {b.mean_delta:>21.2f} {b.hist:>6.3f}")
    print(f"last link: {plain[-1].mean_delta:.2f} levels without correction, {matched[-1].mean_delta:.2f} with "
          f"({plain[-1].mean_delta / max(matched[-1].mean_delta, 1e-9):.1f}x less)")


if __name__ == "__main__":
    main()
