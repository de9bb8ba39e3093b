"""The background clip encoder: frames in, an H.264 mp4 out, off ComfyUI's executor thread.

Pure Python (numpy when it is there, as on every ComfyUI server): nothing here imports ComfyUI,
so the logic is tested without it. One worker thread takes jobs from a bounded queue (a full
queue blocks the caller instead of holding more clips' frames in RAM), converts each frame to
uint8 exactly as VideoHelperSuite does (``clip(x * 255 + 0.5, 0, 255)``), pipes it to ffmpeg with
VHS's ``video/h264-mp4`` arguments (same pixel format, CRF, colour tags: the same frames), writes
``NAME.part`` and renames it to ``NAME`` when ffmpeg succeeded. A failure leaves no ``NAME`` but a
``NAME.failed`` marker (JSON with the reason). Every outcome is reported through ``notify``.

**A clip someone is waiting for is encoded in parts, side by side.** While the GPU has more
prompts the encode hides behind them, but the last clip of a run is waited for: the film, or the
person who queued it, can only start when it is written. In parts, the frames' conversion (one
thread each) and x264's serial stretches (its lookahead, the pipe) overlap: on a 16-CPU H100
server the last clip of a 12-shot film took 1.76 s in 4 parts against 2.5 s in one run (random-
weight noise, the slowest content for x264; measured 2026-12-08). ``parts(job, frames)`` (the node
asks the server: nothing queued behind this prompt) says how many runs of ffmpeg encode it,
each its frames' share with the same settings; a stream copy joins them (same SPS and PPS, each
part starting on a keyframe, so K parts add K-1 keyframes). ``parts_when_idle`` picks K.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import queue
import re
import shutil
import subprocess
import tempfile
import threading
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger("wanclip_nodes")

EVENT = "wanclip.video"
PART = ".part"
FAILED = ".failed"
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
PIX_FMTS = ("yuv420p", "yuv420p10le")
# Our files: the core savers' naming (<stem>_00001_.mp4) plus .part. Nothing else is ever deleted.
STALE_PART = re.compile(r".+_\d{5,}_\.(mp4|mkv|webm|mov)\.part")
STDERR_TAIL = 2000
MIN_PART = 16  # frames: a part shorter than this is not worth an ffmpeg of its own
MAX_PARTS = 8


class EncodeError(Exception):
    pass


def find_ffmpeg() -> str | None:
    """``WANCLIP_FFMPEG``, VHS's ``VHS_FORCE_FFMPEG_PATH`` (the same binary VHS uses, the same
    frames), imageio-ffmpeg's bundled binary, then ``ffmpeg`` on PATH."""
    for name in ("WANCLIP_FFMPEG", "VHS_FORCE_FFMPEG_PATH"):
        if os.environ.get(name):
            return os.environ[name]
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:  # noqa: BLE001 - not installed, or its binary missing: try PATH
        return shutil.which("ffmpeg")


def ffmpeg_args(ffmpeg: str, width: int, height: int, fps: float, channels: int, crf: int, pix_fmt: str,
                preset: str, out: str, metadata: str | None = None) -> list[str]:
    """VideoHelperSuite's ``video/h264-mp4`` command (nodes.py + h264-mp4.json), writing ``out``.

    ``-y`` instead of VHS's ``-n``: ``out`` is our own ``.part`` (created empty to reserve the name),
    and ``-f mp4`` because its suffix does not say the container. ``medium`` is x264's default, so
    it is not passed and the frames stay VHS's bit for bit. ``metadata``: an FFMETADATA1 file (the
    prompt and workflow), added as VHS's ``save_metadata`` does: a first input and mp4 tags."""
    head = [ffmpeg, "-i", metadata] if metadata else [ffmpeg]
    args = head + ["-v", "error", "-f", "rawvideo", "-pix_fmt", "rgba" if channels == 4 else "rgb24",
            "-color_range", "pc", "-colorspace", "rgb", "-color_primaries", "bt709", "-color_trc", "bt709",
            "-s", f"{width}x{height}", "-r", str(fps), "-i", "-",
            "-y", "-c:v", "libx264"]
    if preset != "medium":
        args += ["-preset", preset]
    tags = ["-metadata", "creation_time=now", "-movflags", "use_metadata_tags"] if metadata else []
    return args + ["-pix_fmt", pix_fmt, "-crf", str(crf), "-vf", "scale=out_color_matrix=bt709",
                   "-color_range", "tv", "-colorspace", "bt709", "-color_primaries", "bt709",
                   "-color_trc", "bt709", *tags, "-f", "mp4", out]


def concat_args(ffmpeg: str, listing: str, out: str, metadata: str | None = None) -> list[str]:
    """The parts in ``listing`` (the concat demuxer's list) joined by a stream copy into ``out``;
    ``metadata`` first, as ``ffmpeg_args`` adds it (the first input's tags become the file's)."""
    head = [ffmpeg, "-v", "error", "-i", metadata] if metadata else [ffmpeg, "-v", "error"]
    tags = ["-metadata", "creation_time=now", "-movflags", "use_metadata_tags"] if metadata else []
    return head + ["-f", "concat", "-safe", "0", "-i", listing, "-map", f"{1 if metadata else 0}:v",
                   "-c", "copy", *tags, "-y", "-f", "mp4", out]


def parts_when_idle(frames: int, cpus: int | None = None) -> int:
    """How many parts a waited-for clip is encoded in: one per four CPUs (8 parts measured no
    faster than 4 on 16 CPUs), at least ``MIN_PART`` frames each, at most ``MAX_PARTS``;
    ``WANCLIP_NODES_PARTS`` overrides it (1: never split)."""
    if cpus is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    wanted = cpus // 4
    with contextlib.suppress(ValueError):
        wanted = int(os.environ.get("WANCLIP_NODES_PARTS", "") or wanted)
    return max(1, min(wanted, frames // MIN_PART, MAX_PARTS))


def ffmetadata(metadata: dict) -> str:
    """VHS's metadata file: ``prompt`` and ``workflow`` first, each value JSON, with ``\\ ; # =`` and
    newlines escaped as ffmpeg's FFMETADATA1 format wants."""
    def line(key: str, value: object) -> str:
        text = json.dumps(value)
        for char in ("\\", ";", "#", "=", "\n"):
            text = text.replace(char, "\\" + char)
        return f"{key}={text}"

    keys = [k for k in ("prompt", "workflow") if k in metadata] + [k for k in metadata if k not in ("prompt", "workflow")]
    return ";FFMETADATA1\n" + "".join(line(k, metadata[k]) + "\n" for k in keys)


def frame_shape(images) -> tuple[int, int, int, int]:
    """(frames, height, width, channels) of an IMAGE batch ([T, H, W, C]) or a sequence of frames."""
    shape = tuple(int(n) for n in getattr(images, "shape", ()))
    if len(shape) != 4:
        raise ValueError(f"images must be a batch of frames [frames, height, width, channels], got shape {shape}")
    return shape  # type: ignore[return-value]


def to_uint8(frame) -> bytes:
    """One float frame (0..1, [H, W, C]) as uint8 bytes, computed like VHS's ``tensor_to_bytes``.

    A torch tensor is moved to the CPU here (in the worker); numpy does the maths when present.
    Without numpy (tests) a flat float32/float64 buffer is converted in Python, and a uint8 buffer
    is taken as it is."""
    if hasattr(frame, "cpu"):
        frame = frame.cpu()
    if hasattr(frame, "numpy"):
        frame = frame.numpy()
    try:
        import numpy as np
    except ImportError:
        np = None
    if np is not None and not isinstance(frame, bytes | bytearray | memoryview | array):
        a = np.asarray(frame)
        if a.dtype == np.uint8:
            return a.tobytes()
        return np.clip(a * (2**8 - 1) + 0.5, 0, (2**8 - 1)).astype(np.uint8).tobytes()
    view = memoryview(frame)
    if view.ndim != 1:
        view = view.cast("B").cast(view.format)
    if view.format == "B":
        return view.tobytes()
    return bytes(int(min(max(v * (2**8 - 1) + 0.5, 0), 2**8 - 1)) for v in view)


@dataclass
class Job:
    """One clip: the frames, the encode settings, where it goes, and what the event says about it."""

    images: object  # [T, H, W, C] floats 0..1 (a torch tensor on a real server)
    fps: float
    final: str  # absolute path of the finished file
    crf: int = 19
    pix_fmt: str = "yuv420p"
    preset: str = "medium"
    info: dict = field(default_factory=dict)  # prompt_id, node, filename, subfolder, type (the event's)
    sid: str | None = None  # the websocket client the event goes to (None: everyone)
    metadata: dict | None = None  # embedded as VHS's save_metadata does (prompt, workflow); None: none
    queued_at: float = field(default_factory=time.monotonic)

    @property
    def part(self) -> str:
        return self.final + PART

    @property
    def failed(self) -> str:
        return self.final + FAILED


class Encoder:
    """A worker thread, a bounded queue of jobs, one ffmpeg at a time.

    ``notify(payload, sid)`` gets one dict per job: ``status`` "done" or "failed", ``message``,
    ``frames``, ``bytes``, ``seconds`` (queued -> renamed) and the job's ``info``."""

    def __init__(self, notify: Callable[[dict, str | None], None] | None = None, *, max_pending: int = 2,
                 ffmpeg: str | None = None, start: bool = True, parts: Callable[[Job, int], int] | None = None):
        self.notify = notify or (lambda payload, sid: None)
        self.ffmpeg = ffmpeg
        self.parts = parts or (lambda job, frames: 1)  # asked when a job's encode starts
        self._jobs: queue.Queue[Job | None] = queue.Queue(maxsize=max(1, max_pending))
        self._lock = threading.Lock()
        self._procs: set[subprocess.Popen] = set()  # the ffmpegs running now (a job's parts)
        self._current: Job | None = None
        self._stopping = False
        self._idle = threading.Condition(self._lock)
        self._busy = 0  # jobs submitted and not yet reported
        self._thread = threading.Thread(target=self._work, name="wanclip-encoder", daemon=True)
        if start:
            self.start()

    def start(self) -> None:
        if not self._thread.is_alive():
            self._thread.start()

    # -- the executor's side -----------------------------------------------------------------------
    def submit(self, job: Job, timeout: float | None = None) -> None:
        """Queue a job; blocks while ``max_pending`` jobs are already waiting (``queue.Full`` after
        ``timeout``). The ``.part`` must exist already: it reserves the name."""
        with self._lock:
            if self._stopping:
                raise EncodeError("the encoder is shut down (ComfyUI is exiting)")
            self._busy += 1
        if self._jobs.full():
            log.info("wanclip: %d clip(s) waiting for the encoder; the next waits for a free slot",
                     self._jobs.qsize())
        try:
            self._jobs.put(job, timeout=timeout)
        except BaseException:
            with self._lock:
                self._busy -= 1
                self._idle.notify_all()
            raise

    def wait_idle(self, timeout: float | None = None) -> bool:
        """True once every submitted job was reported (for tests and a clean exit)."""
        with self._lock:
            return self._idle.wait_for(lambda: self._busy == 0, timeout)

    def pending(self) -> int:
        return self._jobs.qsize()

    # -- shutdown ----------------------------------------------------------------------------------
    def shutdown(self, timeout: float = 5.0) -> None:
        """Kill a running ffmpeg, fail every queued job (no ``.part`` left), stop the worker."""
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
            procs = list(self._procs)
        for proc in procs:
            if proc.poll() is None:
                with contextlib.suppress(OSError):
                    proc.kill()
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                self._fail(job, "ComfyUI shut down before the clip was encoded", frames=0)
        with contextlib.suppress(queue.Full):
            self._jobs.put_nowait(None)
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    # -- the worker ---------------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            with self._lock:
                self._current = job
            try:
                self._encode(job)
            except Exception as exc:  # noqa: BLE001 - any failure becomes the job's failed marker
                self._fail(job, f"{type(exc).__name__}: {exc}")
            finally:
                with self._lock:
                    self._current = None
            if self._stopping:
                return

    def _encode(self, job: Job) -> None:
        count, height, width, channels = frame_shape(job.images)
        ffmpeg = self.ffmpeg or find_ffmpeg()
        if not ffmpeg:
            raise EncodeError("ffmpeg not found: install imageio-ffmpeg in ComfyUI's Python or put ffmpeg "
                              "on PATH (or set WANCLIP_FFMPEG)")
        try:
            parts = max(1, min(int(self.parts(job, count)), count))
        except Exception:  # noqa: BLE001 - a question about the server must never fail the clip
            log.exception("wanclip: could not decide whether to encode %s in parts", os.path.basename(job.final))
            parts = 1
        with tempfile.TemporaryDirectory(prefix="wanclip-meta-") as tmp:
            meta = None
            if job.metadata:
                meta = os.path.join(tmp, "metadata.txt")  # one per job: encodes may overlap with VHS's
                with open(meta, "w", encoding="utf-8") as file:
                    file.write(ffmetadata(job.metadata))

            def args(out: str, tags: str | None) -> list[str]:
                return ffmpeg_args(ffmpeg, width, height, float(job.fps), channels, job.crf, job.pix_fmt,
                                   job.preset, out, tags)

            if parts == 1:
                self._run_all(job, [(args(job.part, meta), range(count))])
            else:
                bounds = [count * k // parts for k in range(parts + 1)]
                outs = [os.path.join(tmp, f"part{k}.mp4") for k in range(parts)]
                self._run_all(job, [(args(out, None), range(bounds[k], bounds[k + 1]))
                                    for k, out in enumerate(outs)])
                listing = os.path.join(tmp, "parts.txt")
                with open(listing, "w", encoding="utf-8") as file:
                    file.write("".join(f"file '{out}'\n" for out in outs))
                self._run_all(job, [(concat_args(ffmpeg, listing, job.part, meta), range(0))])
                log.info("wanclip: %s encoded in %d parts side by side (nothing queued behind it)",
                         os.path.basename(job.final), parts)
        size = os.path.getsize(job.part)
        os.replace(job.part, job.final)
        self._report(job, "done", "", frames=count, size=size)

    def _run_all(self, job: Job, runs: list[tuple[list[str], range]]) -> None:
        """Each ffmpeg fed its frames (none: stdin closed at once), side by side; all must succeed."""
        failures: list[str] = []  # in the order they happened: the first is the cause, the rest were killed
        if len(runs) == 1:
            self._run_ffmpeg(job, *runs[0], failures)
        else:
            threads = [threading.Thread(target=self._run_ffmpeg, args=(job, argv, frames, failures),
                                        name=f"wanclip-encoder-part{i}", daemon=True)
                       for i, (argv, frames) in enumerate(runs)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        if self._stopping:
            raise EncodeError("ComfyUI shut down while the clip was being encoded")
        if failures:
            raise EncodeError(failures[0])

    def _run_ffmpeg(self, job: Job, args: list[str], frames: range, failures: list[str]) -> None:
        written, failure = 0, None
        with tempfile.TemporaryFile() as err:
            # env given: the child's environment is built before the (v)fork, never read from the C
            # library's environ while another thread of the server may be changing it (EFAULT)
            with subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err,
                                  env=dict(os.environ)) as proc:
                with self._lock:
                    self._procs.add(proc)
                    stopping = self._stopping
                try:
                    if stopping:
                        proc.kill()
                    for i in frames:
                        proc.stdin.write(to_uint8(job.images[i]))
                        written += 1
                    proc.stdin.close()
                except (BrokenPipeError, OSError):  # ffmpeg died (or was killed): its stderr says why
                    pass
                except Exception as exc:  # noqa: BLE001 - a frame that failed to convert
                    failure = f"{type(exc).__name__}: {exc}"
                finally:
                    if written < len(frames) and proc.poll() is None:
                        proc.kill()  # never leave a half-fed ffmpeg
                    with contextlib.suppress(OSError):
                        proc.stdin.close()
                    code = proc.wait()
                    with self._lock:
                        self._procs.discard(proc)
            err.seek(0)
            stderr = err.read().decode(errors="replace").strip()[-STDERR_TAIL:]
        if failure is None and (code != 0 or written != len(frames)):
            failure = (f"ffmpeg exited with {code} after {written} of {len(frames)} frames"
                       + (f": {stderr}" if stderr else ""))
        if failure:
            with self._lock:  # the other parts are useless now
                failures.append(failure)
                for other in self._procs:
                    with contextlib.suppress(OSError):
                        other.kill()

    def _fail(self, job: Job, message: str, frames: int | None = None) -> None:
        log.error("wanclip: clip %s failed: %s", os.path.basename(job.final), message)
        with contextlib.suppress(OSError):
            os.unlink(job.part)
        with contextlib.suppress(OSError):
            tmp = job.failed + ".tmp"
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump({"status": "failed", "message": message, **job.info}, fh)
            os.replace(tmp, job.failed)
        self._report(job, "failed", message, frames=frames or 0, size=0)

    def _report(self, job: Job, status: str, message: str, frames: int, size: int) -> None:
        payload = dict(job.info, status=status, message=message, frames=frames, bytes=size,
                       seconds=round(time.monotonic() - job.queued_at, 3))
        try:
            self.notify(payload, job.sid)
        except Exception:  # noqa: BLE001 - a dead socket must not kill the encoder
            log.exception("wanclip: could not send the %s event", EVENT)
        finally:
            with self._lock:
                self._busy -= 1
                self._idle.notify_all()


def reserve(folder: str, stem: str, counter: int, extension: str = "mp4") -> str:
    """The first free ``<stem>_<counter:05>_.<ext>`` from ``counter`` on, its ``.part`` created
    empty (exclusively) so a second prompt, another process or ComfyUI's counter never takes it."""
    os.makedirs(folder, exist_ok=True)
    while True:
        final = os.path.join(folder, f"{stem}_{counter:05}_.{extension}")
        if not any(os.path.exists(final + s) for s in ("", FAILED)):
            try:
                with open(final + PART, "xb"):
                    return final
            except FileExistsError:
                pass
        counter += 1


def cleanup_stale(roots) -> list[str]:
    """Delete our ``.part`` files left by a ComfyUI that died mid-encode (called when the pack loads,
    before any prompt runs). Only names of our pattern are touched."""
    removed = []
    for root in roots:
        if not root or not os.path.isdir(root):
            continue
        for folder, _dirs, files in os.walk(root):
            for name in files:
                if STALE_PART.fullmatch(name):
                    path = os.path.join(folder, name)
                    with contextlib.suppress(OSError):
                        os.unlink(path)
                        removed.append(path)
    if removed:
        log.info("wanclip: removed %d unfinished clip(s) left by an earlier run", len(removed))
    return removed


_shared: Encoder | None = None
_shared_lock = threading.Lock()


def shared_encoder(notify: Callable[[dict, str | None], None],
                   parts: Callable[[Job, int], int] | None = None) -> Encoder:
    """The one encoder of this ComfyUI process, shut down (ffmpeg killed, no ``.part``) at exit."""
    global _shared
    with _shared_lock:
        if _shared is None:
            pending = int(os.environ.get("WANCLIP_NODES_MAX_PENDING", "2") or 2)
            _shared = Encoder(notify, max_pending=pending, parts=parts)
            atexit.register(_shared.shutdown)
        return _shared
