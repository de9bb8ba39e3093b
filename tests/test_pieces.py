"""Stitching from pieces (issue #11): the same film as the one graph, made as clips arrive.

Small clips (a handful of frames) keep this fast. Sameness is checked three ways:

* at crf 0 (x264 lossless), frame by frame (framemd5): the frames are identical before encoding;
* at the default crf 19, ffmpeg's psnr filter against the one graph's film, on clips like the
  simulator's (a card, text, a moving bar): >= 45 dB;
* on busy synthetic clips (testsrc2 at 64x64, where two crf-19 encodes of the very same frames
  disagree at ~39 dB, keyframes and rate control differing), each film against the true frames
  (the crf-0 film): the pieces are as faithful as the one graph, within a dB.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from PIL import Image, ImageChops

from helpers import wait_until
from test_media import make_clip
from test_stitch import chosen_ffmpeg, write_ledger  # noqa: F401 (chosen_ffmpeg: an autouse fixture)
from wanclip import media
from wanclip.sim.video import Clip, write_mp4
from wanclip.stitch import contact_sheet, layout, pieces
from wanclip.stitch import join as stitch
from wanclip.stitch.graph import Cut

# transitions of every kind a film has: hard cut, fades of a fractional and a whole number of frames
CUTS = [None, {"type": "fade", "duration": 0.3}, {"type": "cut", "duration": 0.3},
        {"type": "wipeleft", "duration": 0.5}, {"type": "dissolve", "duration": 0.25},
        {"type": "circleopen", "duration": 0.3125}]
FRAMES = (17, 25, 21, 33, 20, 19)


def varied_clip(path: Path, frames: int, seed: int) -> Path:
    """A clip whose picture depends on ``seed`` (make_clip's all look alike)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([media.ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size=64x64:rate=16,hue=h={seed * 47}", "-frames:v", str(frames),
                    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                    "-video_track_timescale", "16384", str(path)], check=True)
    return path


@pytest.fixture
def film(tmp_path) -> Path:
    clips = [varied_clip(tmp_path / "clips" / f"{i + 1:02d}_shot.mp4", n, i) for i, n in enumerate(FRAMES)]
    return write_ledger(tmp_path, clips, CUTS)


def framemd5(path: Path) -> list[str]:
    out = subprocess.run([media.ffmpeg_exe(), "-v", "error", "-i", str(path), "-map", "0:v:0", "-f", "framemd5",
                          "-"], capture_output=True, text=True, check=True).stdout
    return [line.rsplit(",", 1)[1].strip() for line in out.splitlines() if not line.startswith("#")]


def psnr(a: Path, b: Path) -> float:
    done = subprocess.run([media.ffmpeg_exe(), "-hide_banner", "-i", str(a), "-i", str(b), "-lavfi",
                           "[0:v][1:v]psnr", "-f", "null", "-"], capture_output=True, text=True, check=True)
    average = re.search(r"PSNR .* average:(\S+)", done.stderr).group(1)
    return float("inf") if average == "inf" else float(average)


def piece_files(film_dir: Path) -> dict[str, int]:
    """Piece name -> inode: a rewritten piece gets a new inode (written to .part, renamed)."""
    return {p.name: p.stat().st_ino for p in (film_dir / "pieces").glob("*.mp4")}


def test_the_film_from_pieces_is_the_one_graphs_film(tmp_path):
    clips = []
    for i, n in enumerate(FRAMES):
        clips.append(tmp_path / "clips" / f"{i + 1:02d}_shot.mp4")
        clips[-1].parent.mkdir(parents=True, exist_ok=True)
        write_mp4(clips[-1], Clip(128, 80, n, f"shot {i + 1}: a lighthouse at dusk", 100 + i), 16)
    film = write_ledger(tmp_path, clips, CUTS)
    one = stitch.stitch_film(film, film / "one.mp4", contact_sheet=False, pieces=False)
    got = stitch.stitch_film(film, film / "pieces.mp4", contact_sheet=False)
    assert got.frames == one.frames == media.probe(film / "pieces.mp4").frames == 114  # 135 - (4.8 + 8 + 4 + 5), snapped up
    assert (got.mode, got.width, got.height) == ("xfade", 128, 80)
    assert psnr(film / "pieces.mp4", film / "one.mp4") >= 45  # 48.9 dB with ffmpeg 9.0.2
    assert len(piece_files(film)) == 6 + 4  # a body per shot, a piece per transition (not the cut)


def test_before_encoding_the_frames_are_identical(film):
    """x264 at crf 0 is lossless: any difference would be in the frames the pieces hold."""
    stitch.stitch_film(film, film / "one.mp4", contact_sheet=False, pieces=False, crf=0)
    made = stitch.stitch_film(film, film / "pieces.mp4", contact_sheet=False, crf=0)
    assert not any("one graph" in n for n in made.notes), made.notes  # else it compares the one graph with itself
    one, ours = framemd5(film / "one.mp4"), framemd5(film / "pieces.mp4")
    assert len(ours) == len(one)
    assert [i for i, (a, b) in enumerate(zip(one, ours, strict=True)) if a != b] == []
    # and at crf 19 the pieces are as close to those true frames as the one graph is
    stitch.stitch_film(film, film / "one19.mp4", contact_sheet=False, pieces=False)
    stitch.stitch_film(film, film / "pieces19.mp4", contact_sheet=False)
    truth = film / "one.mp4"
    assert psnr(film / "pieces19.mp4", truth) >= psnr(film / "one19.mp4", truth) - 1  # 39.9 vs 40.2 dB


def first_delay(path: Path) -> int:
    """How many ticks a video's first DTS lies before its first PTS (x264: 0 without B-frames)."""
    out = subprocess.run([media.ffmpeg_exe(), "-v", "error", "-i", str(path), "-map", "0:v:0", "-c", "copy",
                          "-f", "framecrc", "-"], capture_output=True, text=True, check=True).stdout
    dts, pts = (int(v) for v in next(line for line in out.splitlines() if line.startswith("0,")).split(",")[1:3])
    return pts - dts


def test_pieces_of_one_and_two_frames_join(tmp_path):
    """A 0.125 s fade at 16 fps is a 2-frame piece, and bodies of 1 and 2 frames come with it: x264
    codes those without B-frames, so their DTS equal their PTS while the longer pieces' DTS trail by
    2 frames, and the concat of them ran backwards ("Non-monotonic DTS"; the film then fell back to
    the one graph). Every piece now starts its DTS 2 frames early."""
    clips = [varied_clip(tmp_path / "clips" / f"{i + 1}.mp4", n, i) for i, n in enumerate((9, 5, 7, 6, 12))]
    cuts = [None, {"type": "fade", "duration": 0.125}, {"type": "wipeleft", "duration": 0.0625},
            {"type": "fade", "duration": 0.1875}, {"type": "cut", "duration": 0}]
    film = write_ledger(tmp_path, clips, cuts)
    got = stitch.stitch_film(film, film / "pieces.mp4", contact_sheet=False)  # crf 19: x264 uses B-frames
    assert not any("one graph" in n for n in got.notes), got.notes
    assert got.frames == 39 - 2 - 1 - 3 == media.probe(film / "pieces.mp4").frames
    made = sorted((film / "pieces").glob("*.mp4"))
    counts = sorted(media.probe(p).frames for p in made)
    assert counts[:3] == [1, 2, 2] and counts[-1] >= 3  # short pieces next to ones with B-frames
    assert {first_delay(p) for p in made} == {2 * 1024}  # 2 frames at the mp4's 1/16384
    stitch.stitch_film(film, film / "one0.mp4", contact_sheet=False, pieces=False, crf=0)
    lossless = stitch.stitch_film(film, film / "pieces0.mp4", contact_sheet=False, crf=0)
    assert not any("one graph" in n for n in lossless.notes), lossless.notes
    assert framemd5(film / "pieces0.mp4") == framemd5(film / "one0.mp4")


def test_only_cuts_a_single_clip_and_a_film_whose_clips_differ_in_size(tmp_path):
    clips = [varied_clip(tmp_path / "a" / f"{i}.mp4", 9, i) for i in range(3)]
    cuts = [None, {"type": "cut", "duration": 0}, {"type": "cut", "duration": 0}]
    assert stitch.stitch_film(write_ledger(tmp_path / "a", clips, cuts), contact_sheet=False).frames == 27
    one = [varied_clip(tmp_path / "b" / "1.mp4", 9, 1)]
    assert stitch.stitch_film(write_ledger(tmp_path / "b", one, [None]), contact_sheet=False).frames == 9
    odd = [make_clip(tmp_path / "c" / "a.mp4", frames=17), make_clip(tmp_path / "c" / "b.mp4", frames=17,
                                                                     size="96x48")]
    got = stitch.stitch_film(write_ledger(tmp_path / "c", odd, [None, {"type": "fade", "duration": 0.25}]),
                             contact_sheet=False)
    assert got.frames == 2 * 17 - 4
    assert any("joined in one graph, not from pieces: b.mp4 differs" in n for n in got.notes)


def test_re_rendering_one_shot_re_encodes_its_body_and_its_two_transitions(film):
    stitch.stitch_film(film, contact_sheet=False)
    before = piece_files(film)
    varied_clip(film / "clips" / "04_shot.mp4", FRAMES[3], 99)  # shot 4: a wipeleft in, a dissolve out
    result = stitch.stitch_film(film, contact_sheet=False)
    after = piece_files(film)
    new = sorted(name for name in after if before.get(name) != after[name])
    assert [n.split("-")[0] for n in new] == ["body", "dissolve", "wipeleft"]
    assert all(after[n] == before[n] for n in after if n not in new)  # the rest untouched
    assert len(after) == len(before)  # the replaced pieces are gone
    assert "joined from 10 pieces" in result.notes[0] and "(7 made while rendering or earlier)" in result.notes[0]


def test_a_stale_or_foreign_part_is_ignored(film):
    stitch.stitch_film(film, contact_sheet=False)
    names = sorted(piece_files(film))
    for path in (film / "pieces").glob("*.mp4"):
        path.unlink()
    stale = film / "pieces" / (names[0] + ".part")
    stale.write_bytes(b"half a piece from a SIGKILLed render" * 100)
    foreign = film / "pieces" / "not-ours.mp4.part"
    foreign.write_bytes(b"someone else's")
    got = stitch.stitch_film(film, contact_sheet=False)
    assert got.frames == media.probe(film / "film.mp4").frames
    assert sorted(piece_files(film)) == names
    assert not stale.exists() and foreign.read_bytes() == b"someone else's"


def test_the_contact_sheet_is_todays(film):
    made = stitch.stitch_film(film, film / "film.mp4").contact_sheet
    with Image.open(made) as sheet:
        ours = sheet.convert("RGB")
    clips = sorted((film / "clips").glob("*.mp4"))
    today = contact_sheet.write_contact_sheet([(f"shot {i + 1}", media.probe(c)) for i, c in enumerate(clips)],
                                              film / "today")
    with Image.open(today) as sheet:
        assert ImageChops.difference(ours, sheet.convert("RGB")).getbbox() is None
    assert len(list((film / "pieces").glob("thumbs-*.png"))) == len(clips)


def test_clips_fed_as_they_arrive_are_encoded_before_finish(film):
    clips = sorted((film / "clips").glob("*.mp4"))
    cuts = [stitch.ledger_cut(c, None, None) for c in CUTS[1:]]
    with pieces.FilmPieces(film, cuts, names=[f"shot {i + 1}" for i in range(len(clips))]) as film_pieces:
        for position, clip in enumerate(clips[:-1]):  # as the render's ShotClip events bring them
            film_pieces.clip_ready(position, clip)
        wait_until(lambda: len(film_pieces.encoded) >= 8, interval=0.05)  # all but the last body + join
        assert len(film_pieces.encoded) == 8
        film_pieces.clip_ready(len(clips) - 1, clips[-1])
        result = film_pieces.finish()
    assert len(film_pieces.encoded) == 10 and film_pieces.film_written_at is not None
    one = stitch.stitch_film(film, film / "one.mp4", contact_sheet=False, pieces=False)
    assert result.frames == one.frames and result.contact_sheet.is_file()


def children(pid: int) -> dict[int, tuple[str, int]]:
    """Live child processes of ``pid``: pid -> (command line, niceness)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
            except OSError:
                continue
            if int(stat[1]) == pid and stat[0] != "Z":
                found[int(entry.name)] = (cmdline, int(stat[16]))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_close_kills_the_background_encoder_which_runs_nice(tmp_path):
    clip = make_clip(tmp_path / "clips" / "01_slow.mp4", frames=160, size="640x360")
    film_pieces = pieces.FilmPieces(tmp_path, [Cut("fade", 0.5)], layout.Encoder(preset="veryslow"))
    film_pieces.clip_ready(0, clip)
    found = []

    def started() -> bool:
        found[:] = [(pid, nice) for pid, (cmd, nice) in children(os.getpid()).items() if ".part" in cmd]
        return bool(found)

    wait_until(started, interval=0.02, message=lambda: "the background encoder never started")
    encoder = found[0]
    assert encoder[1] == pieces.NICE
    film_pieces.close()
    assert encoder[0] not in children(os.getpid())
    assert list((tmp_path / "pieces").glob("*.part")) == []
    film_pieces.close()  # twice is fine


def test_a_continued_clips_pieces_start_on_its_frame_1():
    """The layout of a chain (pure): the link's body starts one frame in, the film counts it short."""
    from fractions import Fraction

    cuts = [Cut("cut", 0.0, continues=True), Cut("fade", 0.25)]
    plan = layout.layout([17, 17, 17], cuts, Fraction(16))
    assert plan.pieces == [layout.Body(0, 0, 17), layout.Body(1, 1, 13),
                           layout.Transition(1, 13, 4, "fade", "0.25", 0), layout.Body(2, 4, 17)]
    assert plan.frames == 17 + 16 + 17 - 4
    assert layout.layout([17, 17], cuts, Fraction(16)).pieces[1] == layout.Body(1, 1, 13)  # as clips arrive
    with pytest.raises(layout.Unsupported, match="crossfade into a continued shot"):
        layout.layout([17, 17], [Cut("fade", 0.25, continues=True)], Fraction(16))
