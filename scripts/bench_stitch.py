"""Benchmark `wanclip stitch` against the bare ffmpeg command and the pairwise re-encode chain.

    .venv/bin/python scripts/bench_stitch.py [--clips 12] [--frames 81] [--size 832x480] [--skip-chain]

Makes N synthetic H.264 clips the way VHS writes them (16 fps, mp4, time base 1/16384), then
times: wanclip xfade (probe + plan + one ffmpeg graph), the bare ffmpeg command of that same
graph, the naive chain of N-1 pairwise xfade re-encodes, and wanclip concat (stream copy).
Peak RSS is the largest ffmpeg child's (wait4), plus this Python process's own.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from wanclip import media
from wanclip.stitch import join as stitch

FADE = 0.3


def make_clips(folder: Path, count: int, frames: int, size: str) -> list[Path]:
    clips = []
    for i in range(1, count + 1):
        path = folder / f"clip_{i:02d}.mp4"
        subprocess.run([media.ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i",
                        f"testsrc2=size={size}:rate=16", "-vf", f"hue=h={i * 30}", "-frames:v", str(frames),
                        "-c:v", "libx264", "-preset", "fast", "-crf", "19", "-pix_fmt", "yuv420p",
                        "-video_track_timescale", "16384", str(path)], check=True)
        clips.append(path)
    return clips


def timed_ffmpeg(argv: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (MiB) of one ffmpeg run."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"ffmpeg failed: {proc.stderr.read().decode()[-2000:]}")
    return time.perf_counter() - start, usage.ru_maxrss // 1024


def bench_wanclip(clips: list[Path], out: Path, mode: str) -> tuple[float, int, int | str]:
    start = time.perf_counter()
    result = stitch.stitch(clips, out, mode=mode, cuts=[stitch.Cut("fade", FADE)] * (len(clips) - 1),
                           contact_sheet=False)
    seconds = time.perf_counter() - start
    # RUSAGE_CHILDREN is a running maximum, so it only describes the first wanclip run (xfade)
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024 if mode == "xfade" else "-"
    return seconds, result.frames, rss


def bench_bare(clips: list[Path], out: Path) -> tuple[float, int, int]:
    plan = stitch.plan_stitch([media.probe(c) for c in clips], out, exe=media.ffmpeg_exe(),
                              cuts=[stitch.Cut("fade", FADE)] * (len(clips) - 1))
    argv = [str(out) if a == str(plan.part) else a for a in plan.argv]
    seconds, rss = timed_ffmpeg(argv)
    return seconds, media.probe(out).frames, rss


def bench_chain(clips: list[Path], folder: Path) -> tuple[float, int, int]:
    """The write-up's way: re-encode film-so-far + next clip, N-1 times."""
    film, total, peak = clips[0], 0.0, 0
    for k, clip in enumerate(clips[1:], start=1):
        offset = media.probe(film).duration - FADE
        out = folder / f"chain_{k:02d}.mp4"
        seconds, rss = timed_ffmpeg([media.ffmpeg_exe(), "-v", "error", "-y", "-i", str(film), "-i", str(clip),
                                     "-filter_complex", f"xfade=transition=fade:duration={FADE}:offset={offset}",
                                     "-c:v", "libx264", "-preset", "fast", "-crf", "19", "-pix_fmt", "yuv420p",
                                     str(out)])
        total, peak, film = total + seconds, max(peak, rss), out
    return total, media.probe(film).frames, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=12)
    parser.add_argument("--frames", type=int, default=81)
    parser.add_argument("--size", default="832x480")
    parser.add_argument("--skip-chain", action="store_true", help="skip the slow pairwise chain")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="wanclip-bench-"))
    try:
        run(folder, args)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run(folder: Path, args) -> None:
    print(f"ffmpeg: {media.ffmpeg_exe()}  cpus: {os.cpu_count()}")
    clips = make_clips(folder, args.clips, args.frames, args.size)
    expected = (args.clips * args.frames / 16) - (args.clips - 1) * FADE
    rows = [("wanclip xfade", *bench_wanclip(clips, folder / "wanclip.mp4", "xfade")),
            ("bare ffmpeg, same graph", *bench_bare(clips, folder / "bare.mp4"))]
    if not args.skip_chain:
        rows.append(("pairwise re-encode chain", *bench_chain(clips, folder)))
    rows.append(("wanclip concat (copy)", *bench_wanclip(clips, folder / "concat.mp4", "concat")))
    print(f"{args.clips} clips x {args.frames} frames @ 16 fps, {args.size}, fade {FADE} s; "
          f"sum(d) - (N-1)t = {expected:.4f} s = {expected * 16:.1f} frames")
    print(f"{'strategy':<26} {'wall s':>8} {'frames':>7} {'seconds':>8} {'vs formula':>11} {'peak RSS MiB':>13}")
    for name, seconds, frames, rss in rows:
        diff = "" if "concat" in name else f"{frames - expected * 16:+.1f} fr"
        print(f"{name:<26} {seconds:>8.2f} {frames:>7} {frames / 16:>8.4f} {diff:>11} {rss:>13}")
    wan, bare = rows[0][1], rows[1][1]
    print(f"wanclip / bare = {wan / bare:.3f} (target <= 1.1)")
    if not args.skip_chain:
        print(f"chain / wanclip = {rows[2][1] / wan:.2f} (target >= 5)")
    print(f"python peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MiB")


if __name__ == "__main__":
    main()
