"""Stitching a chain (issue #12): a continued shot starts on its predecessor's last frame, so the
cut into it is a hard cut that drops that repeated frame, in the one graph and from pieces alike.

The clips are cut from one continuous picture sequence (ffmpeg's testsrc2: a moving picture and a
frame counter), each link starting on the frame the one before ended on, as image-to-video makes
them. The film is then decoded frame by frame and compared with that sequence: the motion runs on
with no frame shown twice, and the film has exactly as many frames as the formula says.
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageStat

from helpers import run_cli
from test_pieces import framemd5
from test_stitch import chosen_ffmpeg  # noqa: F401 (an autouse fixture: the ffmpeg WANCLIP_FFMPEG names)
from wanclip import media
from wanclip.files import sha256_file
from wanclip.ledger import Ledger, ShotRecord, ledger_path, load_ledger
from wanclip.planning import timeline
from wanclip.stitch import join as stitch
from wanclip.stitch import pieces

SIZE = (64, 64)
FPS = 16
LINK = 17  # frames per link: frames 0..16 of the sequence, then 16..32, then 32..48


def sequence_clip(path: Path, start: int, frames: int, hue: int = 0) -> Path:
    """Frames ``start`` .. ``start + frames - 1`` of one continuous sequence, as a clip of its own."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([media.ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size={SIZE[0]}x{SIZE[1]}:rate={FPS},hue=h={hue},"
                    f"trim=start_frame={start}:end_frame={start + frames},setpts=PTS-STARTPTS",
                    "-frames:v", str(frames), "-c:v", "libx264", "-preset", "ultrafast", "-crf", "12",
                    "-pix_fmt", "yuv420p", "-video_track_timescale", "16384", str(path)], check=True)
    return path


def frames_of(path: Path) -> list[Image.Image]:
    """Every frame of a video, decoded to RGB."""
    raw = subprocess.run([media.ffmpeg_exe(), "-v", "error", "-i", str(path), "-map", "0:v:0", "-f", "rawvideo",
                          "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
    size = SIZE[0] * SIZE[1] * 3
    assert len(raw) % size == 0
    return [Image.frombytes("RGB", SIZE, raw[i:i + size]) for i in range(0, len(raw), size)]


def psnr(a: Image.Image, b: Image.Image) -> float:
    mse = sum(rms * rms for rms in ImageStat.Stat(ImageChops.difference(a, b)).rms) / 3
    return float("inf") if mse == 0 else 10 * math.log10(255 * 255 / mse)


def write_ledger(folder: Path, clips: list[Path], transitions: list[dict | None],
                 continues: list[bool], statuses: list[str] | None = None) -> Path:
    """A film folder as render leaves it: ``continues[i]`` makes shot i a link continuing shot i-1."""
    shots = []
    for i, (clip, cut, cont) in enumerate(zip(clips, transitions, continues, strict=True)):
        shots.append(ShotRecord(
            index=i + 1, name=f"{i + 1:02d}", graph_sha256="0" * 64, seed=i, frames=media.probe(clip).frames,
            width=SIZE[0], height=SIZE[1], fps=FPS, clip=str(clip.relative_to(folder)),
            clip_sha256=sha256_file(clip), status=(statuses or ["done"] * len(clips))[i], transition=cut,
            continues=f"{i:02d}" if cont else None))
    Ledger(path=ledger_path(folder), film={"name": "chain", "shots_file": "chain.yaml"}, shots=shots).save()
    return folder


CUT = {"type": "cut", "duration": 0.3}


@pytest.fixture
def chain(tmp_path) -> Path:
    """Three links of 17 frames: link k+1's first frame is link k's last."""
    clips = [sequence_clip(tmp_path / "clips" / f"{k + 1:02d}_walk.mp4", k * (LINK - 1), LINK) for k in range(3)]
    return write_ledger(tmp_path, clips, [None, CUT, CUT], [False, True, True])


@pytest.fixture(scope="module")
def truth(tmp_path_factory) -> list[Image.Image]:
    """The whole sequence the links were cut from, decoded the same way (one clip of 49 frames)."""
    return frames_of(sequence_clip(tmp_path_factory.mktemp("truth") / "all.mp4", 0, 3 * LINK - 2))


def test_neighbouring_frames_of_the_sequence_are_told_apart(truth):
    """The check below means something: a frame shown twice would be seen (neighbours are under 25 dB apart)."""
    assert max(psnr(a, b) for a, b in zip(truth, truth[1:], strict=False)) < 30


@pytest.mark.parametrize("how", ["pieces", "one graph"])
def test_a_three_link_chain_is_seamless_and_frame_exact(chain, truth, how):
    args = ["--crf", "10", *(["--no-pieces"] if how == "one graph" else [])]  # the seams, not x264, are under test
    result = run_cli("stitch", "--from", chain, "--json", *args)
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    assert got["frames"] == 3 * LINK - 2 == 49
    assert got["seconds"] == timeline.film_seconds([LINK] * 3, [None, None], FPS, [False, True, True]) == 49 / 16
    film = frames_of(chain / "film.mp4")
    assert len(film) == 49
    links = [frames_of(p) for p in sorted((chain / "clips").glob("*.mp4"))]
    for k in (1, 2):
        seam = k * (LINK - 1)  # the film's frame showing link k's last frame (= link k+1's first)
        assert psnr(film[seam], links[k - 1][-1]) >= 35
        assert psnr(film[seam + 1], links[k][1]) >= 35  # the next one is link k+1's frame 1
        assert psnr(film[seam], film[seam + 1]) < 30  # not the same frame twice (17-19 dB)
    # every frame is the sequence's own: the motion runs on across both seams
    assert min(psnr(a, b) for a, b in zip(film, truth, strict=True)) >= 35


def test_both_stitch_paths_give_the_same_frames(chain):
    """At crf 0 (lossless) the pieces and the one graph hold the very same frames."""
    stitch.stitch_film(chain, chain / "one.mp4", contact_sheet=False, pieces=False, crf=0)
    stitch.stitch_film(chain, chain / "pieces.mp4", contact_sheet=False, crf=0)
    assert framemd5(chain / "pieces.mp4") == framemd5(chain / "one.mp4")
    names = sorted(p.name.split("-")[0] + "-" + "-".join(p.name.split("-")[2:4])
                   for p in (chain / "pieces").glob("body-*.mp4"))
    assert names == ["body-0-17", "body-1-17", "body-1-17"]  # the links' bodies start on their frame 1


# a crossfade, a hard cut and a chain in one film; fades of a whole number of frames (0.25 s = 4,
# 0.3125 s = 5) so the formula is the exact frame count
MIXED = [  # (frames, transition into it, continues)
    (21, None, False),
    (25, {"type": "fade", "duration": 0.25}, False),
    (17, {"type": "cut", "duration": 0.3}, False),
    (17, CUT, True),
    (21, CUT, True),
    (19, {"type": "wipeleft", "duration": 0.3125}, False),
]


@pytest.fixture
def mixed(tmp_path) -> Path:
    clips, start = [], 0
    for i, (frames, _, cont) in enumerate(MIXED):
        if not cont:
            start = 0  # a new scene: its own picture
        clips.append(sequence_clip(tmp_path / "clips" / f"{i + 1:02d}_shot.mp4", start, frames, hue=i * 40))
        start += frames - 1
    return write_ledger(tmp_path, clips, [t for _, t, _ in MIXED], [c for _, _, c in MIXED])


def test_a_film_mixing_a_crossfade_a_cut_and_a_chain_is_as_long_as_the_formula(mixed):
    overlaps = [t["duration"] if t["type"] != "cut" else None for _, t, _ in MIXED[1:]]
    seconds = timeline.film_seconds([f for f, _, _ in MIXED], overlaps, FPS, [c for _, _, c in MIXED])
    assert seconds * FPS == 21 + 25 + 17 + 16 + 20 + 19 - 4 - 5 == 109
    for how in ("pieces", "one graph"):
        got = stitch.stitch_film(mixed, mixed / f"{how}.mp4", contact_sheet=False, pieces=how == "pieces")
        assert (got.frames, got.seconds) == (109, seconds)
        assert len(frames_of(mixed / f"{how}.mp4")) == 109
        assert how == "one graph" or not any("one graph" in n for n in got.notes)
    stitch.stitch_film(mixed, mixed / "one0.mp4", contact_sheet=False, pieces=False, crf=0)
    stitch.stitch_film(mixed, mixed / "pieces0.mp4", contact_sheet=False, crf=0)
    assert framemd5(mixed / "pieces0.mp4") == framemd5(mixed / "one0.mp4")


SHIM = """#!{python}
# ffmpeg as 7.0 behaves: its setpts always unsets the frame rate (later ones keep it unless strip_fps)
import os, sys
real, log, strip = {real!r}, {log!r}, {strip!r}
argv = [a.replace("setpts=PTS-STARTPTS", "setpts=PTS-STARTPTS:strip_fps=1") if strip and before == "-filter_complex"
        else a for before, a in zip(["", *sys.argv[1:]], sys.argv[1:])]
with open(log, "a") as fh:
    fh.write(" ".join(argv) + "\\n")
os.execv(real, [real, *argv])
"""


@pytest.fixture
def ffmpeg_7(tmp_path, monkeypatch) -> Path:
    """WANCLIP_FFMPEG as a wrapper that makes this ffmpeg's setpts forget the frame rate, as 7.0's
    does (imageio-ffmpeg 0.6.0 and many distros ship 7.0; CI has the wheel's newer one only): xfade
    then refuses "The inputs needs to be a constant frame rate; current rate of 1/0 is invalid". An
    ffmpeg whose setpts has no strip_fps is run as it is (7.0 itself). Returns the log of its calls."""
    import sys

    real = media.ffmpeg_exe()
    strip = "strip_fps" in subprocess.run([real, "-hide_banner", "-h", "filter=setpts"], capture_output=True,
                                          text=True, check=True).stdout
    log, shim = tmp_path / "ffmpeg-calls.log", tmp_path / "ffmpeg-7"
    shim.write_text(SHIM.format(python=sys.executable, real=real, log=str(log), strip=strip))
    shim.chmod(0o755)
    monkeypatch.setenv("WANCLIP_FFMPEG", str(shim))
    # the wrapper is faithful: a trimmed, restarted stream into xfade is what ffmpeg 7.0 refuses
    refused = subprocess.run([str(shim), "-hide_banner", "-f", "lavfi", "-i", "testsrc2=size=64x64:rate=16:duration=2",
                              "-f", "lavfi", "-i", "testsrc2=size=64x64:rate=16:duration=2", "-filter_complex",
                              "[0:v]trim=start_frame=1,setpts=PTS-STARTPTS[a];[a][1:v]xfade=duration=0.25:offset=1",
                              "-f", "null", "-"], capture_output=True, text=True)
    assert refused.returncode != 0 and "constant frame rate" in refused.stderr
    log.unlink()
    return log


def test_ffmpeg_7_joins_a_mixed_film_from_pieces_and_in_one_graph(mixed, ffmpeg_7):
    """Both graphs trim and restart clips with setpts (a piece at its first frame, a continued clip
    after its first) and then xfade or concat them; each such stream goes through fps + settb again,
    so ffmpeg 7.0 sees a frame rate, and the frames stay those ffmpeg 9 gives (framemd5 at crf 0)."""
    one = stitch.stitch_film(mixed, mixed / "one.mp4", contact_sheet=False, pieces=False, crf=0)
    ours = stitch.stitch_film(mixed, mixed / "pieces.mp4", contact_sheet=True, crf=0)
    assert not any("one graph" in n for n in ours.notes), ours.notes
    assert one.frames == ours.frames == 109
    calls = ffmpeg_7.read_text().splitlines()
    assert any("xfade" in c and "setpts" in c and ".part" in c and "pieces" in c for c in calls)  # a piece
    assert any("-f concat" in c for c in calls) and any("concat=" in c and "xfade" in c for c in calls)
    assert framemd5(mixed / "pieces.mp4") == framemd5(mixed / "one.mp4")  # WANCLIP_FFMPEG: through the shim too


def test_the_render_path_joins_a_chain_from_the_pieces_it_fed(chain):
    """As `wanclip render` does it: FilmPieces made from the ledger's transitions, fed the ledger."""
    ledger = load_ledger(chain)
    cuts = [stitch.ledger_cut(s.transition, None, None) for s in ledger.shots[1:]]
    with pieces.FilmPieces(chain, cuts, names=[s.name for s in ledger.shots]) as fed:
        fed.feed_ledger(ledger)
        assert [c.continues for c in fed.cuts] == [True, True]
        result = stitch.stitch_film(chain, made=fed)
    assert result.frames == 49 and fed.encoded  # its own pieces, not a fresh set
    assert not any("one graph" in n for n in result.notes)


def test_a_crossfade_into_a_continued_shot_is_refused(chain):
    ledger = load_ledger(chain)
    ledger.shots[2].transition = {"type": "fade", "duration": 0.25}
    ledger.save()
    result = run_cli("stitch", "--from", chain)
    assert result.exit_code == 1
    assert ("shot 03 continues 02, but the ledger " + str(chain / "ledger.json") + " records a fade into it") \
        in " ".join(result.stderr.split())
    assert "must be a hard cut" in result.stderr and "transition: cut" in result.stderr
    assert not (chain / "film.mp4").exists()


def test_the_one_graph_names_a_crossfade_into_a_continued_clip():
    from fractions import Fraction

    from wanclip.errors import StitchError
    from wanclip.media import ClipInfo

    clips = [ClipInfo(Path(f"/films/{n}.mp4"), 17, Fraction(16), 64, 64, "h264", "High", "yuv420p", "1:1",
                      "1/16384", False) for n in ("a", "b")]
    with pytest.raises(StitchError, match="the fade into b.mp4 cannot be: it continues a.mp4"):
        stitch.plan_stitch(clips, Path("film.mp4"), cuts=[stitch.Cut("fade", 0.25, continues=True)])


def test_transition_for_every_cut_keeps_the_chains_hard_cuts(mixed):
    result = run_cli("stitch", "--from", mixed, "--transition", "fade", "--duration", "0.25")
    assert result.exit_code == 0, result.output
    # 21 + 25 + 17 + 16 + 20 + 19 kept frames, three fades of 4 frames (into 02, 03 and 06)
    assert media.probe(mixed / "film.mp4").frames == 118 - 12
    assert "kept the hard cuts into continued shots (04, 05): --transition fade joins the other shots" \
        in " ".join(result.stdout.split())


def test_concat_mode_drops_the_repeated_frames_through_the_filter(chain, truth):
    result = run_cli("stitch", "--from", chain, "--mode", "concat", "--crf", "10", "--json")
    assert result.exit_code == 0, result.output
    assert (json.loads(result.stdout)["mode"], json.loads(result.stdout)["frames"]) == ("concat-filter", 49)
    assert min(psnr(a, b) for a, b in zip(frames_of(chain / "film.mp4"), truth, strict=True)) >= 35


def test_a_link_whose_predecessor_is_left_out_keeps_its_first_frame(tmp_path):
    clips = [sequence_clip(tmp_path / "clips" / f"{k + 1:02d}_walk.mp4", k * (LINK - 1), LINK) for k in range(3)]
    folder = write_ledger(tmp_path, clips, [None, CUT, CUT], [False, True, True], ["done", "failed", "done"])
    got = stitch.stitch_film(folder, skip_missing=True, contact_sheet=False)
    assert got.frames == 2 * LINK
    assert "shot 03 continues 02, which is left out: its first frame stays" in got.notes
