"""`wanclip stitch` as a new user meets it: a typo is named with the names it could be, bad input
exits 2 as --help says, --audio is checked before ffmpeg runs, a ledger's clip may not point out of
the film folder, and the film folder is left tidy (no lock file, no stale pieces)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import help_words, run_cli
from test_media import make_clip
from test_stitch import chosen_ffmpeg, write_ledger  # noqa: F401 (chosen_ffmpeg: an autouse fixture)
from wanclip.errors import WanclipError
from wanclip.files import sha256_file
from wanclip.ledger import LOCK_NAME, OWNER_NAME, film_lock, load_ledger


@pytest.fixture
def two_clips(tmp_path) -> list[Path]:
    return [make_clip(tmp_path / f"{name}.mp4", frames=17) for name in ("one", "two")]


@pytest.fixture
def film(tmp_path) -> Path:
    """A rendered film folder of three shots, each clip a little different."""
    folder = tmp_path / "film"
    clips = [make_clip(folder / "clips" / f"0{i}_shot.mp4", frames=17 + 4 * i) for i in (1, 2, 3)]
    write_ledger(folder, clips, [None, {"type": "fade", "duration": 0.25}, {"type": "wipeleft", "duration": 0.25}])
    ledger = load_ledger(folder)
    for record in ledger.shots:
        record.clip_sha256 = sha256_file(folder / record.clip)
    ledger.save()
    return folder


def test_help_says_bad_input_is_2(two_clips):
    assert "2 bad input" in help_words("stitch")


@pytest.mark.parametrize("args,words", [
    (["--transition", "fadee"], ["unknown --transition 'fadee'", "did you mean 'fade'", "wipeleft"]),
    (["--transition", "wipelft"], ["did you mean 'wipeleft'"]),
    (["--duration", "5"], ["transitions of 5 s are longer than clip"]),
    (["--preset", "slowww"], ["unknown --preset 'slowww'", "did you mean 'slow'", "veryslow"]),
    (["--crf", "99"], ["--crf"]),
], ids=lambda v: " ".join(v) if isinstance(v, list) and v[0].startswith("-") else "")
def test_bad_options_exit_2_naming_the_valid_values_and_write_nothing(two_clips, tmp_path, args, words):
    result = run_cli("stitch", *two_clips, "-o", tmp_path / "film.mp4", *args)
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    for word in words:
        assert word in text, text
    assert not (tmp_path / "film.mp4").exists()


def test_a_transition_typo_with_from_is_named_before_any_clip_is_read(film):
    result = run_cli("stitch", "--from", film, "--transition", "disolve", "--json")
    assert result.exit_code == 2, result.output
    event = json.loads(result.stdout.splitlines()[-1])
    assert event["exit_code"] == 2 and "did you mean 'dissolve'" in event["error"]
    assert "fade" in event["hint"]  # the valid names
    assert not (film / "film.mp4").exists()


@pytest.mark.parametrize("what", ["text", "silent video"])
def test_audio_without_sound_is_refused_before_ffmpeg_runs(two_clips, tmp_path, what):
    if what == "text":
        music = tmp_path / "notes.txt"
        music.write_text("la la la\n")
        said = f"{music} is not an audio or video file"
    else:
        music = make_clip(tmp_path / "silent.mp4", frames=17)
        said = f"{music} has no audio stream"
    result = run_cli("stitch", *two_clips, "-o", tmp_path / "film.mp4", "--audio", music)
    assert result.exit_code == 2, result.output
    assert said in " ".join(result.output.split())
    assert "ffmpeg" not in result.output.lower().replace("ffmpeg's", "")  # no dump of ffmpeg's output
    assert not (tmp_path / "film.mp4").exists()


def test_audio_with_sound_is_laid_under_the_film(two_clips, tmp_path):
    music = make_clip(tmp_path / "music.mp4", frames=40, audio=True)
    result = run_cli("stitch", *two_clips, "-o", tmp_path / "film.mp4", "--audio", music, "--no-contact-sheet")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("where", ["dotdot", "absolute", "not a path"])
def test_a_ledger_clip_outside_the_film_folder_is_refused_naming_the_shot(film, tmp_path, where):
    outside = make_clip(tmp_path / "elsewhere" / "secret.mp4", frames=17)
    ledger = load_ledger(film)
    record = ledger.shots[1]
    if where == "dotdot":
        record.clip = os.path.relpath(outside, film)  # ../elsewhere/secret.mp4
    elif where == "absolute":
        record.clip = str(outside)
    else:
        record.clip = 42
    record.clip_sha256 = sha256_file(outside)  # tampered with care: the hash matches
    ledger.save()
    result = run_cli("stitch", "--from", film)
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "the clip of shot shot 2" in text and "outside the film folder" in text, text
    assert not (film / "film.mp4").exists()


def test_a_clips_folder_the_user_linked_to_another_disk_is_stitched(film, tmp_path):
    """The confinement is of the ledger's paths, not of the user's own links: clips/ moved to
    another disk and linked back is the user's choice."""
    elsewhere = tmp_path / "other-disk" / "clips"
    elsewhere.parent.mkdir()
    (film / "clips").rename(elsewhere)
    (film / "clips").symlink_to(elsewhere, target_is_directory=True)
    result = run_cli("stitch", "--from", film, "--no-contact-sheet")
    assert result.exit_code == 0, result.output
    assert (film / "film.mp4").is_file()


def test_stitching_leaves_no_lock_file_in_the_film_folder(film):
    result = run_cli("stitch", "--from", film, "--no-contact-sheet")
    assert result.exit_code == 0, result.output
    assert not (film / LOCK_NAME).exists() and not (film / OWNER_NAME).exists()


def test_a_lock_file_replaced_while_it_was_being_locked_is_locked_again(tmp_path, monkeypatch):
    """A waiter may open the lock file just before its holder removes it on release: it then holds a
    lock on a file no longer at the path, while a third process locks the new one. film_lock sees
    the file it locked is not the one at the path, and locks again (here: finds it held)."""
    from filelock import FileLock

    fcntl = pytest.importorskip("fcntl")  # the race is flock's (on Windows filelock removes the file itself)
    folder = tmp_path / "film"
    folder.mkdir()
    acquire = FileLock.acquire
    third: list[int] = []

    def acquire_then_lose_the_race(self, *args, **kwargs):
        got = acquire(self, *args, **kwargs)
        if not third:  # the holder removed the file; another process made a new one and locked it
            (folder / LOCK_NAME).unlink()
            fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            third.append(fd)
        return got

    monkeypatch.setattr(FileLock, "acquire", acquire_then_lose_the_race)
    try:
        with pytest.raises(WanclipError, match="another wanclip"):
            with film_lock(folder, "stitch"):
                pass  # two holders at once
    finally:
        os.close(third[0])
    monkeypatch.undo()
    with film_lock(folder, "stitch"):  # the third is gone: the lock is free again
        assert (folder / OWNER_NAME).read_text(encoding="utf-8").startswith("stitch")
    assert not (folder / LOCK_NAME).exists()


def piece_names(film: Path) -> set[str]:
    return {p.name for p in (film / "pieces").iterdir()} if (film / "pieces").is_dir() else set()


def rerender(film: Path, index: int, frames: int) -> str:
    """Shot ``index`` (from 0) rendered again: a new clip, its sha256 in the ledger."""
    ledger = load_ledger(film)
    record = ledger.shots[index]
    clip = make_clip(film / record.clip, frames=frames)
    record.clip_sha256 = sha256_file(clip)
    ledger.save()
    return record.clip_sha256


@pytest.mark.parametrize("how", ["pieces", "one graph"])
def test_pieces_of_a_replaced_clip_and_killed_encodes_are_removed_once_the_film_is_made(film, how):
    first = run_cli("stitch", "--from", film, "--no-contact-sheet")
    assert first.exit_code == 0, first.output
    old_sha = load_ledger(film).shots[1].clip_sha256[:16]
    made = piece_names(film)
    assert any(old_sha in name for name in made)
    killed = film / "pieces" / (sorted(made)[0] + ".part")
    killed.write_bytes(b"half a piece from a SIGKILLed render")
    foreign = film / "pieces" / "notes.txt"
    foreign.write_text("mine")
    new_sha = rerender(film, 1, frames=29)[:16]
    again = run_cli("stitch", "--from", film, "--no-contact-sheet", *(["--no-pieces"] if how == "one graph" else []))
    assert again.exit_code == 0, again.output
    left = piece_names(film)
    assert not any(old_sha in name for name in left), left  # made from a clip the film no longer has
    assert not killed.exists() and foreign.read_text() == "mine"
    if how == "pieces":  # the film's own pieces stay, for the next re-stitch
        assert any(new_sha in name for name in left) and left - {"notes.txt"}
        assert run_cli("stitch", "--from", film, "--no-contact-sheet").exit_code == 0
        assert piece_names(film) == left  # nothing was encoded again: every piece reused


def test_an_emptied_pieces_folder_is_removed(film):
    assert run_cli("stitch", "--from", film, "--no-contact-sheet").exit_code == 0
    for i, frames in enumerate((19, 23, 27)):
        rerender(film, i, frames)
    assert run_cli("stitch", "--from", film, "--no-contact-sheet", "--no-pieces").exit_code == 0
    assert not (film / "pieces").exists()


def test_clips_without_o_never_replace_a_film_mp4_beside_them(two_clips, tmp_path):
    """`stitch a.mp4 b.mp4` writes film.mp4 beside the first clip: a film.mp4 already there is not a
    file the user named, so it is never replaced (exit 2); -o names the output, which is then replaced."""
    theirs = tmp_path / "film.mp4"
    theirs.write_bytes(b"the user's own film")
    result = run_cli("stitch", *two_clips, "--no-contact-sheet")
    assert result.exit_code == 2, result.output
    assert "already exists, and no -o named it" in " ".join(result.output.split())
    assert theirs.read_bytes() == b"the user's own film"
    named = run_cli("stitch", *two_clips, "-o", theirs, "--no-contact-sheet")
    assert named.exit_code == 0, named.output
    assert theirs.read_bytes() != b"the user's own film"


def test_a_lock_a_killed_holders_child_keeps_for_a_moment_is_waited_for_not_refused(tmp_path):
    """A render killed while it was starting ffmpeg leaves the lock with the child for the moment
    between its fork and its exec: a render run again at once found it held and was refused
    ("another wanclip render (pid N)", N the killed one). A lock let go within a moment is taken."""
    pytest.importorskip("fcntl")
    folder = tmp_path / "film"
    folder.mkdir()
    with subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time\n"
         "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(0.3)\n",
         str(folder / LOCK_NAME)], stdout=subprocess.PIPE, text=True) as holder:
        assert holder.stdout.readline().strip() == "held"
        with film_lock(folder, "render"):
            assert (folder / OWNER_NAME).read_text(encoding="utf-8").startswith("render")
