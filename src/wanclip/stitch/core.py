"""Join clips into a film with one ffmpeg run.

``plan_stitch()`` is pure: from measured clips (``media.probe``) and the cuts between them it
builds the ffmpeg command and says what the film will measure. ``run_stitch()`` runs it into
``<film>.part`` and renames it only when the written file measures what the plan says.
``stitch()`` does probe + plan + run for explicit clips; ``stitch_film()`` does the same for a
rendered film folder, reading clips, order and transitions from the render ledger.

Modes:

* ``xfade``: one filter graph (never a chain of re-encodes, which costs O(N^2) time and a
  generation of quality per join). Each input is normalised first (frame rate, size, SAR, pixel
  format, time base) because xfade refuses or silently distorts anything else. Offsets follow
  ``vf_xfade.c``: offset k is measured on the film-so-far, ``sum(d_1..d_k) - sum(t_1..t_k)``,
  with each d measured from the clip's frame count, never the container duration.
* ``concat``: the concat demuxer with stream copy when every clip shares codec, profile, size,
  pixel format, fps, time base and SAR (copying mismatched clips "succeeds" with a broken film);
  otherwise the concat filter with the same normalisation, and a note saying why.

Chains: a ``Cut`` with ``continues`` goes into a clip that starts on the previous clip's last
frame (image-to-video from it). It is a hard cut that drops that clip's first frame, trimmed by
frame number after the normalisation, so the motion runs on with no frame shown twice and the
film is ``timeline.film_seconds`` long. A stream copy cannot drop one frame, so ``concat`` mode
then goes through the concat filter (with a note).
"""

from __future__ import annotations

import errno
import math
import os
import shlex
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import ffmpeg

from wanclip import media
from wanclip.errors import EXIT_BAD_INPUT, StitchError
from wanclip.files import sha256_file
from wanclip.media import ClipInfo
from wanclip.planning.timeline import cut_problem, kept_frames

MODES = ("xfade", "concat")
HARD_CUT = "cut"
DEFAULT_TRANSITION = "fade"
DEFAULT_DURATION = 0.3
MUSIC_FADE_OUT = 1.5
FILM_NAME = "film.mp4"
CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
OnProgress = Callable[[int, int], None]  # (frames written, frames the film will have)


@dataclass(frozen=True)
class Cut:
    """The join into a clip from the one before it: an xfade transition name, or ``cut``.

    ``continues``: that clip continues the one before (its first frame is the other's last one):
    the cut must be a hard cut, and the clip's first frame is dropped.
    """

    type: str = DEFAULT_TRANSITION
    duration: float = DEFAULT_DURATION
    continues: bool = False

    @property
    def overlaps(self) -> bool:
        return self.type != HARD_CUT


@dataclass
class StitchPlan:
    """Everything a stitch will do, decided before ffmpeg starts."""

    mode: str  # "xfade", "concat-copy" or "concat-filter"
    clips: list[ClipInfo]
    cuts: list[Cut]
    output: Path
    fps: Fraction
    width: int
    height: int
    frames: int  # what the written film must measure
    offsets: list[float | None]  # seconds into the film-so-far where each cut starts (None: hard cut)
    argv: list[str]
    concat_list: str | None = None  # the demuxer list file's text, for concat-copy
    notes: list[str] = field(default_factory=list)

    @property
    def part(self) -> Path:
        return part_path(self.output)

    @property
    def seconds(self) -> float:
        return float(self.frames / self.fps)


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


def counted(n: int, noun: str) -> str:
    """``1 clip``, ``2 clips``: never ``1 clips``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def part_path(output: Path) -> Path:
    return output.with_name(output.name + ".part")


# --- planning (pure) ----------------------------------------------------------------------------

def plan_stitch(clips: list[ClipInfo], output: Path, mode: str = "xfade", cuts: list[Cut] | None = None,
                crf: int = 19, preset: str = "fast", audio: Path | None = None,
                exe: str = "ffmpeg", names: list[str] | None = None) -> StitchPlan:
    """Build the ffmpeg command for these measured clips. ``cuts[k]`` joins clip k and k+1."""
    if not clips:
        raise StitchError("no clips to stitch", "name clips on the command line, or use --from OUT_DIR")
    if mode not in MODES:
        raise StitchError(f"unknown mode {mode!r}", f"use one of: {', '.join(MODES)}")
    output = Path(output)
    container = _container(output)
    cuts = list(cuts) if cuts is not None else [Cut()] * (len(clips) - 1)
    if len(cuts) != len(clips) - 1:
        raise StitchError(f"{counted(len(clips), 'clip')} need {counted(len(clips) - 1, 'cut')}, got {len(cuts)}")
    names = names or [c.path.name for c in clips]
    if mode == "concat":
        cuts = [Cut(HARD_CUT, 0.0, c.continues) for c in cuts]
        if _copy_mismatch(clips) is None and not any(c.continues for c in cuts):
            return _plan_concat_copy(clips, cuts, output, container, audio, exe)
    fps = clips[0].fps
    width, height = _even(clips[0].width * _sar(clips[0]), clips[0].height)
    frames = [_frames_at(c, fps) for c in clips]
    _check_cuts(cuts, frames, fps, names)
    kept = [frames[0], *(kept_frames(n, c.continues) for n, c in zip(frames[1:], cuts, strict=True))]
    offsets, total = _offsets(cuts, kept, fps)
    video = _graph(clips, cuts, offsets, fps, width, height)
    plan = StitchPlan("xfade" if mode == "xfade" else "concat-filter", clips, cuts, output, fps,
                      width, height, total, offsets, argv=[])
    if mode == "concat":
        why = _copy_mismatch(clips) or ("a continued shot's first frame is dropped (a stream copy cannot "
                                        "drop one frame)")
        plan.notes.append(f"re-encoded through the concat filter: {why}")
    plan.argv = _encode_argv(video, plan, container, crf, preset, audio, exe)
    return plan


def _container(output: Path) -> str:
    try:
        return CONTAINERS[output.suffix.lower()]
    except KeyError:
        raise StitchError(f"cannot write a film named {output.name}",
                          f"end the output name with one of {', '.join(CONTAINERS)}") from None


def _sar(clip: ClipInfo) -> Fraction:
    num, _, den = clip.sar.partition(":")
    try:
        return Fraction(int(num), int(den)) if int(num) > 0 and int(den) > 0 else Fraction(1)
    except ValueError:
        return Fraction(1)


def _even(width: Fraction | int, height: int) -> tuple[int, int]:
    """yuv420p needs even sizes; round the display size down to them."""
    return max(2, int(width) // 2 * 2), max(2, int(height) // 2 * 2)


def _frames_at(clip: ClipInfo, fps: Fraction) -> int:
    """The clip's frame count after the fps filter converts it to the film's rate."""
    return clip.frames if clip.fps == fps else round(clip.frames / clip.fps * fps)


def _check_cuts(cuts: list[Cut], frames: list[int], fps: Fraction, names: list[str]) -> None:
    """Refuse a transition no film can hold: under a frame, eating more than a whole clip, or a
    crossfade into a clip that continues the one before it."""
    problem = cut_problem(frames, [c.duration if c.overlaps else None for c in cuts], fps,
                          [False, *(c.continues for c in cuts)])
    if problem is None:
        return
    if problem.continued:
        cut = cuts[problem.clip - 1]
        raise StitchError(f"the {cut.type} into {names[problem.clip]} cannot be: it continues "
                          f"{names[problem.clip - 1]} (it starts on that clip's last frame), so the cut into "
                          "it must be a hard cut that drops its first frame",
                          "use `cut` into a continued shot (`transition: cut`, or leave its transition out)")
    if problem.short:
        cut = cuts[problem.clip - 1]
        raise StitchError(f"the {cut.type} into {names[problem.clip]} lasts {cut.duration:g} s, under one "
                          f"frame at {float(fps):g} fps", "use a longer --duration, or `cut`")
    n = frames[problem.clip]
    continued = problem.clip > 0 and cuts[problem.clip - 1].continues
    if continued and n <= 1:
        raise StitchError(f"{names[problem.clip]} has {counted(n, 'frame')}: it continues "
                          f"{names[problem.clip - 1]}, whose last frame is its first, so the film would show "
                          "nothing of it", "give a continued shot more frames")
    kept = kept_frames(n, continued)
    raise StitchError(
        f"transitions of {problem.seconds:g} s are longer than clip {names[problem.clip]} "
        f"({float(kept / fps):g} s, {n} frames" + (f", {kept} after its first, which repeats "
                                                    f"{names[problem.clip - 1]}'s last" if continued else "") + ")",
        "use a shorter --duration, or a `cut` next to that shot")


def _offsets(cuts: list[Cut], frames: list[int], fps: Fraction) -> tuple[list[float | None], int]:
    """Offsets of each xfade on the film-so-far, and the film's frame count.

    Offsets come from the nominal film length (sum of clip frames minus sum of overlaps) rather
    than from the previous join's rounded result, so xfade's snapping of a start to the next
    frame never accumulates: the film lands within one frame of sum(d) - sum(t).
    """
    nominal = Fraction(frames[0])  # film-so-far in frames, as the formula says
    actual = frames[0]  # what ffmpeg will have produced, frame-snapped
    offsets: list[float | None] = []
    for cut, n in zip(cuts, frames[1:], strict=True):
        if cut.overlaps:
            start = nominal - Fraction(str(cut.duration)) * fps
            offsets.append(round(float(start / fps), 6))
            nominal, actual = start + n, math.ceil(start) + n
        else:
            offsets.append(None)
            nominal, actual = nominal + n, actual + n
    return offsets, actual


def _normalised(stream, clip: ClipInfo, fps: Fraction, width: int, height: int):
    """Frame rate first (it also sets the time base), display aspect, fit, pad, then one time base."""
    if _sar(clip) != 1:
        stream = stream.filter("scale", "trunc(iw*sar/2)*2", "ih")
    return (stream.filter("fps", fps=str(fps))
            .filter("scale", width, height, force_original_aspect_ratio="decrease")
            .filter("pad", width, height, "(ow-iw)/2", "(oh-ih)/2")
            .filter("setsar", "1")
            .filter("format", "yuv420p")
            .filter("settb", "AVTB"))


def trimmed(stream, fps: Fraction, start: int, end: int | None = None):
    """Frames ``start`` to ``end`` (exclusive, by number) of a normalised stream, restarted at 0.

    After ``setpts`` the stream is put through ``fps`` (the film's rate) and ``settb=AVTB`` again.
    ffmpeg 7.0's ``setpts`` sets its output link's frame rate to 1/0 ("unknown"; later versions keep
    it unless ``strip_fps``), and ``xfade`` refuses such an input ("The inputs needs to be a constant
    frame rate; current rate of 1/0 is invalid"), also through a ``concat`` it reaches (concat's frame
    rate is 1/0 once its segments' differ). ``fps`` gives the link its rate back without touching a
    frame: the timestamps here are whole frames from 0 (exactly, or within the microsecond AVTB rounds
    to at rates such as 24000/1001), so each frame lands on its own tick of 1/fps, none is dropped or
    repeated, and the trim's end is the last frame's end. ``settb=AVTB`` then returns the frames to the time base every input of the graph is
    on: xfade converts its offset and duration to its first input's time base, and in 1/fps they would
    be rounded to whole frames (which frame a transition starts and ends on would change).
    """
    options = {"start_frame": start} if end is None else {"start_frame": start, "end_frame": end}
    return (stream.filter("trim", **options).filter("setpts", "PTS-STARTPTS")
            .filter("fps", fps=str(fps)).filter("settb", "AVTB"))


def _graph(clips, cuts, offsets, fps, width, height):
    # one input per distinct path: ffmpeg-python merges identical nodes, so a repeated clip
    # needs an explicit split or compile() fails
    inputs: dict[Path, object] = {}
    uses: dict[Path, int] = {}
    for clip in clips:
        uses[clip.path] = uses.get(clip.path, 0) + 1
    split_streams: dict[Path, list] = {}
    streams = []
    for clip in clips:
        if clip.path not in inputs:
            inputs[clip.path] = ffmpeg.input(str(clip.path.resolve())).video
            if uses[clip.path] > 1:
                node = inputs[clip.path].split()  # indexing a split node makes its outputs
                split_streams[clip.path] = [node.stream(i) for i in range(uses[clip.path])]
        source = split_streams[clip.path].pop(0) if clip.path in split_streams else inputs[clip.path]
        streams.append(_normalised(source, clip, fps, width, height))
    film = streams[0]
    for cut, offset, clip in zip(cuts, offsets, streams[1:], strict=True):
        if cut.continues:  # it starts on the last frame the film so far shows: drop that frame
            clip = trimmed(clip, fps, 1)
        if cut.overlaps:
            film = ffmpeg.filter([film, clip], "xfade", transition=cut.type,
                                 duration=f"{cut.duration:g}", offset=f"{offset:g}")
        else:
            film = ffmpeg.concat(film, clip, v=1, a=0)
    return film


def _encode_argv(video, plan: StitchPlan, container: str, crf: int, preset: str,
                 audio: Path | None, exe: str) -> list[str]:
    streams = [video]
    options = {"vcodec": "libx264", "crf": crf, "preset": preset, "pix_fmt": "yuv420p",
               "format": container, "t": f"{plan.seconds:.6f}"}
    if container in ("mp4", "mov"):
        options["movflags"] = "+faststart"
    if audio is not None:
        streams.append(_music(audio, plan.seconds))
        options.update(acodec="aac", audio_bitrate="192k")
    out = ffmpeg.output(*streams, str(plan.part), **options).overwrite_output()
    return out.global_args("-hide_banner", "-nostdin").compile(cmd=exe)


def _music(audio: Path, seconds: float):
    """The track trimmed to the film, padded with silence if short, faded out over its last 1.5 s."""
    fade = min(MUSIC_FADE_OUT, seconds)
    return (ffmpeg.input(str(Path(audio).resolve())).audio
            .filter("atrim", start=0, end=f"{seconds:.6f}")
            .filter("asetpts", "PTS-STARTPTS")
            .filter("apad", whole_dur=f"{seconds:.6f}")
            .filter("afade", t="out", st=f"{seconds - fade:.6f}", d=f"{fade:g}"))


def _copy_mismatch(clips: list[ClipInfo]) -> str | None:
    """Why these clips cannot be stream-copied together, or None when they can."""
    labels = ("codec", "profile", "width", "height", "pixel format", "fps", "time base", "SAR")
    first = clips[0]
    for clip in clips[1:]:
        for label, a, b in zip(labels, first.copy_key, clip.copy_key, strict=True):
            if a != b:
                return f"{clip.path.name} differs from {first.path.name} in {label} ({b} vs {a})"
    return None


def concat_list_text(clips: list[ClipInfo]) -> str:
    """The concat demuxer's list: absolute paths (relative ones resolve against the list file's
    folder), each ``'`` written as ``'\\''``, and a ``duration`` per file so every join steps
    exactly one frame instead of the edit-list-trimmed container duration."""
    lines = []
    for clip in clips:
        quoted = str(clip.path.resolve()).replace("'", "'\\''")
        lines += [f"file '{quoted}'", f"duration {float(clip.frames / clip.fps):.6f}"]
    return "ffconcat version 1.0\n" + "\n".join(lines) + "\n"


def _plan_concat_copy(clips, cuts, output, container, audio, exe) -> StitchPlan:
    frames = sum(c.frames for c in clips)
    plan = StitchPlan("concat-copy", clips, cuts, output, clips[0].fps, clips[0].width, clips[0].height,
                      frames, [None] * len(cuts), argv=[], concat_list=concat_list_text(clips))
    # -safe 0: absolute paths and names with spaces, quotes or non-ASCII are refused otherwise;
    # -xerror: a bad list entry otherwise exits 0 with a truncated film
    argv = [exe, "-hide_banner", "-nostdin", "-y", "-xerror", "-f", "concat", "-safe", "0",
            "-i", "{list}"]
    if audio is not None:
        argv += ["-i", str(Path(audio).resolve()), "-filter_complex", _music_filter(plan.seconds),
                 "-map", "0:v:0", "-map", "[music]", "-c:v", "copy", "-c:a", "aac", "-b:a", "192k"]
    else:
        argv += ["-map", "0:v:0", "-c", "copy"]
    if container in ("mp4", "mov"):
        argv += ["-movflags", "+faststart"]
    plan.argv = [*argv, "-t", f"{plan.seconds:.6f}", "-f", container, str(plan.part)]
    return plan


def _music_filter(seconds: float) -> str:
    fade = min(MUSIC_FADE_OUT, seconds)
    return (f"[1:a]atrim=start=0:end={seconds:.6f},asetpts=PTS-STARTPTS,apad=whole_dur={seconds:.6f},"
            f"afade=t=out:st={seconds - fade:.6f}:d={fade:g}[music]")


# --- running ------------------------------------------------------------------------------------

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
        raise write_failure(exc, plan.output) from exc
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


def write_failure(exc: OSError, output: Path) -> StitchError:
    """A disk, permission or path problem while writing a film, as a message with a fix."""
    what, hint = _WRITE_HINTS.get(exc.errno, (exc.strerror or str(exc),
                                              "check the -o path and that its folder is writable"))
    where = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(output) else ""
    return StitchError(f"cannot write the film {output}: {what}{where}", hint)


# --- the whole job ------------------------------------------------------------------------------

def check_transitions(cuts: list[Cut], exe: str) -> None:
    """Ask this ffmpeg which transitions it has: versions differ, and its own error is cryptic."""
    known = media.xfade_transitions(exe)
    for cut in cuts:
        if cut.overlaps and cut.type not in known:
            raise StitchError(f"unknown transition {cut.type!r} (this ffmpeg's xfade does not have it)",
                              f"use `cut` or one of: {', '.join(sorted(known))}")


def stitch(clips: list[Path], output: Path, mode: str = "xfade", cuts: list[Cut] | None = None,
           crf: int = 19, preset: str = "fast", audio: Path | None = None, contact_sheet: bool = True,
           names: list[str] | None = None, on_progress: OnProgress | None = None) -> StitchResult:
    """Probe the clips (naming any missing or corrupt one before ffmpeg starts), plan, run."""
    if audio is not None and not Path(audio).is_file():
        raise StitchError(f"music file not found: {audio}",
                          "--audio takes a music file (mp3, m4a, wav, ...) to lay under the film; check its path",
                          exit_code=EXIT_BAD_INPUT)
    check_not_an_input(Path(output), [*clips, *([audio] if audio is not None else [])])
    infos = [media.probe(path) for path in clips]
    exe = media.ffmpeg_exe()
    if mode == "xfade" and cuts:
        check_transitions(cuts, exe)
    plan = plan_stitch(infos, output, mode, cuts, crf, preset, audio, exe, names)
    result = run_stitch(plan, on_progress)
    if contact_sheet:
        result.contact_sheet = _contact_sheet(names or [p.stem for p in clips], infos, Path(output))
    return result


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


def _contact_sheet(labels: list[str], infos: list[ClipInfo], output: Path) -> Path:
    from wanclip.stitch.contact_sheet import SHEET_NAME, write_contact_sheet

    try:
        return write_contact_sheet(list(zip(labels, infos, strict=True)), output.parent)
    except OSError as exc:
        raise write_failure(exc, output.parent / SHEET_NAME) from exc


@dataclass
class FilmClips:
    """The clips of a rendered film, in order, with the cut into each one after the first."""

    names: list[str]
    paths: list[Path]
    cuts: list[Cut]
    skipped: list[str]
    notes: list[str] = field(default_factory=list)


def film_clips(film_dir: Path, skip_missing: bool = False, transition: str | None = None,
               duration: float | None = None) -> FilmClips:
    """Read the ledger: shots with status ``done``, their clips and the cut into each.

    A shot that ``continues`` the shot before it gets a hard cut that drops its first frame; a
    ledger with any other transition into it is refused. ``transition`` (``--transition``)
    overrides every other cut: those into continued shots stay hard cuts, with a note.
    """
    from wanclip.ledger import load_ledger

    ledger = load_ledger(film_dir)
    done = [s for s in ledger.shots if s.status == "done" and s.clip]
    skipped = [s.name for s in ledger.shots if s not in done]
    if skipped and not skip_missing:
        raise StitchError(f"shots not rendered yet in {ledger.folder}: {', '.join(skipped)}",
                          "finish them with `wanclip render`, or pass --skip-missing to stitch without them")
    if not done:
        raise StitchError(f"no rendered shots in {ledger.folder}", "render the film first with `wanclip render`")
    for record in done:
        _check_clip_unchanged(ledger, record)
    cuts, kept, notes = [], [], []
    for before, record in zip(done, done[1:], strict=False):
        if not record.continues:
            cuts.append(_ledger_cut(record.transition, transition, duration))
        elif record.continues != before.name:  # its predecessor is left out: no frame repeats
            cuts.append(_ledger_cut(record.transition, transition, duration))
            notes.append(f"shot {record.name} continues {record.continues}, which is left out: its first "
                         "frame stays")
        else:
            cuts.append(_chain_cut(ledger, record))
            if transition is not None and transition != HARD_CUT:
                kept.append(record.name)
    if kept:
        notes.append(f"kept the hard cuts into continued shots ({', '.join(kept)}): --transition {transition} "
                     "joins the other shots")
    return FilmClips([s.name for s in done], [ledger.clip_path(s) for s in done], cuts, skipped, notes)


def _chain_cut(ledger, record) -> Cut:
    """The cut into a shot that starts on its predecessor's last frame: hard, dropping that frame."""
    kind = (record.transition or {}).get("type") or HARD_CUT
    if kind != HARD_CUT:
        shots = ledger.film.get("shots_file") or "SHOTS.yaml"
        raise StitchError(f"shot {record.name} continues {record.continues}, but the ledger "
                          f"{ledger.path} records a {kind} into it: a continued shot starts on its "
                          "predecessor's last frame, so the cut into it must be a hard cut",
                          f"set `transition: cut` on shot {record.name} (or leave its transition out) and "
                          f"run `wanclip render {shlex.quote(shots)}` again")
    return Cut(HARD_CUT, 0.0, continues=True)


def _check_clip_unchanged(ledger, record) -> None:
    """The clip on disk is the one the render recorded (a missing one is named by the probe)."""
    path = ledger.clip_path(record)
    if not record.clip_sha256 or not path.is_file():
        return
    try:
        same = sha256_file(path) == record.clip_sha256
    except OSError as exc:
        raise StitchError(f"cannot read the clip of shot {record.name} ({path}): {exc.strerror}",
                          "check the film folder's permissions") from exc
    if not same:
        shots = ledger.film.get("shots_file") or "SHOTS.yaml"
        raise StitchError(f"the clip of shot {record.name} ({path}) is not the one rendered: its sha256 "
                          "differs from the ledger's",
                          f"re-render it with `wanclip render {shlex.quote(shots)} --only "
                          f"{shlex.quote(record.name)}`")


def _ledger_cut(recorded: dict | None, transition: str | None, duration: float | None) -> Cut:
    """The shot's own transition; --transition / --duration override every cut of the film."""
    recorded = recorded or {}
    kind = transition or recorded.get("type") or DEFAULT_TRANSITION
    seconds = duration if duration is not None else recorded.get("duration", DEFAULT_DURATION)
    return Cut(kind, 0.0 if kind == HARD_CUT else float(seconds))


def stitch_film(film_dir: Path, output: Path | None = None, mode: str = "xfade", contact_sheet: bool = True,
                audio: Path | None = None, crf: int = 19, preset: str = "fast", skip_missing: bool = False,
                transition: str | None = None, duration: float | None = None,
                on_progress: OnProgress | None = None, pieces: bool = True, made=None) -> StitchResult:
    """Stitch a rendered film folder into ``<film_dir>/film.mp4`` (what `wanclip render` calls last).

    Each clip must still hash to the ledger's ``clip_sha256``. The caller holds the folder's
    ``film_lock`` (render does; `wanclip stitch --from` takes it as ``stitch``).

    **Pieces or one graph.** An ``xfade`` film without music is joined from its pieces
    (``wanclip.stitch.pieces``, in ``<film_dir>/pieces/``): a body per shot and a piece per transition,
    each named by the clips and settings it is made from. Those a render (or an earlier stitch)
    made are reused, the rest are encoded now, and the film is their stream copy: the same
    frames and frame count as the one graph, and re-stitching after one shot was re-rendered
    encodes only that shot's body and its two transitions. The one graph (``pieces=False``,
    `--no-pieces`) stays: for comparison, for ``--mode concat`` and ``--audio`` (music is laid
    under the whole film in one pass), and as the fallback when the clips differ in size or
    frame rate (the one graph's ``fps`` filter converts and rounds those; cut into pieces their
    frame counts could come out a frame apart), which ``FilmPieces.finish`` takes by itself.
    ``made``: the ``FilmPieces`` a render fed while it rendered, joined instead of new ones. Pieces
    that cannot be joined fall back to the one graph, with a note.
    """
    film = film_clips(Path(film_dir), skip_missing, transition, duration)
    output = Path(output) if output else Path(film_dir) / FILM_NAME
    if made is not None and (made.cuts != film.cuts or made.names != film.names):
        made = None  # fed other cuts than the ledger now says: its pieces on disk are reused by name
    result, fallback = None, None
    if pieces and mode == "xfade" and audio is None:
        try:
            result = made.finish(on_progress) if made is not None else \
                _stitch_pieces(Path(film_dir), film, output, crf, preset, contact_sheet, on_progress)
        except StitchError as exc:  # the film must come out: the one graph needs no stream copy
            fallback = f"joining from pieces failed ({exc.message.splitlines()[0]}); stitched in one graph"
    if result is None:
        result = stitch(film.paths, output, mode, film.cuts, crf, preset, audio, contact_sheet, film.names,
                        on_progress)
        if fallback:
            result.notes.append(fallback)
    result.notes.extend(film.notes)
    if film.skipped:
        result.notes.append(f"left out shots not rendered: {', '.join(film.skipped)}")
    return result


def _stitch_pieces(film_dir: Path, film: FilmClips, output: Path, crf: int, preset: str, contact_sheet: bool,
                   on_progress: OnProgress | None) -> StitchResult:
    from wanclip.stitch.pieces import Encoder, FilmPieces

    check_not_an_input(output, film.paths)
    infos = [media.probe(path) for path in film.paths]  # names a missing or corrupt clip first
    with FilmPieces(film_dir, film.cuts, Encoder(crf, preset), names=film.names, output=output,
                    contact_sheet=contact_sheet) as pieces:
        for position, (path, info) in enumerate(zip(film.paths, infos, strict=True)):
            pieces.clip_known(position, path, info)
        return pieces.finish(on_progress)
