"""Stitch while rendering: the film's pieces encoded as its clips arrive, joined by a stream copy.

The one-graph xfade stitch (``graph.plan_stitch``) can only start once every clip is here, and
then re-encodes the whole film while the user waits. Most of that film depends on one clip only:
each shot's body and each transition (``stitch.layout`` cuts the film into those pieces and says
why they hold the one graph's frames). ``FilmPieces`` encodes each piece as soon as the clips it
needs exist, in a background ffmpeg at low priority, and at the end joins them with the concat
demuxer and ``-c copy`` (a fraction of a second). When the film cannot be joined from pieces,
``finish()`` raises ``Unsupported`` and ``join.stitch_film`` (the one place that chooses) runs the
one graph.
"""

from __future__ import annotations

import io
import os
import queue
import re
import sys
import threading
import time
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

from wanclip import media
from wanclip.errors import Interrupted, StitchError, WanclipError
from wanclip.files import atomic_write_bytes, sha256_file
from wanclip.media import ClipInfo
from wanclip.stitch import graph
from wanclip.stitch.graph import FILM_NAME, Cut, counted
from wanclip.stitch.layout import (
    Body,
    Encoder,
    Layout,
    Piece,
    Unsupported,
    frame_step_us,
    layout,
    piece_argv,
    piece_name,
)
from wanclip.stitch.run import (
    OnProgress,
    StitchResult,
    check_not_an_input,
    check_transitions,
    run_stitch,
    write_failure,
)

PIECES_DIR = "pieces"
NICE = 10  # the background encoder's niceness: the render loop and ComfyUI come first
THUMBS_PREFIX = "thumbs-"


@dataclass
class _Clip:
    path: Path
    sha256: str
    info: ClipInfo


@dataclass
class _Job:
    """One ffmpeg run: a piece (with the clip's thumbnails when ``thumbs``), or only thumbnails."""

    name: str
    piece: Piece | None
    frames: int
    thumbs: int | None = None  # the clip whose thumbnails this run also writes


class FilmPieces:
    """The film's pieces, encoded as its clips arrive; ``finish()`` joins them into the film.

    Call ``clip_ready(position, path, sha256)`` from the render loop whenever a clip is on disk
    (it only queues: probing, hashing and encoding happen on a background thread, one low-priority
    ffmpeg at a time). ``finish()`` waits for that, encodes what is missing (two at a time, at
    normal priority: the render is over), stream-copies the pieces into the film and writes the
    contact sheet from the thumbnails the body encodes left. ``close()`` (also on leaving a
    ``with`` block) stops the background ffmpeg and removes its ``.part``: safe on Ctrl-C/SIGTERM.

    Thread use: ``clip_ready`` from any thread; ``finish`` and ``close``
    from the thread that owns the object (the one that made it).
    """

    def __init__(self, film_dir: Path, cuts: list[Cut], encoder: Encoder | None = None, *,
                 names: list[str] | None = None, output: Path | None = None, contact_sheet: bool = True,
                 jobs: int = 2, exe: str | None = None):
        self.film_dir = Path(film_dir)
        self.folder = self.film_dir / PIECES_DIR
        self.cuts = list(cuts)
        self.count = len(self.cuts) + 1
        self.encoder = encoder or Encoder()
        self.names = names or [f"shot {i + 1}" for i in range(self.count)]
        self.output = Path(output) if output else self.film_dir / FILM_NAME
        self.contact_sheet = contact_sheet
        self.jobs = max(1, jobs)
        self.exe = exe or media.ffmpeg_exe()
        self.encoded: list[str] = []  # piece names encoded by this object, in order
        self.seconds: dict[str, float] = {}  # wall seconds each of those took (ffmpeg + checks)
        self.finished_at: dict[str, float] = {}  # time.monotonic() when each was renamed in place
        self.reused: list[str] = []  # piece names found on disk and used
        self.unsupported: str | None = None  # why the one graph must join this film instead
        self.film_written_at: float | None = None  # time.monotonic() when the film was renamed in place
        self._clips: dict[int, _Clip] = {}
        self._arrivals: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._procs: dict[int, tuple[media.Process, Path]] = {}
        self._stopping = threading.Event()  # the worker ends after its current ffmpeg
        self._closed = False
        self._failed: set[str] = set()  # pieces whose background encode failed: finish retries them
        self._thread: threading.Thread | None = None
        self._parts: set[Path] = set()  # .part files this object is writing

    # -- the render loop's side ------------------------------------------------------------------
    def clip_ready(self, position: int, path: Path, sha256: str | None = None) -> None:
        """Clip ``position`` (0-based, film order) is on disk. Returns at once."""
        if not 0 <= position < self.count:
            raise ValueError(f"position {position} is not a shot of this {self.count}-shot film")
        with self._lock:
            if self._closed:
                return
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="wanclip-pieces", daemon=True)
                self._thread.start()
        self._arrivals.put((position, Path(path), sha256))

    def clip_known(self, position: int, path: Path, info: ClipInfo, sha256: str | None = None) -> None:
        """A clip already probed, taken at once (no background work): for ``wanclip stitch --from``."""
        self._clips[position] = _Clip(Path(path), sha256 or sha256_file(path), info)

    def feed_ledger(self, ledger) -> None:
        """Every shot the ledger has as done (e.g. those ``--only`` leaves alone). The ledger also
        says which shots continue the one before them: the cuts into those drop the clip's first
        frame, whatever cuts this object was made with (they were read from the same ledger)."""
        if len(ledger.shots) == self.count:
            cuts = [replace(cut, continues=True) if record.continues and record.continues == before.name
                    else cut for cut, (before, record) in zip(self.cuts, zip(ledger.shots, ledger.shots[1:],
                                                                             strict=False), strict=True)]
            with self._lock:
                self.cuts = cuts
        for position, record in enumerate(ledger.shots):
            clip = ledger.film_clip(record)  # the take the film uses: maybe pinned, maybe the user's edit
            if clip is not None and not ledger.post_wanted(record):  # else its post clip comes later
                self.clip_ready(position, clip, ledger.film_clip_sha256(record))

    # -- the background worker -------------------------------------------------------------------
    def _work(self) -> None:
        lowered = _lower_this_thread()
        while not self._stopping.is_set():
            try:
                item = self._arrivals.get(timeout=0.1)
            except queue.Empty:
                continue
            while item is not None:
                self._arrive(*item)
                try:
                    item = self._arrivals.get_nowait()
                except queue.Empty:
                    item = None
            try:
                jobs = self._jobs(complete=False)
            except (Unsupported, WanclipError) as exc:
                self.unsupported = str(exc)
                return
            for job in jobs:
                if self._stopping.is_set() or not self._arrivals.empty():
                    break  # a newer clip may change what is worth doing first
                try:
                    self._run_job(job, nice=not lowered)
                except WanclipError:
                    self._failed.add(job.name)  # finish() tries again in the foreground and reports it

    def _arrive(self, position: int, path: Path, sha256: str | None) -> None:
        try:
            sha = sha256 or sha256_file(path)
            known = self._clips.get(position)
            info = known.info if known and known.sha256 == sha and known.path == path else media.probe(path)
        except (OSError, WanclipError):
            self._clips.pop(position, None)  # finish() probes it again and names the problem
            return
        self._clips[position] = _Clip(path, sha, info)

    # -- what to encode ----------------------------------------------------------------------------
    def _prefix(self) -> int:
        n = 0
        while n in self._clips:
            n += 1
        return n

    def _film(self) -> tuple[Fraction, int, int]:
        first = self._clips[0].info
        return first.fps, first.width, first.height

    def _check_clips(self, known: int) -> None:
        fps, width, height = self._film()
        frame_step_us(fps)
        for i in range(1, known):
            info = self._clips[i].info
            if info.fps != fps or (info.width, info.height) != (width, height):
                raise Unsupported(f"{info.path.name} differs from {self._clips[0].info.path.name} in "
                                  f"frame rate or size ({info.width}x{info.height} @ {float(info.fps):g} vs "
                                  f"{width}x{height} @ {float(fps):g})")

    def _layout(self, known: int) -> Layout:
        self._check_clips(known)
        return layout([self._clips[i].info.frames for i in range(known)], self.cuts, self._film()[0])

    def _names(self, pieces: list[Piece]) -> list[str]:
        fps, width, height = self._film()
        film = {"fps": str(fps), "width": width, "height": height,
                "through_xfade": any(c.overlaps for c in self.cuts)}
        shas = [self._clips[i].sha256 if i in self._clips else "" for i in range(self.count)]
        return [piece_name(p, shas, film, self.encoder) for p in pieces]

    def _thumbs_path(self, position: int) -> Path:
        from wanclip.stitch.contact_sheet import thumb_size

        clip = self._clips[position]
        width, height = thumb_size(clip.info)
        return self.folder / f"{THUMBS_PREFIX}{clip.sha256[:16]}-{width}x{height}.png"

    def _jobs(self, complete: bool) -> list[_Job]:
        """What is still to encode, in film order: pieces whose clips are all here and whose place
        in the film the clips before them decide; with ``complete``, thumbnails left to make too."""
        known = self._prefix()
        if known == 0:
            return []
        plan = self._layout(known)
        jobs, thumbs_planned = [], set()
        for piece, name in zip(plan.pieces, self._names(plan.pieces), strict=True):
            if any(i not in self._clips for i in piece.clips):
                continue
            if (self.folder / name).is_file():
                continue
            thumbs = None
            if self.contact_sheet and isinstance(piece, Body) and not self._thumbs_path(piece.clip).is_file():
                thumbs = piece.clip
                thumbs_planned.add(piece.clip)
            jobs.append(_Job(name, piece, piece.frames, thumbs))
        if complete and self.contact_sheet:
            for i in range(known):
                if i not in thumbs_planned and not self._thumbs_path(i).is_file():
                    jobs.append(_Job(self._thumbs_path(i).name, None, 0, i))
        return jobs

    # -- one ffmpeg run ----------------------------------------------------------------------------
    def _argv(self, job: _Job, part: Path, thumbs_part: Path | None) -> list[str]:
        fps, width, height = self._film()
        clips = [self._clips[i].info if i in self._clips else None for i in range(self.count)]
        thumbs = None
        if job.thumbs is not None:
            from wanclip.stitch.contact_sheet import thumb_picks, thumb_size

            info = clips[job.thumbs]
            thumbs = (str(thumbs_part), thumb_picks(info), thumb_size(info))
        return piece_argv(job.piece, clips, fps, width, height, self.encoder, str(part), self.exe,
                          any(c.overlaps for c in self.cuts), thumbs)

    def _run_job(self, job: _Job, nice: bool = False) -> None:
        """Encode one job into ``.part`` files, check the piece's frame count, rename them."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if job.piece is None:
            self._write_thumbs(job.thumbs)
            return
        target = self.folder / job.name
        part = target.with_name(target.name + ".part")
        thumbs = self._thumbs_path(job.thumbs) if job.thumbs is not None else None
        thumbs_part = thumbs.with_name(thumbs.name + ".part") if thumbs else None
        argv = self._argv(job, part, thumbs_part)
        started = time.monotonic()
        with self._lock:
            self._parts.update(p for p in (part, thumbs_part) if p is not None)
        try:
            for stale in (part, thumbs_part):  # a killed run's leftovers are simply replaced
                if stale is not None:
                    stale.unlink(missing_ok=True)
            self._spawn_wait(argv, part, nice, f"encoding the piece {job.name}")
            got = media.probe(part).frames
            if got != job.frames:
                raise StitchError(f"the piece {job.name} has {got} frames, expected {job.frames}",
                                  "this is a wanclip bug; please report it (`wanclip stitch --no-pieces` "
                                  "joins the film in one graph meanwhile)")
            os.replace(part, target)
            if thumbs_part is not None and thumbs_part.is_file():
                os.replace(thumbs_part, thumbs)
        except OSError as exc:
            raise StitchError(f"cannot write the piece {target}: {exc.strerror or exc}",
                              "check that the film folder is writable and the disk not full") from exc
        finally:
            for leftover in (part, thumbs_part):
                if leftover is not None:
                    _remove(leftover)
                    with self._lock:
                        self._parts.discard(leftover)
        with self._lock:
            self.encoded.append(job.name)
            self.finished_at[job.name] = time.monotonic()
            self.seconds[job.name] = self.finished_at[job.name] - started

    def _spawn_wait(self, argv: list[str], part: Path, nice: bool, what: str) -> None:
        pids = []

        def started(proc: media.Process) -> None:  # registered under the lock: close() sees it, or it stops here
            with self._lock:
                if self._closed:
                    raise Interrupted("the film's pieces were closed")
                self._procs[proc.pid] = (proc, part)
                pids.append(proc.pid)
            if nice:
                _lower(proc.pid)

        try:
            media.run_watched(argv, what, started)
        except StitchError:
            if self._closed:  # close() stopped it: not a failure of the piece
                raise Interrupted("the film's pieces were closed") from None
            raise
        finally:
            with self._lock:
                for pid in pids:
                    self._procs.pop(pid, None)

    def _write_thumbs(self, position: int) -> None:
        """Thumbnails of a clip no body encode decoded (its body was reused, or it has none)."""
        from PIL import Image

        from wanclip.stitch.contact_sheet import thumb_picks, thumb_size

        info = self._clips[position].info
        size = thumb_size(info)
        unique = sorted(set(thumb_picks(info)))
        strip = Image.new("RGB", (size[0] * len(unique), size[1]))
        for col, raw in enumerate(media.grab_frames(info, unique, *size)):
            strip.paste(Image.frombytes("RGB", size, raw), (col * size[0], 0))
        buffer = io.BytesIO()
        strip.save(buffer, format="PNG")
        atomic_write_bytes(self._thumbs_path(position), buffer.getvalue())

    def _thumbs(self, position: int) -> list[bytes]:
        """The clip's first, middle and last frame, cut from its thumbnail strip."""
        from PIL import Image

        from wanclip.stitch.contact_sheet import thumb_picks, thumb_size

        info = self._clips[position].info
        width, height = thumb_size(info)
        unique = sorted(set(thumb_picks(info)))
        with Image.open(self._thumbs_path(position)) as strip:
            rgb = strip.convert("RGB")
        return [rgb.crop((unique.index(i) * width, 0, (unique.index(i) + 1) * width, height)).tobytes()
                for i in thumb_picks(info)]

    # -- the end -----------------------------------------------------------------------------------
    def finish(self, on_progress: OnProgress | None = None) -> StitchResult:
        """Wait for the background work, encode what is missing, join the pieces into the film.

        Every clip must have been given (``clip_ready``). When these clips cannot be joined by
        pieces (see the module's docstring) the one graph joins them, with a note saying why.
        """
        self._stop_worker()
        missing = [self.names[i] for i in range(self.count) if i not in self._clips]
        if missing:
            raise StitchError(f"no clip was given for {', '.join(missing)}",
                              "give every shot's clip to clip_ready() before finish()")
        self._recheck()
        self._validate()
        try:
            plan = self._layout(self.count)
        except Unsupported as exc:
            self.unsupported = str(exc)
        if self.unsupported is not None:
            raise Unsupported(self.unsupported)
        names = self._names(plan.pieces)
        early = set(self.encoded)  # encoded in the background while the render went on
        jobs = self._jobs(complete=False)
        self._encode_all(jobs, plan.frames, on_progress)
        result = self._join(plan, names, on_progress)
        self.reused = [n for n in names if n not in self.encoded]
        ready = len(self.reused) + len([n for n in names if n in early])
        result.notes.append(f"joined from {counted(len(names), 'piece')} in {self.folder} "
                            f"({ready} made while rendering or earlier)")
        from wanclip.stitch.contact_sheet import sheet_blocked, sheet_path  # PIL: once a film is made

        blocked = sheet_blocked(sheet_path(self.output)) if self.contact_sheet else None
        if blocked:  # a file of that name wanclip did not make: left alone
            result.notes.append(blocked)
        elif self.contact_sheet:
            for job in self._jobs(complete=True):
                self._run_job(job)
            result.contact_sheet = self._sheet()
        self._prune(set(names))
        return result

    def _validate(self) -> None:
        """Refuse what the one graph refuses, with its words: an unknown transition, one longer
        than its clip, a wrong number of cuts."""
        if any(c.overlaps for c in self.cuts):
            check_transitions(self.cuts, self.exe)
        graph.plan_stitch([self._clips[i].info for i in range(self.count)], self.output, "xfade", self.cuts,
                           self.encoder.crf, self.encoder.preset, exe=self.exe, names=self.names)

    def _stop_worker(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
        while True:  # arrivals the worker never got to
            try:
                item = self._arrivals.get_nowait()
            except queue.Empty:
                break
            self._arrive(*item)

    def _recheck(self) -> None:
        """Each clip is still the one its pieces were made from (a re-render replaces the file)."""
        for position, clip in list(self._clips.items()):
            try:
                same = sha256_file(clip.path) == clip.sha256
            except OSError as exc:
                raise StitchError(f"cannot read the clip {clip.path}: {exc.strerror}",
                                  "check the film folder") from exc
            if not same:
                self._clips.pop(position)
                self._arrive(position, clip.path, None)

    def _encode_all(self, jobs: list[_Job], total: int, on_progress: OnProgress | None) -> None:
        """The missing pieces, ``jobs`` ffmpegs at a time; progress counts finished pieces' frames."""
        done = total - sum(j.frames for j in jobs)
        if on_progress:
            on_progress(done, total)
        if not jobs:
            return
        from concurrent.futures import ThreadPoolExecutor, as_completed

        with ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="wanclip-piece") as pool:
            futures = {pool.submit(self._run_job, job): job for job in jobs}
            try:
                for future in as_completed(futures):
                    future.result()
                    done += futures[future].frames
                    if on_progress:
                        on_progress(done, total)
            except BaseException:
                for future in futures:
                    future.cancel()
                self._kill_all()
                raise

    def _join(self, plan: Layout, names: list[str], on_progress: OnProgress | None) -> StitchResult:
        fps, width, height = self._film()
        parts = [ClipInfo(self.folder / name, piece.frames, fps, width, height, "h264", "", "yuv420p", "1:1",
                          "", False) for piece, name in zip(plan.pieces, names, strict=True)]
        check_not_an_input(self.output, [c.path for c in self._clips.values()])
        copy = graph.plan_concat_copy(parts, [], self.output, graph.container_for(self.output), None, self.exe)
        result = run_stitch(copy, None)
        self.film_written_at = time.monotonic()
        if result.frames != plan.frames:
            raise StitchError(f"the joined film has {result.frames} frames, expected {plan.frames}",
                              "this is a wanclip bug; `wanclip stitch --no-pieces` joins it in one graph")
        if on_progress:
            on_progress(plan.frames, plan.frames)
        result.mode, result.clips = "xfade", self.count
        return result

    def write_sheet(self) -> Path:
        """The contact sheet of a finished film, after the fact: a render joins the film with
        ``contact_sheet`` off (so the film is on disk sooner), then calls this; thumbnails no body
        encode cut along the way are cut now."""
        self.contact_sheet = True
        for position in range(self.count):
            if not self._thumbs_path(position).is_file():
                self._write_thumbs(position)
        return self._sheet()

    def _sheet(self) -> Path:
        from wanclip.stitch.contact_sheet import sheet_path, write_contact_sheet

        shots = [(self.names[i], self._clips[i].info) for i in range(self.count)]
        path = sheet_path(self.output)
        try:
            return write_contact_sheet(shots, path.parent, thumbs=[self._thumbs(i) for i in range(self.count)],
                                       file_name=path.name)
        except OSError as exc:
            raise write_failure(exc, path) from exc

    def _prune(self, keep: set[str]) -> None:
        """Pieces and thumbnails this film no longer uses (another clip, cut or encoder)."""
        thumbs = {self._thumbs_path(i).name for i in range(self.count)}
        for path in self.folder.glob("*"):
            ours = path.suffix in (".mp4", ".png") and "-" in path.name
            if ours and path.name not in keep | thumbs:
                _remove(path)

    def _kill_all(self) -> None:
        with self._lock:
            running = list(self._procs.values())
        for proc, _part in running:
            media.stop(proc)

    def close(self) -> None:
        """Stop the background ffmpeg (SIGTERM, then SIGKILL) and remove its ``.part``. Idempotent."""
        with self._lock:
            self._closed = True
        self._stopping.set()
        self._kill_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        with self._lock:
            parts = list(self._parts)
        for part in parts:  # only ours: a .part of another process is not ours to delete
            _remove(part)

    def __enter__(self) -> FilmPieces:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_SHA_PREFIX = re.compile(r"(?<![0-9a-f])[0-9a-f]{16}(?![0-9a-f])")


def prune(film_dir: Path, shas: list[str], parts: bool = True) -> None:
    """Once a film is made from ``film_dir``'s clips (``shas``, whichever way it was joined), remove
    from its ``pieces/`` what no later stitch can reuse: pieces and thumbnails made from a clip the
    film no longer has (a re-rendered or left-out shot), and, with ``parts``, the ``.part`` files of
    an encode that was killed; then the folder itself when nothing is left. The pieces of the
    film's clips stay: a re-stitch after one shot is re-rendered encodes only that shot's pieces.
    The caller holds the folder's ``film_lock`` (and, with ``parts``, runs no encoder there)."""
    folder = Path(film_dir) / PIECES_DIR
    if not folder.is_dir():
        return
    current = {sha[:16] for sha in shas if sha}
    for path in folder.iterdir():
        if not path.is_file() or path.is_symlink():
            continue
        name = path.name.removesuffix(".part")
        made_from = _SHA_PREFIX.findall(name) if name.endswith((".mp4", ".png")) else []
        if not made_from:
            continue  # not a name wanclip gives: not ours to remove
        if path.name.endswith(".part"):
            if parts:
                _remove(path)
        elif not set(made_from) <= current:
            _remove(path)
    try:
        folder.rmdir()  # only when empty
    except OSError:
        pass


def _lower_this_thread() -> bool:
    """Lower this thread's priority; on Linux a thread's niceness is its own and every process
    it starts inherits it, so the encoder runs nice from its first instruction."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)
    except (OSError, AttributeError):
        return False
    return True


def _lower(pid: int) -> None:
    try:
        os.setpriority(os.PRIO_PROCESS, pid, NICE)
    except (OSError, AttributeError):  # gone already, or no priorities here
        pass


def _remove(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass
