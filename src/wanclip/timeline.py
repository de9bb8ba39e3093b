"""A film's timeline: the transition names, the rule a cut must obey, and the film-length formula.

One module for what ``wanclip plan`` (before any GPU work) and the stitch (after it) must agree
on, so a film the plan accepts is a film the stitch can join. Pure: no YAML, no ffmpeg call.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

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


@dataclass(frozen=True)
class CutProblem:
    """A transition no film can hold. ``clip`` is 0-based; ``short``: the cut into ``clip`` lasts
    under one frame; else the transitions into and out of ``clip`` (``seconds`` together) eat it."""

    clip: int
    short: bool
    seconds: float


def cut_problem(frames: list[int], overlaps: list[float | None], fps: float) -> CutProblem | None:
    """The first impossible transition. ``overlaps[k]`` joins clip k and k+1: seconds, or None for
    a hard cut. The one rule for `wanclip plan` (before any GPU work) and for the stitch itself."""
    for k, overlap in enumerate(overlaps):
        if overlap is not None and overlap * fps < 1:
            return CutProblem(k + 1, True, overlap)
    for i, count in enumerate(frames):
        into = (overlaps[i - 1] or 0.0) if i > 0 else 0.0
        out_of = (overlaps[i] or 0.0) if i < len(overlaps) else 0.0
        if (into + out_of) * fps >= count:
            return CutProblem(i, False, into + out_of)
    return None


def film_seconds(frames: list[int], overlaps: list[float | None], fps: float) -> float:
    """The film's length after transitions: Σ clip lengths − Σ overlaps (a hard cut overlaps 0 s)."""
    return sum(frames) / fps - sum(o or 0.0 for o in overlaps)
