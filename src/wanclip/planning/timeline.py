"""A film's timeline: the transition names, the rule a cut must obey, and the film-length formula.

One module for what ``wanclip plan`` (before any GPU work) and the stitch (after it) must agree
on, so a film the plan accepts is a film the stitch can join. Pure: no YAML, no ffmpeg call.

**Chains.** A continued shot (``continue: true``; the ledger's ``continues``) starts on its
predecessor's last frame, so its clip's first frame is that frame again. The cut into it is a
hard cut that drops that first frame: the motion runs on without a repeated frame, and the clip
keeps ``frames - 1`` frames (``kept_frames``). The film's length is then

    Σ kept frames / fps − Σ crossfade overlaps

(a hard cut overlaps 0 s), which ``film_seconds`` computes. A film holds whole frames: ffmpeg's
xfade starts each crossfade on the first frame at or after its offset, so a 0.3 s fade at 16 fps
(4.8 frames) blends whole frames, and the written film is ``film_frame_count`` frames, at most one
frame longer than the formula (the stitch takes each offset from the formula, so this rounding
never adds up). That count is the length `wanclip plan` prints and the stitch writes.
The lists below are per clip, in film order: ``frames[i]`` and ``continues[i]`` (clip i continues
clip i − 1; ``continues[0]`` is ignored, the first clip has nothing to continue) and, between
them, ``overlaps[k]`` joining clip k and k + 1 (seconds, or None for a hard cut).
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from fractions import Fraction

CUT = "cut"
# ffmpeg's xfade transitions (``ffmpeg -h filter=xfade``; 6.x, 7.x and 9.0 have these 58; `custom`
# needs an expression wanclip does not pass). An older ffmpeg may lack a few: the stitch asks the
# ffmpeg it runs and names any it does not have before encoding.
XFADE_TRANSITIONS = (
    "fade", "wipeleft", "wiperight", "wipeup", "wipedown", "slideleft", "slideright", "slideup",
    "slidedown", "circlecrop", "rectcrop", "distance", "fadeblack", "fadewhite", "radial", "smoothleft",
    "smoothright", "smoothup", "smoothdown", "circleopen", "circleclose", "vertopen", "vertclose",
    "horzopen", "horzclose", "dissolve", "pixelize", "diagtl", "diagtr", "diagbl", "diagbr", "hlslice",
    "hrslice", "vuslice", "vdslice", "hblur", "fadegrays", "wipetl", "wipetr", "wipebl", "wipebr",
    "squeezeh", "squeezev", "zoomin", "fadefast", "fadeslow", "hlwind", "hrwind", "vuwind", "vdwind",
    "coverleft", "coverright", "coverup", "coverdown", "revealleft", "revealright", "revealup", "revealdown",
)
TRANSITIONS = frozenset((*XFADE_TRANSITIONS, CUT))


def transition_name_problem(name: str) -> str | None:
    """Why ``name`` is no transition (with the nearest names), or None when it is one."""
    if name in TRANSITIONS:
        return None
    close = difflib.get_close_matches(name, sorted(TRANSITIONS), n=3, cutoff=0.6)
    guess = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
    return (f"unknown transition {name!r}{guess}: write an ffmpeg xfade name (fade, dissolve, wipeleft, "
            f"slideup, circleopen, ...) or {CUT!r}")


def kept_frames(frames: int, continues: bool) -> int:
    """The frames of a clip the film shows: a continued clip's first frame is its predecessor's last
    frame again, so the stitch drops it."""
    return frames - 1 if continues else frames


def film_frames(frames: list[int], continues: list[bool] | None = None) -> list[int]:
    """``kept_frames`` of every clip (``continues[0]`` ignored; None: no clip continues)."""
    flags = _continues(frames, continues)
    return [kept_frames(n, flag) for n, flag in zip(frames, flags, strict=True)]


def _continues(frames: list[int], continues: list[bool] | None) -> list[bool]:
    if continues is None:
        return [False] * len(frames)
    if len(continues) != len(frames):
        raise ValueError(f"{len(frames)} clips need {len(frames)} continues flags, got {len(continues)}")
    return [False, *(bool(c) for c in continues[1:])] if frames else []


@dataclass(frozen=True)
class CutProblem:
    """A transition no film can hold. ``clip`` is 0-based; ``seconds`` is the transition's length.

    ``continued``: ``clip`` continues the clip before it but the cut into it is a crossfade (it
    must be a hard cut: the clip starts on its predecessor's last frame); else ``short``: the cut
    into ``clip`` lasts under one frame; else the transitions into and out of ``clip``
    (``seconds`` together) eat all of its kept frames (a continued clip of one frame keeps none:
    then ``seconds`` may be 0)."""

    clip: int
    short: bool
    seconds: float
    continued: bool = False


def cut_problem(frames: list[int], overlaps: list[float | None], fps: float,
                continues: list[bool] | None = None) -> CutProblem | None:
    """The first impossible transition. ``overlaps[k]`` joins clip k and k+1: seconds, or None for
    a hard cut; ``continues[i]``: clip i continues clip i − 1 (None: none does). The one rule for
    `wanclip plan` (before any GPU work) and for the stitch itself."""
    flags = _continues(frames, continues)
    for k, overlap in enumerate(overlaps):
        if overlap is not None and k + 1 < len(flags) and flags[k + 1]:
            return CutProblem(k + 1, False, overlap, continued=True)
    for k, overlap in enumerate(overlaps):
        if overlap is not None and overlap * fps < 1:
            return CutProblem(k + 1, True, overlap)
    for i, count in enumerate(film_frames(frames, flags)):
        into = (overlaps[i - 1] or 0.0) if i > 0 else 0.0
        out_of = (overlaps[i] or 0.0) if i < len(overlaps) else 0.0
        if (into + out_of) * fps >= count:
            return CutProblem(i, False, into + out_of)
    return None


def film_seconds(frames: list[int], overlaps: list[float | None], fps: float,
                 continues: list[bool] | None = None) -> float:
    """The film's length after transitions: Σ kept frames / fps − Σ overlaps (a hard cut overlaps
    0 s; a continued clip keeps ``frames - 1``)."""
    return sum(film_frames(frames, continues)) / fps - sum(o or 0.0 for o in overlaps)


def film_frame_count(frames: list[int], overlaps: list[float | None], fps: float,
                     continues: list[bool] | None = None) -> int:
    """The frames of the film the stitch writes: ``film_seconds`` x ``fps`` rounded up to a whole frame.

    Each crossfade starts on the first whole frame at or after its offset, and the offset is taken
    from the formula's length of the film so far, never from the rounded one (as
    ``stitch.graph.xfade_offsets`` passes it to ffmpeg)."""
    kept = film_frames(frames, continues)
    if not kept:
        return 0
    rate = Fraction(str(fps))
    nominal, actual = Fraction(kept[0]), kept[0]
    for overlap, count in zip(overlaps, kept[1:], strict=True):
        if overlap is None:
            nominal, actual = nominal + count, actual + count
        else:
            start = nominal - Fraction(str(overlap)) * rate
            nominal, actual = start + count, math.ceil(start) + count
    return actual
