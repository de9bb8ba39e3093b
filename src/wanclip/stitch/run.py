"""Running a planned stitch: ffmpeg (through ``media``) into ``<film>.part``, checked, renamed; the
result as the file measures; the errors a person can meet while writing a film, as messages."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from wanclip import media
from wanclip.errors import EXIT_BAD_INPUT, NO_SPACE, StitchError
from wanclip.files import size_text
from wanclip.media import ClipInfo
from wanclip.stitch.graph import HARD_CUT, Cut, StitchPlan

OnProgress = Callable[[int, int], None]  # (frames written, frames the film will have)


@dataclass
class StitchResult:
    """The written film, as measured from the file."""

    output: Path
    mode: str
    clips: int
    seconds: float
    frames: int
    width: int
    height: int
    fps: float
    contact_sheet: Path | None = None
    notes: list[str] = field(default_factory=list)

    @classmethod
    def measured(cls, film: ClipInfo, mode: str, clips: int, output: Path | None = None, **extra) -> StitchResult:
        """The result as the file measures (frames / fps, never the container's duration); ``output``
        when it was probed under another name (the ``.part``)."""
        return cls(output or film.path, mode, clips, film.duration, film.frames, film.width, film.height,
                   float(film.fps), **extra)

    def to_json(self) -> dict:
        return {"output": str(self.output), "mode": self.mode, "clips": self.clips,
                "seconds": self.seconds, "frames": self.frames, "width": self.width,
                "height": self.height, "fps": self.fps,
                "contact_sheet": str(self.contact_sheet) if self.contact_sheet else None,
                "notes": self.notes}



def run_stitch(plan: StitchPlan, on_progress: OnProgress | None = None) -> StitchResult:
    """Run the plan into ``<film>.part``; rename it over the film only once it measures right.

    ``on_progress(frames_done, frames_total)`` is called as ffmpeg reports. Whatever stops the run
    (an error, Ctrl-C, SIGTERM) stops ffmpeg with it and removes the ``.part``; a ``.part`` left by
    a run that was killed outright is simply replaced.
    """
    on_frame = (lambda done: on_progress(min(done, plan.frames), plan.frames)) if on_progress else None
    try:
        plan.output.parent.mkdir(parents=True, exist_ok=True)
        plan.part.unlink(missing_ok=True)
        _run_ffmpeg(plan, on_frame)
        film = media.probe(plan.part)
        if abs(film.frames - plan.frames) > 1:
            raise StitchError(f"the stitched film has {film.frames} frames, expected {plan.frames}",
                              "this is a wanclip bug; please report it with the clips' `wanclip stitch "
                              "--json` output")
        os.replace(plan.part, plan.output)
    except OSError as exc:
        _remove(plan.part)  # before the free space is measured
        raise write_failure(exc, plan.output, _film_bytes(plan)) from exc
    except StitchError as exc:
        if exc.errno in NO_SPACE:  # ffmpeg's own write found the disk full: the cause, not the command
            _remove(plan.part)
            raise write_failure(OSError(exc.errno, os.strerror(exc.errno)), plan.output, _film_bytes(plan)) from exc
        raise
    finally:
        _remove(plan.part)
    return StitchResult.measured(film, plan.mode, len(plan.clips), plan.output, notes=list(plan.notes))


def _remove(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:  # the error that brought us here says more than this one
        pass


def _run_ffmpeg(plan: StitchPlan, on_frame: Callable[[int], None] | None) -> None:
    what = f"writing {plan.output}"
    if plan.concat_list is None:
        media.run_with_progress(plan.argv, what, on_frame)
        return
    fd, list_file = tempfile.mkstemp(prefix=".wanclip-concat-", suffix=".txt", dir=plan.output.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(plan.concat_list)
        media.run_with_progress([list_file if a == "{list}" else a for a in plan.argv], what, on_frame)
    finally:
        _remove(Path(list_file))


_WRITE_HINTS = {
    errno.ENOSPC: ("the disk is full", "free some space on that disk (or write elsewhere with -o), then stitch again"),
    errno.EDQUOT: ("the disk quota is used up", "free some space (or write elsewhere with -o), then stitch again"),
    errno.EACCES: ("permission denied", "write the film to a writable folder with -o"),
    errno.EPERM: ("permission denied", "write the film to a writable folder with -o"),
    errno.EROFS: ("the folder is on a read-only disk", "write the film to a writable folder with -o"),
    errno.ENOENT: ("no such file or folder", "check the -o path (and that the clips' folder still exists)"),
    errno.ENOTDIR: ("a part of the path is a file, not a folder", "check the -o path"),
    errno.EEXIST: ("a part of the path is a file, not a folder", "check the -o path"),
}


def write_failure(exc: OSError, output: Path, need: int | None = None) -> StitchError:
    """A disk, permission or path problem while writing a film, as a message with a fix. A full
    disk says the room the film needs (``need``: about the bytes of the clips it joins) and what
    is free there."""
    what, hint = _WRITE_HINTS.get(exc.errno, (exc.strerror or str(exc),
                                              "check the -o path and that its folder is writable"))
    where = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(output) else ""
    if exc.errno in NO_SPACE:
        folder = Path(output).parent
        free = _free(folder)
        room = f": the film needs about {size_text(need)}" if need else ""
        room += f", {size_text(free)} free" if room and free is not None else ""
        where = f" (no space left on the disk of {folder}){room}"
        if need and free is not None and need > free:
            hint = hint.replace("free some space", f"free about {size_text(need - free)}", 1)
    error = StitchError(f"cannot write the film {output}: {what}{where}", hint)
    error.errno = exc.errno
    return error


def _film_bytes(plan: StitchPlan) -> int:
    """About what the film takes: the bytes of the clips it joins."""
    total = 0
    for clip in plan.clips:
        try:
            total += Path(clip.path).stat().st_size
        except OSError:
            pass
    return total


def _free(folder: Path) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None



def check_transitions(cuts: list[Cut], exe: str, option: str = "transition") -> None:
    """Ask this ffmpeg which transitions it has: versions differ, and its own error is cryptic. An
    unknown one is bad input (exit 2), named with the nearest names (``option`` names where it came
    from: ``--transition`` on the command line)."""
    import difflib

    known = media.xfade_transitions(exe)
    for cut in cuts:
        if cut.overlaps and cut.type not in known:
            close = difflib.get_close_matches(cut.type, [*sorted(known), HARD_CUT], n=3, cutoff=0.6)
            guess = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
            raise StitchError(f"unknown {option} {cut.type!r}: this ffmpeg's xfade does not have it{guess}",
                              f"use `cut` or one of: {', '.join(sorted(known))}", exit_code=EXIT_BAD_INPUT)


def check_not_an_input(output: Path, inputs: list[Path]) -> None:
    """Refuse to write the film over a file it is made from: the input would be lost half-read."""
    for source in inputs:
        if _same_file(output, Path(source)):
            raise StitchError(f"the output {output} is one of the inputs ({source})",
                              "write the film to another name with -o (by default it is film.mp4)",
                              exit_code=EXIT_BAD_INPUT)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:  # one of them does not exist (yet): compare where they would be
        return a.resolve() == b.resolve()


