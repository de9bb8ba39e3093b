"""The one owner of the ffmpeg binary and of reading facts about clips.

Binary lookup (``ffmpeg_exe()``): ``WANCLIP_FFMPEG`` if set; else a system ``ffmpeg`` on PATH when
it has both the ``xfade`` filter and the ``libx264`` encoder; else the static binary that ships in
the ``imageio-ffmpeg`` wheel (a declared dependency, so there is always one).

Probing (``probe()``) uses ffmpeg itself, because the imageio binary comes without ``ffprobe``
and PyAV is not a dependency. One call per clip, ``ffmpeg -i CLIP -map 0:v:0 -c copy -f framecrc -``,
copies the video packets (no decoding, ~20 ms for an 81-frame clip) and prints one line per
packet plus the stream's time base, size, SAR and codec; the ``Input #0`` banner on stderr adds
pixel format, profile, frame rate and whether there is audio. We count packets rather than trust
the container duration: x264 mp4s carry an edit list that trims the reported duration (5.062 s
for 81 frames at 16 fps, not 5.0625 s), and xfade offsets built from that drift by a frame per
join. The duration wanclip uses is therefore ``frames / fps``, exact by construction.
"""

from __future__ import annotations

import errno
import functools
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from wanclip import config
from wanclip.errors import StitchError

STDERR_TAIL_LINES = 15
STDERR_TAIL_BYTES = 64 * 1024
STOP_GRACE = 5.0  # seconds ffmpeg gets to exit on SIGTERM before it is killed


@dataclass(frozen=True)
class ClipInfo:
    """What a clip measures, read from its packets and stream header."""

    path: Path
    frames: int
    fps: Fraction
    width: int
    height: int
    codec: str
    profile: str
    pix_fmt: str
    sar: str
    time_base: str
    has_audio: bool

    @property
    def duration(self) -> float:
        """Seconds, from the frame count: the number xfade offsets must be built from."""
        return float(self.frames / self.fps)

    @property
    def copy_key(self) -> tuple:
        """Clips with equal keys can be joined by stream copy without a broken film."""
        return (self.codec, self.profile, self.width, self.height, self.pix_fmt,
                self.fps, self.time_base, self.sar)


# --- the binary ---------------------------------------------------------------------------------

def ffmpeg_exe(override: str | None = None) -> str:
    """Path of the ffmpeg to run. ``override`` defaults to ``$WANCLIP_FFMPEG``."""
    return _resolve_ffmpeg(override or config.ffmpeg_override())


@functools.lru_cache(maxsize=8)  # probing a system ffmpeg's filters costs ~100 ms: once per process
def _resolve_ffmpeg(override: str | None) -> str:
    if override:
        found = shutil.which(override)
        if not found:
            raise StitchError(f"WANCLIP_FFMPEG points at {override!r}, which is not an executable",
                              "fix the path, or unset WANCLIP_FFMPEG to use the bundled ffmpeg")
        return found
    system = shutil.which("ffmpeg")
    if system and _has_xfade_and_x264(system):
        return system
    import imageio_ffmpeg  # imported late: only needed when no good system ffmpeg exists

    return imageio_ffmpeg.get_ffmpeg_exe()


def child_env() -> dict[str, str]:
    """The environment for an ffmpeg, as a copy: given ``env``, Python builds the child's
    environment before it forks. Without it the child (vforked on Linux, while the parent's other
    threads run) reads the C library's ``environ`` array, which a thread changing an environment
    variable at that moment may move: the exec then fails with EFAULT, "[Errno 14] Bad address" (seen
    once in the suite, a simulator thread spawning ffmpeg while a test set a variable)."""
    return dict(os.environ)


def _has_xfade_and_x264(exe: str) -> bool:
    try:
        filters = subprocess.run([exe, "-hide_banner", "-filters"], capture_output=True, text=True,
                                 timeout=30, env=child_env()).stdout
        encoders = subprocess.run([exe, "-hide_banner", "-encoders"], capture_output=True, text=True,
                                  timeout=30, env=child_env()).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return bool(re.search(r"\sxfade\s", filters)) and bool(re.search(r"\slibx264\s", encoders))


def run(argv: list[str], what: str, timeout: float | None = None) -> subprocess.CompletedProcess:
    """Run ffmpeg; on failure raise a StitchError showing the command and the tail of stderr."""
    done = spawn(argv, what, timeout)
    if done.returncode != 0:
        raise ffmpeg_failed(argv, done.stderr, what, done.returncode)
    return done


def spawn(argv: list[str], what: str, timeout: float | None = None) -> subprocess.CompletedProcess:
    """Run ffmpeg and capture its output; only a missing binary or a timeout raises."""
    try:
        return subprocess.run(argv, capture_output=True, timeout=timeout, env=child_env())
    except OSError as exc:
        raise _no_binary(argv, exc) from exc
    except subprocess.TimeoutExpired as exc:
        raise StitchError(f"ffmpeg took longer than {timeout:.0f} s while {what}",
                          f"command: {shlex.join(argv)}") from exc


def run_with_progress(argv: list[str], what: str, on_frame: Callable[[int], None] | None = None) -> None:
    """Run a long ffmpeg job, calling ``on_frame(frames written)`` from its ``-progress`` report.

    stdout is the progress pipe, read here line by line; stderr goes to a temporary file, so
    neither pipe can fill up and stall ffmpeg. On any exception while it runs (Ctrl-C, SIGTERM as
    ``Terminated``, an error in ``on_frame``) ffmpeg is stopped and reaped before the exception
    goes on: it never outlives the call.
    """
    def read_progress(proc: Process) -> None:
        for line in proc.stdout:
            if line.startswith(b"frame=") and on_frame is not None:
                on_frame(int(line[6:].strip() or 0))

    _supervised(argv, what, read_progress, stdout=subprocess.PIPE,
                launched=[argv[0], "-progress", "pipe:1", "-nostats", *argv[1:]])


Process = subprocess.Popen


def run_watched(argv: list[str], what: str, started: Callable[[Process], None]) -> None:
    """Run ffmpeg with no output but its exit status; ``started(process)`` is called as soon as it
    runs (to record it, to stop it from another thread, to lower its priority). Whatever is raised
    while it runs, ``started`` included, stops it before going on; a failure raises the StitchError
    with the tail of its stderr."""
    _supervised(argv, what, started, stdout=subprocess.DEVNULL)


def _supervised(argv: list[str], what: str, body: Callable[[Process], None], stdout: int,
                launched: list[str] | None = None) -> None:
    """Start ffmpeg (``launched``, else ``argv``) with its stderr in a temporary file, run
    ``body(process)`` then wait for it; whatever is raised meanwhile stops and reaps it before going
    on (it never outlives the call). A non-zero exit raises the StitchError naming ``argv``."""
    with tempfile.TemporaryFile() as stderr:
        try:
            proc = subprocess.Popen(launched or argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                                    env=child_env())
        except OSError as exc:
            raise _no_binary(argv, exc) from exc
        with proc:
            try:
                body(proc)
                rc = proc.wait()
            except BaseException:
                stop(proc)
                raise
        if rc != 0:
            raise ffmpeg_failed(argv, _tail(stderr), what, rc)


def _tail(stderr) -> bytes:
    stderr.seek(0, 2)
    stderr.seek(max(0, stderr.tell() - STDERR_TAIL_BYTES))
    return stderr.read()


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM, a grace period, then SIGKILL; returns only once the process is gone."""
    try:
        proc.terminate()
        proc.wait(timeout=STOP_GRACE)
    except subprocess.TimeoutExpired:
        pass
    finally:  # also when a second Ctrl-C lands during the grace period
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _no_binary(argv: list[str], exc: OSError) -> StitchError:
    return StitchError(f"cannot run ffmpeg at {argv[0]}: {exc.strerror or exc}",
                       "install ffmpeg or imageio-ffmpeg, or set WANCLIP_FFMPEG to a working ffmpeg")


# What ffmpeg says (and the exit status it gives, AVERROR(errno) & 0xff) when a write finds no room.
_NO_SPACE = {errno.ENOSPC: ("no space left on device", 256 - errno.ENOSPC),
             errno.EDQUOT: ("disk quota exceeded", 256 - errno.EDQUOT)}


def ffmpeg_failed(argv: list[str], stderr: bytes | str | None, what: str, rc: int) -> StitchError:
    """The error for a failed ffmpeg run: what we were doing, the command, its last words. A full
    disk is said in one line instead (``errno`` ENOSPC or EDQUOT): the command is not the problem."""
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else (stderr or "")
    for code, (said, status) in _NO_SPACE.items():
        if said in text.lower() or rc == status:
            error = StitchError(f"ffmpeg found no space left on the device while {what}",
                                "free some space on that disk, then try again")
            error.errno = code
            return error
    tail = "\n".join(text.strip().splitlines()[-STDERR_TAIL_LINES:])
    return StitchError(f"ffmpeg failed (exit {rc}) while {what}\n  command: {shlex.join(argv)}\n"
                       f"  ffmpeg said:\n{_indent(tail)}",
                       "check the clips named above play in a media player; rerun with the command "
                       "shown to see ffmpeg's full output")


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines()) or "    (nothing)"


# --- probing ------------------------------------------------------------------------------------

def probe(path: Path | str) -> ClipInfo:
    """Measure a clip. Raises StitchError naming the clip when it is missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise StitchError(f"clip not found: {path}",
                          "check the path, or rerun `wanclip render` to fetch the missing clip")
    argv = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-xerror", "-i", str(path),
            "-map", "0:v:0", "-c", "copy", "-f", "framecrc", "-"]
    # -xerror: a clip cut short mid-download otherwise reads "fine" up to where it stops
    done = spawn(argv, f"reading {path}", timeout=120)
    if done.returncode != 0:
        said = _last_error(done.stderr.decode("utf-8", "replace"))
        raise StitchError(f"clip {path} is corrupt or not a video: {said}",
                          "re-render that shot (delete the clip and rerun `wanclip render`), "
                          "or leave it out")
    return _parse(path, done.stdout.decode("utf-8", "replace"), done.stderr.decode("utf-8", "replace"))


def _last_error(stderr: str) -> str:
    """The line of ffmpeg's stderr that says what is wrong with the file (not the progress line)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    telling = [line for line in lines if re.search(r"partial file|corrupt|Invalid|moov|[Ee]rror", line)
               and "Conversion failed" not in line and not line.startswith("frame=")]
    return telling[0] if telling else "ffmpeg could not read it"


_HEADER = re.compile(r"^#(\w+) 0: (.*)$", re.M)
_PACKET = re.compile(r"^0,", re.M)
_PARENS = re.compile(r"\([^()]*\)")


def _parse(path: Path, framecrc: str, banner: str) -> ClipInfo:
    header = dict(_HEADER.findall(framecrc))
    frames = len(_PACKET.findall(framecrc))
    video = _stream_line(banner, "Video")
    if frames == 0 or video is None or "dimensions" not in header:
        raise StitchError(f"clip {path} has no video frames",
                          "re-render that shot, or leave it out")
    width, height = (int(v) for v in header["dimensions"].split("x"))
    plain = [part.strip() for part in _strip_parens(video).split(",")]
    profile = re.match(r"\s*\w+ \(([^)]*)\)", video)
    return ClipInfo(
        path=path, frames=frames, fps=_fps(video, path), width=width, height=height,
        codec=header.get("codec_id", plain[0]), profile=profile.group(1) if profile else "",
        pix_fmt=plain[1] if len(plain) > 1 else "", sar=header.get("sar", "1/1").replace("/", ":"),
        time_base=header.get("tb", ""), has_audio=_stream_line(banner, "Audio") is not None,
    )


def _stream_line(banner: str, kind: str) -> str | None:
    """The text after ``Video:`` of the input's first stream of that kind."""
    input_part = banner.split("Stream mapping:")[0]
    match = re.search(rf"^\s*Stream #0:\d+\S*: {kind}: (.*)$", input_part, re.M)
    return match.group(1) if match else None


def _strip_parens(text: str) -> str:
    while (stripped := _PARENS.sub("", text)) != text:
        text = stripped
    return text


def _fps(video: str, path: Path) -> Fraction:
    """Frame rate from the banner (``16 fps``, ``23.98 fps``), NTSC rates made exact again."""
    match = re.search(r", ([\d.]+)(k?) (?:fps|tbr)", video)
    if not match:
        raise StitchError(f"clip {path} has no frame rate", "re-encode it at a constant frame rate")
    value = Fraction(match.group(1)) * (1000 if match.group(2) else 1)
    ntsc = Fraction(round(value * Fraction(1001, 1000)) * 1000, 1001)
    if value.denominator != 1 and abs(float(ntsc - value)) < 0.006:
        return ntsc
    return value.limit_denominator(1000)


# --- frames for pictures ------------------------------------------------------------------------

def read_frames(path: Path, indices: list[int], width: int, height: int, scale: bool = True) -> dict[int, bytes]:
    """Frames ``indices`` of a video as raw RGB24 bytes, by index; a frame the file lacks is absent.
    ``scale``: scaled to ``width``x``height``; else decoded as they are (then that is their size)."""
    expr = "+".join(f"eq(n\\,{i})" for i in sorted(set(indices)))
    size_filter = f"scale={width}:{height}," if scale else ""
    argv = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path), "-map", "0:v:0",
            "-vf", f"select={expr},{size_filter}format=rgb24", "-fps_mode", "passthrough",
            "-f", "rawvideo", "-"]
    raw = run(argv, f"reading frames of {path}", timeout=300).stdout
    size = width * height * 3
    got = {i: raw[k * size:(k + 1) * size] for k, i in enumerate(sorted(set(indices)))}
    return {i: frame for i, frame in got.items() if len(frame) == size}


def grab_frames(clip: ClipInfo, indices: list[int], width: int, height: int) -> list[bytes]:
    """Frames ``indices`` of a clip, scaled to ``width``x``height``, as raw RGB24 bytes each."""
    got = read_frames(clip.path, indices, width, height)
    blank = bytes(width * height * 3)
    return [got.get(i, blank) for i in indices]


@functools.lru_cache(maxsize=8)
def xfade_transitions(exe: str | None = None) -> frozenset[str]:
    """Transition names this ffmpeg's xfade knows (9.0 has 59, Debian's 5.1 has 47): asked, not assumed."""
    text = run([exe or ffmpeg_exe(), "-hide_banner", "-h", "filter=xfade"], "listing xfade transitions",
               timeout=30).stdout.decode("utf-8", "replace")
    section = text.split(" transition ", 1)[-1]
    names = []
    for line in section.splitlines()[1:]:
        match = re.match(r"^ {5}(\w+)\s+-?\d+\s", line)
        if not match:
            break
        names.append(match.group(1))
    return frozenset(names) - {"custom"}
