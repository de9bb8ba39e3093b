"""From a finished prompt's history entry to a verified clip on disk.

Videos are listed under ``gifs`` by VideoHelperSuite and under ``images`` (with ``animated``) by
core ``SaveVideo``. The server's ``filename``/``subfolder`` are only ever sent back to ``/view``;
the local name is wanclip's own (``clips/NN_name.mp4``), so a hostile or buggy server cannot make
wanclip write outside the film folder, and ``fullpath`` is never opened.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from wanclip import media
from wanclip.comfy.client import ComfyClient
from wanclip.comfy.events import VideoSaved, from_message, parse
from wanclip.errors import ClipError, ServerError, StitchError
from wanclip.files import sha256_file

VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv", ".mov")
MAX_CLIP_BYTES = 16 << 30  # no clip of any length is bigger than this
FAILED_SUFFIX = ".failed"  # NAME.failed: the background encode of NAME failed (JSON with "message")
WAIT_TIMEOUT = 300.0  # seconds an announced clip may take to appear (a 481-frame encode is ~10 s)
MAX_MARKER_BYTES = 1 << 16


def size_limit(frames: int, width: int, height: int) -> int:
    """The most bytes a clip of this shape may take: its raw RGB frames plus 64 MB, capped.

    An H.264 clip is ~1/30 of that and a lossless one well under it, so only a broken or hostile
    server (``/view`` streaming forever) reaches the limit."""
    return min(frames * width * height * 3 + (64 << 20), MAX_CLIP_BYTES)


@dataclass(frozen=True)
class OutputFile:
    node: str
    filename: str
    subfolder: str
    kind: str  # "output" or "temp"

    @property
    def extension(self) -> str:
        suffix = PurePosixPath(self.filename).suffix.lower()
        return suffix if suffix in VIDEO_EXTENSIONS else ".mp4"


def _is_video(item: dict, key: str, output: dict) -> bool:
    name = str(item.get("filename", ""))
    fmt = str(item.get("format", ""))
    if PurePosixPath(name).suffix.lower() in VIDEO_EXTENSIONS or fmt.startswith("video/"):
        return True
    return key == "images" and bool(output.get("animated")) and any(output.get("animated"))


def video_outputs(outputs: dict) -> list[OutputFile]:
    """Every video file in a history entry's ``outputs`` (or ``executed`` events), in node order."""
    found = []
    for node, output in (outputs or {}).items():
        if not isinstance(output, dict):
            continue
        for key in ("gifs", "images", "videos"):
            for item in output.get(key) or []:
                if isinstance(item, dict) and "filename" in item and _is_video(item, key, output):
                    found.append(OutputFile(str(node), str(item["filename"]), str(item.get("subfolder") or ""),
                                            str(item.get("type") or "output")))
    return found


def is_async(outputs: dict) -> bool:
    """Whether a node announced its file before writing it (WanclipSaveVideo's ``wanclip`` ui key):
    ``/view`` answers 404 until the background encode renames it into place."""
    for output in (outputs or {}).values():
        marks = output.get("wanclip") if isinstance(output, dict) else None
        if isinstance(marks, list) and any(isinstance(m, dict) and m.get("pending") for m in marks):
            return True
    return False


VideoEvent = VideoSaved  # one parser for the node pack's event: ``wanclip.comfy.events``


def parse_video_event(message) -> VideoEvent | None:
    """A websocket message (its JSON text or the decoded ``{"type", "data"}``) as a ``VideoEvent``;
    None for every other message and for a malformed one."""
    event = parse(message) if isinstance(message, str | bytes) else from_message(message)
    return event if isinstance(event, VideoSaved) else None


class VideoEvents:
    """``wanclip.video`` events as they arrive, for ``wait_for_file``. Thread-safe: the socket
    reader calls ``feed``/``put``, the download waits in ``wait``."""

    def __init__(self):
        self._cond = threading.Condition()
        self._seen: dict[tuple[str, str, str], VideoEvent] = {}

    def feed(self, message) -> bool:
        """Keep the message if it is a ``wanclip.video`` event; returns whether it was one."""
        event = parse_video_event(message)
        if event is not None:
            self.put(event)
        return event is not None

    def put(self, event: VideoEvent) -> None:
        with self._cond:
            self._seen[event.key] = event
            self._cond.notify_all()

    def get(self, out: OutputFile) -> VideoEvent | None:
        with self._cond:
            return self._seen.get((out.kind, out.subfolder, out.filename))

    def wait(self, out: OutputFile, timeout: float) -> VideoEvent | None:
        key = (out.kind, out.subfolder, out.filename)
        with self._cond:
            self._cond.wait_for(lambda: key in self._seen, max(timeout, 0.0))
            return self._seen.get(key)


def _view_status(client: ComfyClient, filename: str, subfolder: str, kind: str) -> int:
    """The status ``/view`` answers for a file, reading one byte at most (a ranged GET: HEAD is not
    a route of every ComfyUI)."""
    params = {"filename": filename, "subfolder": subfolder, "type": kind}
    response = client._request("GET", "/view", params=params, headers={"Range": "bytes=0-0"}, stream=True)
    try:
        return response.status_code
    finally:
        response.close()


def _failure_reason(client: ComfyClient, out: OutputFile) -> str | None:
    """The reason in ``NAME.failed`` when the server has that marker, else None."""
    params = {"filename": out.filename + FAILED_SUFFIX, "subfolder": out.subfolder, "type": out.kind}
    response = client._request("GET", "/view", params=params, stream=True)
    try:
        if response.status_code != 200:
            return None
        raw = response.raw.read(MAX_MARKER_BYTES, decode_content=True) or b""
    finally:
        response.close()
    try:
        data = json.loads(raw)
        return str(data.get("message") or "no reason given") if isinstance(data, dict) else raw.decode()[:500]
    except (ValueError, UnicodeDecodeError):
        return raw.decode(errors="replace")[:500] or "no reason given"


def _encode_failed(out: OutputFile, reason: str) -> ClipError:
    return ClipError(f"the server's background encode of {out.filename} failed: {reason}",
                     "see the ComfyUI console for the encoder's log; rerun to render the shot again")


def wait_for_file(client: ComfyClient, out: OutputFile, timeout: float = WAIT_TIMEOUT, *,
                  events: VideoEvents | None = None, poll: float = 0.25,
                  clock: Callable[[], float] = time.monotonic) -> str:
    """Wait until an announced clip is complete on the server; returns how that was learned
    (``"event"`` or ``"view"``).

    The node's ``wanclip.video`` event (when ``events`` is given and the socket got it) settles it
    at once; otherwise ``/view`` is asked (one byte) every 0.1 s growing to ``poll`` s until the
    final name answers, which happens only after the rename from ``.part``. A failed encode, told
    by the event or by the ``NAME.failed`` marker, raises ``ClipError`` with the server's reason,
    as does ``timeout`` seconds without the file. An unreachable server raises ``ServerError``
    (transient) like any download."""
    check_safe(out)
    deadline, interval = clock() + timeout, 0.1
    while True:
        event = events.get(out) if events is not None else None
        if event is not None:
            if event.status == "done":
                return "event"
            raise _encode_failed(out, event.message or "no reason given")
        status = _view_status(client, out.filename, out.subfolder, out.kind)
        if status in (200, 206, 416):  # 416: a file there, but empty; the probe will judge it
            return "view"
        if status >= 500:
            raise ServerError(f"ComfyUI at {client.url} answered /view of {out.filename} with HTTP {status}",
                              "rerun: finished shots are kept", server=client.url, transient=True)
        if status != 404:
            raise ServerError(f"ComfyUI at {client.url} answered /view of {out.filename} with HTTP {status}",
                              "check the server", server=client.url)
        reason = _failure_reason(client, out)
        if reason is not None:
            raise _encode_failed(out, reason)
        left = deadline - clock()
        if left <= 0:
            raise ClipError(f"the clip {out.filename} was announced but is still not complete after {timeout:g} s",
                            "the server's background encoder may be stuck or overloaded: see the ComfyUI console; "
                            "rerun to render the shot again")
        pause = min(interval, left)
        if events is not None:
            events.wait(out, pause)
        else:
            time.sleep(pause)
        interval = min(interval * 1.5, poll)


def check_safe(out: OutputFile) -> None:
    """Refuse names that could point anywhere but a file in ComfyUI's output folder."""
    name, sub = out.filename, PurePosixPath(out.subfolder.replace("\\", "/"))
    if not name or "/" in name or "\\" in name or name in (".", "..") or sub.is_absolute() or ".." in sub.parts:
        raise ClipError(f"the server named an unsafe output file: subfolder {out.subfolder!r}, "
                        f"filename {out.filename!r}", "this is not something ComfyUI writes; check the server")


@dataclass(frozen=True)
class Clip:
    path: Path
    sha256: str
    frames: int
    width: int
    height: int
    seconds: float


def fetch_clip(client: ComfyClient, outputs: dict, dest_stem: Path, frames: int, width: int, height: int,
               fps: float, *, events: VideoEvents | None = None, wait_timeout: float = WAIT_TIMEOUT) -> Clip:
    """Download the shot's video through ``/view`` and check it is the clip asked for.

    A clip announced before it was written (WanclipSaveVideo) is first waited for with
    ``wait_for_file`` (its ``wanclip.video`` event from ``events``, else ``/view`` retries)."""
    videos = video_outputs(outputs)
    if not videos:
        raise ClipError("the prompt finished but produced no video output",
                        "does the workflow end in VHS_VideoCombine (video/h264-mp4) or SaveVideo?")
    video = videos[-1]
    check_safe(video)
    if is_async(outputs):
        wait_for_file(client, video, wait_timeout, events=events)
    dest = dest_stem.with_name(dest_stem.name + video.extension)  # a take's stem has a dot: NN_name.take2
    client.download(video.filename, video.subfolder, video.kind, dest, limit=size_limit(frames, width, height))
    return verify_clip(dest, video.filename, frames, width, height, fps)


def verify_clip(dest: Path, name: str, frames: int, width: int, height: int, fps: float) -> Clip:
    """The downloaded ``dest`` as a ``Clip``, or ``ClipError`` (and ``dest`` removed when it is not
    a video) when it is not what the shot asked for; ``name``: the server's name of it."""
    try:
        info = media.probe(dest)
    except StitchError as exc:
        dest.unlink(missing_ok=True)
        raise ClipError(f"the downloaded clip is not a readable video: {exc.message}",
                        "rerun to render the shot again") from exc
    problems = []
    if info.frames != frames:
        problems.append(f"{info.frames} frames, expected {frames}")
    if (info.width, info.height) != (width, height):
        problems.append(f"{info.width}x{info.height}, expected {width}x{height}")
    if abs(float(info.fps) - fps) > 0.01:  # the same frames at another rate: another length
        problems.append(f"{float(info.fps):g} fps ({info.duration:.3f} s), expected {fps:g} fps "
                        f"({frames / fps:.3f} s)")
    if problems:
        raise ClipError(f"the clip {name} is not what the shot asked for: {'; '.join(problems)}",
                        "check that the workflow's latent and output nodes are the ones wanclip edits")
    return Clip(dest, sha256_file(dest), info.frames, info.width, info.height, info.duration)

