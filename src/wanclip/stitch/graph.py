"""The one graph: the ffmpeg command that joins clips into a film in one run. Pure.

``plan_stitch()`` is pure: from measured clips (``media.probe``) and the cuts between them it
builds the ffmpeg command and says what the film will measure.

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

The commands are built with ``filtergraph.FilterGraph`` (our own; ffmpeg-python until issue 18). Running
them is ``stitch.run``'s; choosing between the one graph and pieces is ``stitch.join``'s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from wanclip.errors import EXIT_BAD_INPUT, StitchError
from wanclip.media import ClipInfo
from wanclip.planning.timeline import cut_problem, kept_frames
from wanclip.stitch.filtergraph import FilterGraph, Output, Stream

MODES = ("xfade", "concat")
HARD_CUT = "cut"
DEFAULT_TRANSITION = "fade"
DEFAULT_DURATION = 0.3
MUSIC_FADE_OUT = 1.5
FILM_NAME = "film.mp4"
CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}


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
    container = container_for(output)
    cuts = list(cuts) if cuts is not None else [Cut()] * (len(clips) - 1)
    if len(cuts) != len(clips) - 1:
        raise StitchError(f"{counted(len(clips), 'clip')} need {counted(len(clips) - 1, 'cut')}, got {len(cuts)}")
    names = names or [c.path.name for c in clips]
    if mode == "concat":
        cuts = [Cut(HARD_CUT, 0.0, c.continues) for c in cuts]
        if _copy_mismatch(clips) is None and not any(c.continues for c in cuts):
            return plan_concat_copy(clips, cuts, output, container, audio, exe)
    fps = clips[0].fps
    width, height = _even(clips[0].width * _sar(clips[0]), clips[0].height)
    frames = [_frames_at(c, fps) for c in clips]
    _check_cuts(cuts, frames, fps, names)
    kept = [frames[0], *(kept_frames(n, c.continues) for n, c in zip(frames[1:], cuts, strict=True))]
    offsets, total = xfade_offsets(cuts, kept, fps)
    graph = FilterGraph()
    video = _film_graph(graph, clips, cuts, offsets, fps, width, height)
    plan = StitchPlan("xfade" if mode == "xfade" else "concat-filter", clips, cuts, output, fps,
                      width, height, total, offsets, argv=[])
    if mode == "concat":
        why = _copy_mismatch(clips) or ("a continued shot's first frame is dropped (a stream copy cannot "
                                        "drop one frame)")
        plan.notes.append(f"re-encoded through the concat filter: {why}")
    plan.argv = _encode_argv(graph, video, plan, container, crf, preset, audio, exe)
    return plan


def container_for(output: Path) -> str:
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
    crossfade into a clip that continues the one before it. Bad input (exit 2): nothing ran."""
    problem = cut_problem(frames, [c.duration if c.overlaps else None for c in cuts], fps,
                          [False, *(c.continues for c in cuts)])
    if problem is None:
        return
    if problem.continued:
        cut = cuts[problem.clip - 1]
        raise StitchError(f"the {cut.type} into {names[problem.clip]} cannot be: it continues "
                          f"{names[problem.clip - 1]} (it starts on that clip's last frame), so the cut into "
                          "it must be a hard cut that drops its first frame",
                          "use `cut` into a continued shot (`transition: cut`, or leave its transition out)",
                          exit_code=EXIT_BAD_INPUT)
    if problem.short:
        cut = cuts[problem.clip - 1]
        raise StitchError(f"the {cut.type} into {names[problem.clip]} lasts {cut.duration:g} s, under one "
                          f"frame at {float(fps):g} fps", "use a longer --duration, or `cut`", exit_code=EXIT_BAD_INPUT)
    n = frames[problem.clip]
    continued = problem.clip > 0 and cuts[problem.clip - 1].continues
    if continued and n <= 1:
        raise StitchError(f"{names[problem.clip]} has {counted(n, 'frame')}: it continues "
                          f"{names[problem.clip - 1]}, whose last frame is its first, so the film would show "
                          "nothing of it", "give a continued shot more frames", exit_code=EXIT_BAD_INPUT)
    kept = kept_frames(n, continued)
    raise StitchError(
        f"transitions of {problem.seconds:g} s are longer than clip {names[problem.clip]} "
        f"({float(kept / fps):g} s, {n} frames" + (f", {kept} after its first, which repeats "
                                                    f"{names[problem.clip - 1]}'s last" if continued else "") + ")",
        "use a shorter --duration, or a `cut` next to that shot", exit_code=EXIT_BAD_INPUT)


def xfade_offsets(cuts: list[Cut], frames: list[int], fps: Fraction) -> tuple[list[float | None], int]:
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




def normalised(graph: FilterGraph, stream: Stream, clip: ClipInfo, fps: Fraction, width: int,
               height: int) -> Stream:
    """Frame rate first (it also sets the time base), display aspect, fit, pad, then one time base."""
    if _sar(clip) != 1:
        stream = graph.filter(stream, "scale", "trunc(iw*sar/2)*2", "ih")
    stream = graph.filter(stream, "fps", fps=str(fps))
    stream = graph.filter(stream, "scale", width, height, force_original_aspect_ratio="decrease")
    stream = graph.filter(stream, "pad", width, height, "(ow-iw)/2", "(oh-ih)/2")
    stream = graph.filter(stream, "setsar", "1")
    stream = graph.filter(stream, "format", "yuv420p")
    return graph.filter(stream, "settb", "AVTB")


def trimmed(graph: FilterGraph, stream: Stream, fps: Fraction, start: int, end: int | None = None) -> Stream:
    """Frames ``start`` to ``end`` (exclusive, by number) of a normalised stream, restarted at 0.

    After ``setpts`` the stream is put through ``fps`` (the film's rate) and ``settb=AVTB`` again.
    ffmpeg 7.0's ``setpts`` sets its output link's frame rate to 1/0 ("unknown"; later versions keep
    it unless ``strip_fps``), and ``xfade`` refuses such an input ("The inputs needs to be a constant
    frame rate; current rate of 1/0 is invalid"), also through a ``concat`` it reaches (concat's frame
    rate is 1/0 once its segments' differ). ``fps`` gives the link its rate back without touching a
    frame: the timestamps here are whole frames from 0 (exactly, or within the microsecond AVTB rounds
    to at rates such as 24000/1001), so each frame lands on its own tick of 1/fps, none is dropped or
    repeated, and the trim's end is the last frame's end. ``settb=AVTB`` then returns the frames to the
    time base every input of the graph is on: xfade converts its offset and duration to its first
    input's time base, and in 1/fps they would be rounded to whole frames (which frame a transition
    starts and ends on would change).
    """
    frames = {"start_frame": start} if end is None else {"start_frame": start, "end_frame": end}
    stream = graph.filter(stream, "trim", **frames)
    stream = graph.filter(stream, "setpts", "PTS-STARTPTS")
    stream = graph.filter(stream, "fps", fps=str(fps))
    return graph.filter(stream, "settb", "AVTB")


def _film_graph(graph: FilterGraph, clips: list[ClipInfo], cuts: list[Cut], offsets: list[float | None],
                fps: Fraction, width: int, height: int) -> Stream:
    """Each clip normalised, joined to the film so far as it comes (one input per distinct file, split
    when the film uses it more than once)."""
    uses: dict[Path, int] = {}
    for clip in clips:
        uses[clip.path] = uses.get(clip.path, 0) + 1
    sources: dict[Path, list[Stream]] = {}
    film: Stream | None = None
    for clip, cut, offset in zip(clips, [None, *cuts], [None, *offsets], strict=True):
        if clip.path not in sources:
            index = graph.input(str(clip.path.resolve()))
            video = Stream(f"{index}:v")
            sources[clip.path] = graph.split(video, uses[clip.path]) if uses[clip.path] > 1 else [video]
        stream = normalised(graph, sources[clip.path].pop(0), clip, fps, width, height)
        if film is None:
            film = stream
            continue
        if cut.continues:  # it starts on the last frame the film so far shows: drop that frame
            stream = trimmed(graph, stream, fps, 1)
        if cut.overlaps:
            film = graph.filter([film, stream], "xfade", transition=cut.type, duration=f"{cut.duration:g}",
                                offset=f"{offset:g}")
        else:
            film = graph.filter([film, stream], "concat", n=2, v=1, a=0)
    return film


def _encode_argv(graph: FilterGraph, video: Stream, plan: StitchPlan, container: str, crf: int, preset: str,
                 audio: Path | None, exe: str) -> list[str]:
    streams = [video]
    if audio is not None:
        streams.append(_music(graph, audio, plan.seconds))
    # -f first, then -b:a, then the rest by name: the order ffmpeg-python wrote (the golden files hold it)
    options = ["-f", container, *(["-b:a", "192k", "-acodec", "aac"] if audio is not None else []),
               "-crf", str(crf), *(["-movflags", "+faststart"] if container in ("mp4", "mov") else []),
               "-pix_fmt", "yuv420p", "-preset", preset, "-t", f"{plan.seconds:.6f}", "-vcodec", "libx264"]
    return graph.argv(exe, [Output(streams, options, str(plan.part))])


def _music(graph: FilterGraph, audio: Path, seconds: float) -> Stream:
    """The track trimmed to the film, padded with silence if short, faded out over its last 1.5 s."""
    fade = min(MUSIC_FADE_OUT, seconds)
    track = Stream(f"{graph.input(str(Path(audio).resolve()))}:a")
    track = graph.filter(track, "atrim", start=0, end=f"{seconds:.6f}")
    track = graph.filter(track, "asetpts", "PTS-STARTPTS")
    track = graph.filter(track, "apad", whole_dur=f"{seconds:.6f}")
    return graph.filter(track, "afade", t="out", st=f"{seconds - fade:.6f}", d=f"{fade:g}")

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


def plan_concat_copy(clips: list[ClipInfo], cuts: list[Cut], output: Path, container: str, audio: Path | None,
                     exe: str) -> StitchPlan:
    """Hard cuts between clips that share every stream parameter: the concat demuxer, a stream copy."""
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


