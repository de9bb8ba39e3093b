"""`wanclip stitch` as a user runs it, then the written film measured with media.probe."""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from helpers import help_words, run_cli
from test_media import make_clip
from wanclip import media
from wanclip.files import sha256_file
from wanclip.ledger import Ledger, ShotRecord, film_lock, ledger_path, load_ledger
from wanclip.stitch import contact_sheet
from wanclip.stitch import join as stitch

# conftest clears WANCLIP_FFMPEG for every test; the stitch tests run under the one it named, so
# `WANCLIP_FFMPEG=/path/to/ffmpeg-7.0.2 pytest tests/test_stitch*.py tests/test_pieces.py` checks
# another ffmpeg than the wheel's (ffmpeg 7.0's setpts unsets the frame rate xfade needs)
CHOSEN_FFMPEG = os.environ.get("WANCLIP_FFMPEG")


@pytest.fixture(autouse=True)
def chosen_ffmpeg(wanclip_home, monkeypatch):
    """The ffmpeg named by WANCLIP_FFMPEG when pytest started (after conftest cleared it)."""
    if CHOSEN_FFMPEG:
        monkeypatch.setenv("WANCLIP_FFMPEG", CHOSEN_FFMPEG)


def stitch_json(*args) -> dict:
    result = run_cli("stitch", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def twelve(tmp_path_factory) -> list[Path]:
    """Twelve 81-frame clips at 16 fps, as a Wan 2.2 render gives them (small, to stay fast)."""
    folder = tmp_path_factory.mktemp("twelve")
    return [make_clip(folder / f"{i:02d}_shot.mp4", frames=81) for i in range(1, 13)]


def test_twelve_equal_clips_with_0_3s_fades_last_57_45s(twelve, tmp_path):
    film = tmp_path / "film.mp4"
    got = stitch_json(*twelve, "-o", film)
    # 12*81/16 - 11*0.3 = 57.45 s = 919.2 frames; xfade snaps each start to the next frame
    assert got == {"output": str(film), "mode": "xfade", "clips": 12, "seconds": 57.5, "frames": 920,
                   "width": 64, "height": 64, "fps": 16.0}
    assert abs(got["seconds"] - 57.45) < 1 / 16
    assert media.probe(film).frames == 920
    assert not Path(str(film) + ".part").exists()


def test_contact_sheet_has_one_row_per_shot(twelve, tmp_path):
    result = run_cli("stitch", *twelve[:4], "-o", tmp_path / "film.mp4", "--transition", "cut")
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "film.contact_sheet.png") as sheet:  # beside film.mp4, named after it
        size = sheet.size
    row = contact_sheet.row_height([("x", media.probe(twelve[0]))])
    assert size == (contact_sheet.LABEL_WIDTH + 3 * (contact_sheet.THUMB_WIDTH + contact_sheet.GAP),
                          4 * row)
    assert f"contact sheet: {tmp_path / 'film.contact_sheet.png'}" in result.stdout


def test_unequal_clips_take_offsets_from_measured_frames(tmp_path):
    clips = [make_clip(tmp_path / f"c{n}.mp4", frames=n) for n in (49, 81, 65, 33)]
    # a 5-frame transition: (49+81+65+33 - 3*5) frames exactly
    assert stitch_json(*clips, "-o", tmp_path / "a.mp4", "--duration", "0.3125")["frames"] == 213
    assert stitch_json(*clips, "-o", tmp_path / "b.mp4", "--duration", "0.3")["frames"] == 214


def test_mixed_fps_and_sizes_are_normalised_to_the_first_clip(tmp_path):
    clips = [make_clip(tmp_path / "a.mp4", frames=33),
             make_clip(tmp_path / "b.mp4", frames=48, fps="24"),  # 2 s: 32 frames at 16 fps
             make_clip(tmp_path / "c.mp4", frames=33, size="96x48")]
    got = stitch_json(*clips, "-o", tmp_path / "film.mp4", "--duration", "0.3125")
    assert (got["frames"], got["width"], got["height"], got["fps"]) == (33 + 32 + 33 - 2 * 5, 64, 64, 16.0)


def test_odd_sar_yuv444_and_mkv_timebase_stitch_without_error(tmp_path):
    clips = [make_clip(tmp_path / "a.mp4", frames=17, size="64x48"),
             make_clip(tmp_path / "wide.mkv", frames=17, size="32x48", sar="2"),
             make_clip(tmp_path / "full.mp4", frames=17, size="64x48", pix_fmt="yuv444p")]
    got = stitch_json(*clips, "-o", tmp_path / "film.mp4", "--duration", "0.25")
    assert (got["frames"], got["width"], got["height"]) == (3 * 17 - 2 * 4, 64, 48)
    film = media.probe(tmp_path / "film.mp4")
    assert (film.pix_fmt, film.sar) == ("yuv420p", "1:1")


@pytest.mark.parametrize("mode", ["concat", "xfade"])
def test_names_with_spaces_quotes_and_non_ascii(tmp_path, mode):
    folder = tmp_path / "my film's clips"
    clips = [make_clip(folder / name, frames=9) for name in ("two words.mp4", "it's.mp4", "ça été 映画.mp4")]
    got = stitch_json(*clips, "--mode", mode, "--transition", "cut")
    assert (got["output"], got["frames"]) == (str(folder / "film.mp4"), 27)
    assert got["mode"] == {"concat": "concat-copy", "xfade": "xfade"}[mode]


def test_concat_copies_matching_clips_exactly(twelve, tmp_path):
    got = stitch_json(*twelve, "--mode", "concat", "-o", tmp_path / "film.mp4", "--no-contact-sheet")
    assert (got["mode"], got["frames"], got["seconds"]) == ("concat-copy", 972, 60.75)
    assert not (tmp_path / "contact_sheet.png").exists()


def test_concat_re_encodes_mismatched_clips_and_says_why(tmp_path):
    clips = [make_clip(tmp_path / "a.mp4", frames=9), make_clip(tmp_path / "b.mp4", frames=9, size="64x48")]
    result = run_cli("stitch", *clips, "--mode", "concat", "-o", tmp_path / "film.mp4")
    assert result.exit_code == 0, result.output
    assert "note: re-encoded through the concat filter: b.mp4 differs from a.mp4 in height (48 vs 64)" \
        in result.stdout
    film = media.probe(tmp_path / "film.mp4")
    assert (film.frames, film.width, film.height) == (18, 64, 64)


def write_ledger(folder: Path, clips: list[Path], transitions: list[dict | None],
                 statuses: list[str] | None = None) -> Path:
    shots = []
    for i, (clip, cut) in enumerate(zip(clips, transitions, strict=True)):
        shots.append(ShotRecord(index=i + 1, name=f"shot {i + 1}", graph_sha256="0" * 64, seed=i, frames=17,
                                width=64, height=64, fps=16, clip=str(clip.relative_to(folder)),
                                status=(statuses or ["done"] * len(clips))[i], transition=cut))
    Ledger(path=ledger_path(folder), film={"name": "test"}, shots=shots).save()
    return folder


def test_from_a_film_folder_uses_each_shots_own_transition(tmp_path):
    clips = [make_clip(tmp_path / "clips" / f"{i:02d}_shot.mp4", frames=17) for i in range(1, 5)]
    cuts = [None, {"type": "cut", "duration": 0.3}, {"type": "wipeleft", "duration": 0.5},
            {"type": "fade", "duration": 0.25}]
    got = stitch_json("--from", write_ledger(tmp_path, clips, cuts))
    # hard cut: no overlap; 0.5 s = 8 frames; 0.25 s = 4 frames
    assert (got["output"], got["frames"]) == (str(tmp_path / "film.mp4"), 4 * 17 - 8 - 4)
    with Image.open(tmp_path / "contact_sheet.png") as sheet:
        assert sheet.size[1] == 4 * contact_sheet.row_height([("x", media.probe(clips[0]))])


def test_from_refuses_shots_not_done_unless_told_to_skip_them(tmp_path):
    clips = [make_clip(tmp_path / "clips" / f"{i}.mp4", frames=17) for i in range(1, 4)]
    folder = write_ledger(tmp_path, clips, [None, None, None], ["done", "failed", "done"])
    refused = run_cli("stitch", "--from", folder)
    assert refused.exit_code == 1
    assert "shots not rendered yet" in refused.output and "shot 2" in refused.output
    assert not (tmp_path / "film.mp4").exists()
    got = stitch_json("--from", folder, "--skip-missing", "--duration", "0.25")
    assert got["frames"] == 2 * 17 - 4


def test_a_corrupt_clip_is_named_before_ffmpeg_starts(tmp_path):
    good = make_clip(tmp_path / "good.mp4", frames=9)
    bad = tmp_path / "03_broken shot.mp4"
    bad.write_bytes(b"\x00" * 4096)
    result = run_cli("stitch", good, bad, "-o", tmp_path / "film.mp4")
    assert result.exit_code == 1
    assert f"clip {bad} is corrupt or not a video" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["03_broken shot.mp4", "good.mp4"]


def test_a_fade_longer_than_a_clip_is_refused(tmp_path):
    clips = [make_clip(tmp_path / f"{i}.mp4", frames=9) for i in range(2)]
    result = run_cli("stitch", *clips, "--duration", "1", "-o", tmp_path / "film.mp4")
    assert result.exit_code == 2  # bad input, refused before ffmpeg runs
    assert "transitions of 1 s are longer than clip 0.mp4 (0.5625 s, 9 frames)" in result.output


def test_ffmpeg_failure_shows_the_command_and_its_stderr_and_leaves_no_film(tmp_path, monkeypatch):
    from wanclip.cli import cmd_stitch

    # a preset x264 does not have, let through to ffmpeg (the command refuses it first, exit 2)
    monkeypatch.setattr(cmd_stitch, "X264_PRESETS", (*cmd_stitch.X264_PRESETS, "nosuch"))
    clips = [make_clip(tmp_path / f"{i}.mp4", frames=9) for i in range(2)]
    result = run_cli("stitch", *clips, "--preset", "nosuch", "-o", tmp_path / "film.mp4")
    assert result.exit_code == 1
    assert "ffmpeg failed" in result.output and "command: " in result.output
    assert "-preset nosuch" in result.output and "ffmpeg said:" in result.output
    assert not (tmp_path / "film.mp4").exists() and not (tmp_path / "film.mp4.part").exists()


def audio_seconds(film: Path) -> float:
    """Length of a film's audio track, summed from its packets."""
    out = subprocess.run([media.ffmpeg_exe(), "-v", "error", "-i", str(film), "-map", "0:a:0", "-c", "copy",
                          "-f", "framecrc", "-"], capture_output=True, text=True, check=True).stdout
    tb = next(line for line in out.splitlines() if line.startswith("#tb 0:")).split()[-1]
    num, den = (int(x) for x in tb.split("/"))
    packets = [line.split(",") for line in out.splitlines() if line.startswith("0,")]
    return (int(packets[-1][2]) + int(packets[-1][3]) - int(packets[0][2])) * num / den


@pytest.mark.parametrize("music_seconds", [1, 9])
def test_music_lies_under_the_whole_film(tmp_path, music_seconds):
    music = tmp_path / "music.m4a"
    subprocess.run([media.ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "sine=frequency=330:sample_rate=48000",
                    "-t", str(music_seconds), "-c:a", "aac", str(music)], check=True)
    clips = [make_clip(tmp_path / "a.mp4", frames=33), make_clip(tmp_path / "b.mp4", frames=33, audio=True)]
    got = stitch_json(*clips, "--audio", music, "--duration", "0.25", "-o", tmp_path / "film.mp4")
    assert (got["frames"], got["seconds"]) == (62, 3.875)
    assert media.probe(tmp_path / "film.mp4").has_audio
    assert abs(audio_seconds(tmp_path / "film.mp4") - 3.875) < 0.05


def test_stitch_needs_clips_or_from(tmp_path):
    result = run_cli("stitch")
    assert result.exit_code == 2
    assert "give either clips or --from FILM_DIR" in result.output


# --- a stitch never destroys its inputs ---------------------------------------------------------

@pytest.mark.parametrize("target", [0, 1])
def test_output_that_is_one_of_the_clips_is_refused_and_the_clip_kept(tmp_path, target):
    clips = [make_clip(tmp_path / "a.mp4", frames=9), make_clip(tmp_path / "b.mp4", frames=9)]
    before = clips[target].read_bytes()
    (tmp_path / "sub").mkdir()
    same = tmp_path / "sub" / ".." / clips[target].name  # another spelling of the same file
    result = run_cli("stitch", *clips, "-o", same)
    assert result.exit_code == 2
    assert f"the output {same} is one of the inputs ({clips[target]})" in result.stderr
    assert clips[target].read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4", "b.mp4", "sub"]


def test_output_that_is_the_music_is_refused(tmp_path):
    clips = [make_clip(tmp_path / "a.mp4", frames=9), make_clip(tmp_path / "b.mp4", frames=9, audio=True)]
    result = run_cli("stitch", *clips, "--audio", clips[1], "-o", clips[1])
    assert result.exit_code == 2
    assert "is one of the inputs" in result.stderr


def ledger_film(folder: Path, names=("one", "two")) -> tuple[Path, list[Path]]:
    """A film folder as render leaves it: clips with their sha256 in the ledger."""
    clips = [make_clip(folder / "clips" / f"{i:02d}_{n}.mp4", frames=17) for i, n in enumerate(names, 1)]
    write_ledger(folder, clips, [None] + [{"type": "fade", "duration": 0.25}] * (len(clips) - 1))
    ledger = load_ledger(folder)
    for record, clip in zip(ledger.shots, clips, strict=True):
        record.name = clip.stem.split("_", 1)[1]
        record.clip_sha256 = sha256_file(clip)
    ledger.film["shots_file"] = "shots/film.yaml"
    ledger.save()
    return folder, clips


def test_from_refuses_an_output_over_a_ledger_clip(tmp_path):
    folder, clips = ledger_film(tmp_path)
    before = clips[0].read_bytes()
    result = run_cli("stitch", "--from", folder, "-o", clips[0])
    assert result.exit_code == 2
    assert "is one of the inputs" in result.stderr
    assert clips[0].read_bytes() == before


def test_from_uses_a_clip_changed_since_render_as_the_users_version_and_says_so(tmp_path):
    """A clip changed since it was rendered is the user's (a grade, a trim): `stitch --from` joins it
    as `render` does, saying so; the ledger still records the rendered clip for the next render."""
    folder, clips = ledger_film(tmp_path)
    recorded = load_ledger(folder).shots[0].clip_sha256
    make_clip(clips[0], frames=33)  # the user's longer cut of shot one
    result = run_cli("stitch", "--from", folder, "--no-contact-sheet")
    assert result.exit_code == 0, result.output
    assert "clip one changed since it was rendered: using your version" in " ".join(result.stdout.split())
    assert (folder / "film.mp4").is_file()
    assert media.probe(folder / "film.mp4").frames > 33  # the 33 frames of the user's cut are in it
    assert load_ledger(folder).shots[0].clip_sha256 == recorded


def test_from_a_folder_that_does_not_exist_creates_nothing(tmp_path):
    result = run_cli("stitch", "--from", tmp_path / "nope")
    assert result.exit_code == 2
    assert f"no film folder at {tmp_path / 'nope'}" in result.stderr
    assert not (tmp_path / "nope").exists()


def test_from_waits_for_no_render_it_refuses_while_one_runs(tmp_path):
    folder, _ = ledger_film(tmp_path)
    with film_lock(folder, "render"):
        result = run_cli("stitch", "--from", folder)
    assert result.exit_code == 2
    assert f"another wanclip render (pid {os.getpid()}) is working on {folder}" in result.stderr
    assert not (folder / "film.mp4").exists()


# --- errors a person can meet are messages, not tracebacks --------------------------------------

def test_an_output_folder_that_cannot_be_made_is_a_message(tmp_path):
    clips = [make_clip(tmp_path / f"{i}.mp4", frames=9) for i in range(2)]
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    result = run_cli("stitch", *clips, "-o", tmp_path / "notes.txt" / "film.mp4")
    assert result.exit_code == 1
    assert f"cannot write the film {tmp_path / 'notes.txt' / 'film.mp4'}" in result.stderr
    assert "hint:" in result.stderr


@pytest.mark.parametrize(("code", "words"), [
    (errno.ENOSPC, ["the disk is full", "free some space"]),
    (errno.EACCES, ["permission denied", "writable folder"]),
    (errno.EROFS, ["read-only", "writable folder"]),
    (errno.ENOENT, ["no such file or folder", "check the -o path"]),
])
def test_os_errors_while_writing_the_film_become_stitch_errors_with_a_hint(tmp_path, code, words):
    error = stitch.write_failure(OSError(code, os.strerror(code), str(tmp_path / "x")), tmp_path / "film.mp4")
    assert error.message.startswith(f"cannot write the film {tmp_path / 'film.mp4'}")
    text = (error.message + " " + error.hint).lower()
    for word in words:
        assert word.lower() in text


# --- progress -----------------------------------------------------------------------------------

def test_progress_counts_frames_up_to_the_films_length(twelve, tmp_path):
    seen: list[tuple[int, int]] = []
    result = stitch.stitch(twelve[:3], tmp_path / "film.mp4", contact_sheet=False,
                           on_progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (result.frames, result.frames)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert {t for _, t in seen} == {234}  # 3 * 81 frames less two 0.3 s fades of 4.8 frames


def test_progress_line_on_a_terminal_json_stays_one_line(twelve, tmp_path):
    import pty

    main, child = pty.openpty()
    with subprocess.Popen([sys.executable, "-m", "wanclip", "stitch", *map(str, twelve[:3]), "-o",
                           str(tmp_path / "film.mp4"), "--no-contact-sheet"], stdout=child, stderr=child,
                          env=dict(os.environ, COLUMNS="100")) as proc:
        os.close(child)
        raw = b""
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            raw += chunk
    os.close(main)
    assert proc.returncode == 0, raw
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", raw.decode("utf-8", "replace"))
    assert re.search(r"stitching .* \d+/234 frames", text)
    assert "wrote " in text and "3 clips" in text
    quiet = run_cli("stitch", *twelve[:3], "-o", tmp_path / "film2.mp4", "--no-contact-sheet", "--json")
    assert len(quiet.stdout.splitlines()) == 1


# --- wording ------------------------------------------------------------------------------------

def test_one_clip_is_one_clip_not_1_clips(twelve, tmp_path):
    result = run_cli("stitch", twelve[0], "-o", tmp_path / "film.mp4", "--no-contact-sheet")
    assert result.exit_code == 0, result.output
    assert ": 1 clip, 81 frames" in result.stdout


def test_audio_help_and_hint_talk_about_music(tmp_path):
    help_text = help_words("stitch")
    assert "--audio" in help_text and "trimmed to the film's length" in help_text
    clips = [make_clip(tmp_path / "a.mp4", frames=9)]
    result = run_cli("stitch", *clips, "--audio", tmp_path / "song.mp3", "-o", tmp_path / "film.mp4")
    assert result.exit_code == 2
    assert f"music file not found: {tmp_path / 'song.mp3'}" in result.stderr
    assert "a music file" in result.stderr


def test_json_mode_ends_with_one_error_event_when_refused(tmp_path):
    clip = make_clip(tmp_path / "a.mp4", frames=9)
    result = run_cli("stitch", clip, "-o", clip, "--json")
    assert result.exit_code == 2
    last = json.loads(result.stdout.splitlines()[-1])
    assert (last["event"], last["exit_code"]) == ("error", 2)
    assert last["error"] == f"the output {clip} is one of the inputs ({clip})"
