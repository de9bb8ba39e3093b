"""Benchmark: the two encodes between the last shot and the film, whole and split across cores.

After the last shot the film waits for two H.264 encodes of 81 frames: the clip (wanclip's node
pack on the server, VHS's ``video/h264-mp4`` settings, from the raw frames) and the film's piece
of that clip (the client, from the decoded clip, the film's x264 settings). This times each
encode whole and cut into K runs side by side (each its own IDR, joined by a stream copy), and
with x264's sliced threads: does a waited-for encode get faster from more processes?

``--picture noise``: every pixel random (21 MB a clip at crf 19; the GPU kit's random weights
decode to 8x8-block noise that still coded to 14.6 MB a clip: x264's worst case); ``--picture
blocks``: 8x8 blocks of noise (2 MB); ``--picture smooth``: a moving gradient.

Usage: python scripts/bench_encode.py [--picture noise|blocks|smooth] [--runs 3] [--splits 1,2,4,8] [--ffmpeg PATH]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

WIDTH, HEIGHT, FRAMES, FPS = 832, 480, 81, 16


def picture(kind: str) -> bytes:
    """FRAMES raw rgb24 frames."""
    rng = random.Random(7)
    frames = []
    if kind in ("noise", "blocks"):
        block = 1 if kind == "noise" else 8
        bw, bh = WIDTH // block, HEIGHT // block
        for _ in range(FRAMES):
            rows = []
            for _ in range(bh):
                blocks = rng.randbytes(bw * 3)
                row = blocks if block == 1 else b"".join(blocks[3 * i: 3 * i + 3] * block for i in range(bw))
                rows.append(row * block)
            frames.append(b"".join(rows))
    else:
        for f in range(FRAMES):
            row = bytes(v for x in range(WIDTH) for v in ((x + 4 * f) % 256, (x // 4 + f) % 256, 128))
            frames.append(b"".join(row for _ in range(HEIGHT)))
    return b"".join(frames)


def clip_argv(ffmpeg: str, out: str, extra: list[str]) -> list[str]:
    from wanclip_nodes.encoder import ffmpeg_args  # the node pack's own command (importable without ComfyUI)

    argv = ffmpeg_args(ffmpeg, WIDTH, HEIGHT, float(FPS), 3, 19, "yuv420p", "medium", out)
    return argv[:-3] + extra + argv[-3:]


def side_by_side(run, splits: int, out: Path, ffmpeg: str, folder: Path) -> tuple[float, int]:
    """``run(k, path)`` for each part at once (whole: into ``out``), the parts joined by a copy:
    (wall seconds, bytes of ``out``)."""
    started = time.monotonic()

    def one(k: int) -> Path:
        part = folder / f"{out.stem}-{k}.mp4" if splits > 1 else out
        run(k, part)
        return part

    with ThreadPoolExecutor(splits) as pool:
        parts = list(pool.map(one, range(splits)))
    if splits > 1:
        concat(ffmpeg, parts, out, folder)
    return time.monotonic() - started, out.stat().st_size


def encode_clip(ffmpeg: str, raw: bytes, folder: Path, splits: int, extra: list[str]) -> tuple[float, int]:
    """The node pack's encode of the raw frames into one mp4: whole, or ``splits`` runs + a copy."""
    size = WIDTH * HEIGHT * 3
    bounds = [FRAMES * k // splits for k in range(splits + 1)]

    def run(k: int, part: Path) -> None:
        proc = subprocess.Popen(clip_argv(ffmpeg, str(part), extra), stdin=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        proc.communicate(raw[bounds[k] * size: bounds[k + 1] * size])
        if proc.returncode:
            raise SystemExit(f"ffmpeg failed: {proc.stderr}")

    return side_by_side(run, splits, folder / f"clip-{splits}.mp4", ffmpeg, folder)


def concat(ffmpeg: str, parts: list[Path], out: Path, folder: Path) -> None:
    listing = folder / "list.txt"
    listing.write_text("".join(f"file '{p}'\n" for p in parts))
    subprocess.run([ffmpeg, "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy",
                    "-f", "mp4", str(out)], check=True)


def encode_body(ffmpeg: str, clip: Path, folder: Path, splits: int, start: int, end: int) -> tuple[float, int]:
    """The film's body piece of ``clip`` (frames start..end), as ``stitch.pieces`` encodes it."""
    from wanclip.media import probe
    from wanclip.stitch.layout import Body, Encoder, piece_argv

    info = probe(clip)
    bounds = [start + (end - start) * k // splits for k in range(splits + 1)]

    def run(k: int, part: Path) -> None:
        argv = piece_argv(Body(0, bounds[k], bounds[k + 1]), [info], Fraction(FPS), WIDTH, HEIGHT, Encoder(),
                          str(part), ffmpeg, True)
        subprocess.run(argv, check=True, capture_output=True)

    return side_by_side(run, splits, folder / f"body-{splits}.mp4", ffmpeg, folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--picture", choices=["noise", "blocks", "smooth"], default="noise")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--splits", default="1,2,4,8")
    parser.add_argument("--ffmpeg")
    args = parser.parse_args()
    from wanclip.media import ffmpeg_exe
    from wanclip.models import nodepack

    sys.path.insert(0, str(Path(nodepack.source_dir()).parent))  # the shipped node pack, as ComfyUI finds it

    ffmpeg = args.ffmpeg or ffmpeg_exe()
    splits = [int(s) for s in args.splits.split(",")]
    raw = picture(args.picture)
    rows = []
    with tempfile.TemporaryDirectory(prefix="wanclip-bench-encode-") as tmp:
        folder = Path(tmp)
        variants = [("clip (node pack, medium)", s, []) for s in splits]
        variants.append(("clip, sliced threads", 1, ["-x264-params", "sliced-threads=1"]))
        for name, s, extra in variants:
            runs = [encode_clip(ffmpeg, raw, folder, s, extra) for _ in range(args.runs)]
            rows.append((name, s, statistics.median(r[0] for r in runs), runs[0][1]))
        clip = folder / "clip-1.mp4"
        encode_clip(ffmpeg, raw, folder, 1, [])
        for s in splits:
            runs = [encode_body(ffmpeg, clip, folder, s, 5, FRAMES) for _ in range(args.runs)]
            rows.append(("film body piece (fast)", s, statistics.median(r[0] for r in runs), runs[0][1]))
    print(f"{FRAMES} frames {WIDTH}x{HEIGHT} of {args.picture}; {os.cpu_count()} CPUs; median of {args.runs}\n")
    print(f"{'encode':28} {'runs':>4} {'wall s':>7} {'bytes':>9}")
    for name, s, wall, size in rows:
        print(f"{name:28} {s:>4} {wall:>7.2f} {size:>9}")


if __name__ == "__main__":
    main()
