"""A stitch that is stopped (SIGTERM, Ctrl-C, an error) leaves no ffmpeg running and no ``.part``.

The session test runs ``python -m wanclip stitch`` as a real process, finds its ffmpeg child in
/proc, sends SIGTERM mid-encode and checks what is left; the others stop a stitch from Python.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from test_media import make_clip
from test_stitch import chosen_ffmpeg, write_ledger  # noqa: F401 (chosen_ffmpeg: an autouse fixture)
from wanclip.errors import WanclipError
from wanclip.ledger import film_lock
from wanclip.stitch import join as stitch

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")


def children(pid: int) -> dict[int, str]:
    """Live child processes of ``pid``: pid -> command line."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found[int(entry.name)] = cmdline
    return found


def alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_for_encoder(proc: subprocess.Popen, timeout: float = 60) -> int:
    """The pid of the ffmpeg writing the film (not a probe), once it runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        for pid, cmdline in children(proc.pid).items():
            if ".part" in cmdline:
                return pid
        time.sleep(0.02)
    raise AssertionError("the stitch never started its ffmpeg")


@pytest.fixture
def slow_film(tmp_path) -> Path:
    """A film folder whose stitch at --preset veryslow takes several seconds on two cores."""
    clip = make_clip(tmp_path / "clips" / "01_one.mp4", frames=160, size="640x360")
    other = tmp_path / "clips" / "02_two.mp4"
    other.write_bytes(clip.read_bytes())
    return write_ledger(tmp_path, [clip, other], [None, {"type": "fade", "duration": 0.5}])


def wanclip(*args) -> list[str]:
    return [sys.executable, "-m", "wanclip", *map(str, args)]


def test_sigterm_mid_stitch_kills_ffmpeg_removes_the_part_and_a_rerun_works(slow_film):
    part = slow_film / "film.mp4.part"
    with subprocess.Popen(wanclip("stitch", "--from", slow_film, "--preset", "veryslow", "--no-contact-sheet"),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        encoder = wait_for_encoder(proc)
        with pytest.raises(WanclipError, match=rf"another wanclip stitch \(pid {proc.pid}\) is working on"):
            with film_lock(slow_film, "render"):  # a render of this film is refused meanwhile
                pass
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert b"interrupted" in err and b"Traceback" not in err
    assert not alive(encoder)
    assert not part.exists() and not (slow_film / "film.mp4").exists()

    rerun = subprocess.run(wanclip("stitch", "--from", slow_film, "--preset", "ultrafast", "--json"),
                           capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert (slow_film / "film.mp4").is_file() and not part.exists()


def test_a_stale_part_from_a_killed_run_is_overwritten(tmp_path):
    clips = [make_clip(tmp_path / f"{i}.mp4", frames=9) for i in range(2)]
    film = tmp_path / "film.mp4"
    part = tmp_path / "film.mp4.part"
    part.write_bytes(b"half a film from a SIGKILLed stitch" * 1000)
    part.chmod(0o444)
    result = stitch.stitch(clips, film, cuts=[stitch.Cut("cut", 0)], contact_sheet=False)
    assert result.frames == 18
    assert not part.exists()


def test_an_error_during_the_encode_kills_ffmpeg_and_removes_the_part(tmp_path):
    clip = make_clip(tmp_path / "a.mp4", frames=160, size="640x360")
    film = tmp_path / "film.mp4"
    seen: list[int] = []

    def fail_once_running(done: int, total: int) -> None:
        seen.extend(pid for pid, cmd in children(os.getpid()).items() if ".part" in cmd)
        if seen:
            raise RuntimeError("the caller gave up")

    with pytest.raises(RuntimeError, match="the caller gave up"):
        stitch.stitch([clip, clip], film, preset="veryslow", contact_sheet=False, on_progress=fail_once_running)
    assert seen and not any(alive(pid) for pid in seen)
    assert not (tmp_path / "film.mp4.part").exists() and not film.exists()
