"""media: finding ffmpeg and measuring clips without ffprobe.

``make_clip`` is shared with the stitch tests (``from test_media import make_clip``): tiny
synthetic clips from ffmpeg's lavfi ``testsrc``, written the way VHS writes them (mp4 with a
1/16384 time base) unless a test asks for something odd.
"""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import pytest

from wanclip import media
from wanclip.errors import StitchError


def make_clip(path: Path, frames: int = 9, fps: str = "16", size: str = "64x64", pix_fmt: str = "yuv420p",
              sar: str | None = None, audio: bool = False, timescale: int | None = 16384) -> Path:
    """Write a small H.264 clip; every frame shows its own number, so joins can be inspected."""
    path.parent.mkdir(parents=True, exist_ok=True)
    vf = f"setsar={sar}" if sar else "null"
    argv = [media.ffmpeg_exe(), "-hide_banner", "-nostdin", "-y", "-v", "error",
            "-f", "lavfi", "-i", f"testsrc=size={size}:rate={fps}"]
    if audio:
        argv += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
    argv += ["-frames:v", str(frames), "-vf", vf, "-c:v", "libx264", "-preset", "ultrafast",
             "-pix_fmt", pix_fmt]
    argv += ["-c:a", "aac", "-shortest"] if audio else []
    if timescale and path.suffix == ".mp4":
        argv += ["-video_track_timescale", str(timescale)]
    subprocess.run([*argv, str(path)], check=True)
    return path


def test_probe_counts_frames_and_derives_exact_duration(tmp_path):
    info = media.probe(make_clip(tmp_path / "a.mp4", frames=17))
    assert (info.frames, info.fps, info.duration) == (17, Fraction(16), 1.0625)
    assert (info.width, info.height, info.codec, info.pix_fmt, info.sar) == (64, 64, "h264", "yuv420p", "1:1")
    assert info.time_base == "1/16384"
    assert info.has_audio is False


def test_probe_reads_odd_clips_mkv_ntsc_sar_444_and_audio(tmp_path):
    odd = media.probe(make_clip(tmp_path / "odd clip.mkv", frames=5, fps="24000/1001",
                                pix_fmt="yuv444p", sar="2"))
    assert (odd.frames, odd.fps, odd.pix_fmt, odd.sar, odd.time_base) == (
        5, Fraction(24000, 1001), "yuv444p", "2:1", "1/1000")
    loud = media.probe(make_clip(tmp_path / "loud.mp4", frames=16, size="64x48", audio=True))
    assert (loud.frames, loud.height, loud.has_audio) == (16, 48, True)


def test_probe_names_a_missing_clip(tmp_path):
    with pytest.raises(StitchError, match=r"clip not found: .*nope\.mp4"):
        media.probe(tmp_path / "nope.mp4")


def test_probe_names_a_corrupt_clip(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all\n" * 10)
    with pytest.raises(StitchError, match=r"clip .*bad\.mp4 is corrupt or not a video: .*moov atom not found"):
        media.probe(bad)


def test_probe_refuses_a_clip_cut_short_mid_download(tmp_path):
    whole = make_clip(tmp_path / "whole.mp4", frames=40, size="320x240")
    subprocess.run([media.ffmpeg_exe(), "-v", "error", "-y", "-i", str(whole), "-c", "copy",
                    "-movflags", "+faststart", str(tmp_path / "fast.mp4")], check=True)
    data = (tmp_path / "fast.mp4").read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(StitchError, match=r"cut\.mp4 is corrupt"):
        media.probe(cut)


def test_wanclip_ffmpeg_overrides_the_binary(monkeypatch, tmp_path):
    real = media.ffmpeg_exe()
    monkeypatch.setenv("WANCLIP_FFMPEG", str(tmp_path / "no-such-ffmpeg"))
    with pytest.raises(StitchError, match="WANCLIP_FFMPEG"):
        media.ffmpeg_exe()
    monkeypatch.setenv("WANCLIP_FFMPEG", real)
    assert media.ffmpeg_exe() == real


def test_grab_frames_returns_rgb_frames_of_the_asked_size(tmp_path):
    info = media.probe(make_clip(tmp_path / "a.mp4", frames=9))
    frames = media.grab_frames(info, [0, 4, 8], 32, 16)
    assert [len(f) for f in frames] == [32 * 16 * 3] * 3
    assert frames[0] != frames[2]


def test_an_ffmpeg_that_cannot_be_executed_is_named(monkeypatch, tmp_path):
    clip = make_clip(tmp_path / "a.mp4")
    broken = tmp_path / "ffmpeg"
    broken.write_bytes(b"\x00not a program\n")
    broken.chmod(0o755)
    monkeypatch.setenv("WANCLIP_FFMPEG", str(broken))
    with pytest.raises(StitchError, match=rf"cannot run ffmpeg at {broken}: Exec format error"):
        media.probe(clip)
    with pytest.raises(StitchError, match=rf"cannot run ffmpeg at {broken}"):
        media.run_with_progress([str(broken), "-version"], "testing")


def test_run_watched_hands_over_the_process_and_reports_a_failure_with_its_last_words():
    seen = []
    media.run_watched([media.ffmpeg_exe(), "-hide_banner", "-version"], "asking its version", seen.append)
    assert len(seen) == 1 and seen[0].returncode == 0
    with pytest.raises(StitchError, match=r"ffmpeg failed \(exit \d+\) while reading nothing") as failed:
        media.run_watched([media.ffmpeg_exe(), "-hide_banner", "-i", "/no/such/clip.mp4"], "reading nothing",
                          lambda proc: None)
    assert "No such file or directory" in failed.value.message


def test_run_watched_stops_ffmpeg_when_the_watcher_refuses_it():
    """What the film's pieces do once closed: the process they were handed is stopped, never left."""
    started = []

    def refuse(proc):
        started.append(proc)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        media.run_watched([media.ffmpeg_exe(), "-hide_banner", "-f", "lavfi", "-i", "testsrc2=rate=16",
                           "-f", "null", "-"], "encoding forever", refuse)
    assert started[0].poll() is not None
