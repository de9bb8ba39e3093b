"""One-off proof for issue 18: films stitched by the old code (commit e80e706, ffmpeg-python) and by
today's (our own filtergraph builder) hold the very same frames. Not part of the suite.

Both sides stitch the same clips at crf 0 (lossless, so any change in a filter shows) into their own
folder: one graph (crossfades of several kinds, a hard cut, a continued chain link, a repeated clip),
the same film from pieces, one with music, one of odd clips through the concat filter; then every
film's video and audio framemd5 and the contact sheet's bytes are compared.

    git archive e80e706 src | tar -x -C /tmp/wanclip-e80e706
    pip install --target /tmp/oldpkgs ffmpeg-python==0.2.0
    python scripts/compare_stitch_frames.py --old /tmp/wanclip-e80e706/src:/tmp/oldpkgs \\
        --ffmpeg /path/to/ffmpeg-7.0.2 --ffmpeg "$(python -c 'import imageio_ffmpeg as i; print(i.get_ffmpeg_exe())')"
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# run by each side's Python: only API both the old and today's code have
SIDE = r"""
import json, sys
from pathlib import Path
try:
    from wanclip.stitch import join as s
except ImportError:
    from wanclip.stitch import core as s
from wanclip.ledger import Ledger, ShotRecord, ledger_path
folder, clips = Path(sys.argv[1]), json.loads(sys.argv[2])
paths = [Path(p) for p in clips["film"]]
cuts = [s.Cut("fade", 0.3), s.Cut("wipeleft", 0.25), s.Cut("cut", 0.0, continues=True), s.Cut("dissolve", 0.5)]
s.stitch(paths, folder / "one.mp4", cuts=cuts, crf=0, preset="ultrafast", contact_sheet=False)
s.stitch([paths[0], paths[1], paths[0]], folder / "repeat.mp4", cuts=[s.Cut("circleopen", 0.25), s.Cut("cut", 0.0)],
         crf=0, preset="ultrafast", contact_sheet=False)
s.stitch(paths[:2], folder / "music.mp4", cuts=cuts[:1], crf=0, preset="ultrafast", audio=Path(clips["music"]),
         contact_sheet=False)
s.stitch([paths[0], Path(clips["odd"])], folder / "concat.mp4", mode="concat", crf=0, preset="ultrafast",
         contact_sheet=False)
film = folder / "film"
transitions = [None, {"type": "fade", "duration": 0.3}, {"type": "wipeleft", "duration": 0.25}, None,
               {"type": "dissolve", "duration": 0.5}]
shots = [ShotRecord(index=i + 1, name=f"shot {i + 1}", graph_sha256="0" * 64, seed=i, frames=17, width=64,
                    height=64, fps=16, clip=str(Path(p).relative_to(film)), status="done", transition=t,
                    continues="shot 3" if i == 3 else None)
         for i, (p, t) in enumerate(zip(clips["ledger"], transitions))]
Ledger(path=ledger_path(film), film={"name": "compare"}, shots=shots).save()
got = s.stitch_film(film, crf=0, preset="ultrafast")
print(json.dumps({"code": s.__file__, "notes": got.notes}))
"""


def make_clips(folder: Path, exe: str) -> dict:
    def clip(path: Path, frames: int, seed: int, size: str = "96x64", rate: str = "16") -> str:
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([exe, "-v", "error", "-y", "-f", "lavfi", "-i",
                        f"testsrc2=size={size}:rate={rate},hue=h={seed * 47}", "-frames:v", str(frames),
                        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                        "-video_track_timescale", "16384", str(path)], check=True)
        return str(path)

    film = [clip(folder / "clips" / f"{i}.mp4", n, i) for i, n in enumerate([33, 41, 25, 33, 29])]
    music = folder / "music.m4a"
    subprocess.run([exe, "-v", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=440:duration=2",
                    "-c:a", "aac", str(music)], check=True)
    return {"film": film, "music": str(music), "odd": clip(folder / "odd.mp4", 30, 9, "80x48", "24")}


def framemd5(exe: str, path: Path, stream: str) -> list[str]:
    """The stream's frames' md5s ([] when the film has no such stream: ffmpeg then fails)."""
    done = subprocess.run([exe, "-v", "error", "-i", str(path), "-map", f"0:{stream}:0", "-f", "framemd5", "-"],
                          capture_output=True, text=True)
    out = done.stdout if done.returncode == 0 else ""
    return [line.rsplit(",", 1)[1].strip() for line in out.splitlines() if line and not line.startswith("#")]


def side(name: str, pythonpath: str, folder: Path, clips: dict, exe: str) -> str:
    out = folder / name
    (out / "film" / "clips").mkdir(parents=True, exist_ok=True)
    ledger = []
    for i, source in enumerate(clips["film"]):  # each side gets its own film folder (its own pieces)
        target = out / "film" / "clips" / f"{i}.mp4"
        target.write_bytes(Path(source).read_bytes())
        ledger.append(str(target))
    env = {**os.environ, "PYTHONPATH": pythonpath, "WANCLIP_FFMPEG": exe}
    done = subprocess.run([sys.executable, "-c", SIDE, str(out), json.dumps({**clips, "ledger": ledger})],
                          env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{name} side failed:\n{done.stderr[-3000:]}")
    return done.stdout.strip()


def compare(old_path: str, exe: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        clips = make_clips(folder, exe)
        notes = {name: side(name, path, folder, clips, exe)
                 for name, path in (("old", old_path), ("new", str(ROOT / "src")))}
        version = subprocess.run([exe, "-version"], capture_output=True, text=True).stdout.split("\n")[0]
        print(f"== {version}")
        for name, said in notes.items():
            print(f"   {name}: {said}")
        for film in ("one.mp4", "repeat.mp4", "music.mp4", "concat.mp4", "film/film.mp4"):
            for stream in ("v", "a"):
                old, new = (framemd5(exe, folder / s / film, stream) for s in ("old", "new"))
                if stream == "a" and not old and not new:
                    continue
                same = "IDENTICAL" if old == new else "DIFFERENT"
                print(f"   {film:14} {stream}: {len(old)} / {len(new)} frames, {same}")
        sheets = [hashlib.sha256((folder / s / "film" / "contact_sheet.png").read_bytes()).hexdigest()
                  for s in ("old", "new")]
        print(f"   contact_sheet.png: {'IDENTICAL' if sheets[0] == sheets[1] else 'DIFFERENT'} bytes")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--old", required=True, help="PYTHONPATH of the old code (and ffmpeg-python)")
    parser.add_argument("--ffmpeg", action="append", required=True)
    args = parser.parse_args()
    for exe in args.ffmpeg:
        compare(args.old, exe)


if __name__ == "__main__":
    main()
