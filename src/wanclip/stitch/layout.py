"""The film cut into pieces, and the ffmpeg command of each piece. Pure.

A shot's **body** (its frames outside any transition) depends on its clip alone, a **transition**
(the frames where two clips blend) on two clips: ``stitch.pieces`` encodes each as soon as its
clips exist and joins them by a stream copy. This module says which pieces a film has and what
each one's command is.

**The same film.** A piece holds exactly the frames the one graph would put at those places:

* every input goes through the very same normalisation as the one graph (``graph.normalised``:
  fps, display aspect, scale and pad to the first clip's size, ``setsar=1``, ``yuv420p``,
  ``settb=AVTB``) and is trimmed *after* it, by frame number (``graph.trimmed``: restarted at 0,
  then ``fps`` and ``settb=AVTB`` again, an identity on frames, because ffmpeg 7.0's ``setpts``
  leaves a frame rate xfade refuses);
* where each transition starts, how many frames it blends and which frames of the first clip it
  drops follow ``vf_xfade.c`` to the microsecond (``layout()``): the offset is the one the graph
  passes (``graph.xfade_offsets``, written with ``%g``), the start is the first frame of the film so
  far at or after it, the blend runs until the first clip runs out or ``pts - start > duration``;
* a transition piece runs the same ``xfade`` on the two trimmed clips with the offset moved by
  the trimmed-off time, so every blend weight (``1 - (pts - start) / duration``, a float) is
  computed from the same integers;
* every piece uses the same encoder settings (libx264, crf, preset, ``yuv420p``), so their SPS
  and PPS are identical and a stream copy of them is a valid H.264 stream; each piece starts on
  an IDR frame (it is its own encode) and has no B-frame that refers across its ends; every
  piece's DTS start the same 2 frames before its PTS (``uniform_delay``: x264 gives pieces of 1 or
  2 frames none, and a join into a piece with B-frames then went back in DTS); the concat list
  gives each piece a ``duration`` of frames / fps so every join steps one frame.

The frames are identical before encoding; after it they differ only by x264 coding the pieces'
first frames as keyframes (PSNR against the one graph's film is measured in the tests).

**Chains.** A clip that continues the one before it (``Cut.continues``) drops its first frame
(its predecessor's last one again): its pieces simply start one frame later, trimmed by frame
number like every other piece, exactly as the one graph trims it.

**When pieces are not used** (``Unsupported`` says why): clips that differ in frame rate or size
(the one graph's ``fps`` filter converts and rounds them; piece-wise the counts could differ by a
frame), a frame step that is not a whole number of microseconds (timestamps would be rounded),
a transition that starts before the previous one ends. ``join.stitch_film`` then runs the one graph.

**Names.** A piece's file name says what it depends on: ``body-<clip sha>-<from>-<to>-<key>.mp4``
and ``<transition>-<sha A>-<sha B>-<key>.mp4``, where ``key`` hashes everything else (frame
ranges, offset, duration, the film's size and rate, the encoder). Re-rendering one shot changes
its sha, so exactly its body and its two transitions are encoded again; every other piece on
disk is reused, by ``wanclip stitch --from`` too. Pieces are written to ``.part`` and renamed
once they measure right, so a name on disk is always a whole piece.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from fractions import Fraction

from wanclip.media import ClipInfo
from wanclip.stitch.filtergraph import FilterGraph, Output, Stream
from wanclip.stitch.graph import Cut, normalised, trimmed, xfade_offsets

MICROSECONDS = 1_000_000


@dataclass(frozen=True)
class Encoder:
    """The x264 settings every piece (and the one graph) is encoded with."""

    crf: int = 19
    preset: str = "fast"

    @property
    def key(self) -> dict:
        return {"codec": "libx264", "crf": self.crf, "preset": self.preset, "pix_fmt": "yuv420p"}


@dataclass(frozen=True)
class Body:
    """Frames ``start`` to ``end`` (exclusive) of clip ``clip``, outside any transition."""

    clip: int
    start: int
    end: int

    @property
    def frames(self) -> int:
        return self.end - self.start

    @property
    def clips(self) -> tuple[int, ...]:
        return (self.clip,)


@dataclass(frozen=True)
class Transition:
    """The ``frames`` frames where clip ``clip`` (from its frame ``start``) blends into the next one.

    ``offset_us`` is xfade's offset on the trimmed first clip (0 or a fraction of a frame before
    its first frame); ``duration`` is the transition's length as the one graph writes it.
    """

    clip: int
    start: int
    frames: int
    type: str
    duration: str
    offset_us: int

    @property
    def clips(self) -> tuple[int, ...]:
        return (self.clip, self.clip + 1)


Piece = Body | Transition


@dataclass(frozen=True)
class Layout:
    pieces: list[Piece]
    frames: int  # the film's frame count: what the one graph writes


class Unsupported(Exception):
    """These clips are joined by the one graph, not by pieces; the message says why."""


def _us(seconds: str) -> int:
    """An ffmpeg duration option (as the one graph writes it) in whole microseconds, as
    ``av_parse_time`` reads it."""
    return int(Fraction(seconds) * MICROSECONDS)


def frame_step_us(fps: Fraction) -> int:
    step = Fraction(MICROSECONDS) / fps
    if step.denominator != 1:
        raise Unsupported(f"a frame at {float(fps):g} fps is not a whole number of microseconds")
    return int(step)


def layout(frames: list[int], cuts: list[Cut], fps: Fraction) -> Layout:
    """Cut the one graph's film into pieces, in film order. Pure.

    ``frames[i]`` is clip i's frame count (at the film's rate), ``cuts[k]`` joins clip k and k+1.
    ``frames`` may be a prefix of the film (clips still to come): then the layout holds what those
    clips alone decide (each body up to where its transition out starts, the transitions between
    them) and its ``frames`` counts the film so far.

    Mirrors ``xfade_activate``: with film-so-far frame f at ``f * step`` (every input is on
    AV_TIME_BASE and one frame apart), the start is ``offset``; frames with ``pts < start`` pass;
    then each frame of the film so far is paired with the next frame of the next clip until the
    film so far runs out or a paired frame has ``pts - start > duration`` (that one is still
    blended); the film so far's remaining frames are dropped and the next clip's follow.

    A clip that continues the one before it (``cuts[k].continues``) keeps its frames from 1 on.
    """
    known = len(frames)
    if not 0 < known <= len(cuts) + 1:
        raise ValueError("one cut between every two clips")
    if any(c.continues and c.overlaps for c in cuts):
        raise Unsupported("a crossfade into a continued shot (the one graph refuses it, naming it)")
    # a continued clip's first frame is dropped: lay out the frames kept, then number them in the clip
    skip = [0, *(1 if c.continues else 0 for c in cuts[:known - 1])]
    placed = _layout_kept([n - s for n, s in zip(frames, skip, strict=True)], cuts, fps)
    pieces: list[Piece] = []
    for piece in placed.pieces:
        if isinstance(piece, Body):
            pieces.append(Body(piece.clip, piece.start + skip[piece.clip], piece.end + skip[piece.clip]))
        else:  # the clip after a transition never continues (a hard cut goes into those)
            pieces.append(Transition(piece.clip, piece.start + skip[piece.clip], piece.frames, piece.type,
                                     piece.duration, piece.offset_us))
    return Layout(pieces, placed.frames)


def _layout_kept(frames: list[int], cuts: list[Cut], fps: Fraction) -> Layout:
    """``layout()`` of clips that keep all their frames (``frames``: the frames each one keeps)."""
    known = len(frames)
    step = frame_step_us(fps)
    # offset k depends on clips 0..k only: pad the clips not here yet, never read their offsets
    offsets, _ = xfade_offsets(cuts, [*frames, *[1 << 30] * (len(cuts) + 1 - known)], fps)
    film = frames[0]  # frames of the film so far
    first = [0] * known  # film index of each clip's frame 0
    lead = [0] * known  # frames of each clip blended by the transition into it
    pieces: list[Piece] = []
    for k in range(known):
        if k == len(cuts):  # the last clip: its body runs to its end
            pieces.append(Body(k, lead[k], frames[k]))
            break
        cut, offset = cuts[k], offsets[k]
        if offset is None:  # a hard cut: the concat filter appends the next clip
            pieces.append(Body(k, lead[k], frames[k]))
            if k + 1 < known:
                first[k + 1], film = film, film + frames[k + 1]
            continue
        start_us, duration_us = _us(f"{offset:g}"), _us(f"{cut.duration:g}")
        at = math.ceil(Fraction(start_us, step))  # the first film frame with pts >= start
        blended = 0
        for f in range(at, film):
            blended += 1
            if f * step - start_us > duration_us:
                break
        local = at - first[k]
        if local < lead[k] or blended == 0:
            raise Unsupported(f"the transition out of clip {k + 1} starts before the one into it ends")
        pieces.append(Body(k, lead[k], local))
        if k + 1 == known:
            break
        if blended > frames[k + 1]:
            raise Unsupported(f"clip {k + 2} is shorter than the transition into it")
        pieces.append(Transition(k, local, blended, cut.type, f"{cut.duration:g}", start_us - at * step))
        first[k + 1], lead[k + 1], film = at, blended, at + frames[k + 1]
    return Layout([p for p in pieces if p.frames > 0], film)




def piece_name(piece: Piece, shas: list[str], film: dict, encoder: Encoder) -> str:
    """The file name: the clip(s) it is made from, and a hash of everything else it depends on."""
    what = {"piece": type(piece).__name__, **piece.__dict__, "film": film, "encoder": encoder.key,
            "version": 2}  # 2: every piece's DTS start REORDER_DELAY frames before its PTS
    what.pop("clip")
    key = hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:12]
    if isinstance(piece, Body):
        return f"body-{shas[piece.clip][:16]}-{piece.start}-{piece.end}-{key}.mp4"
    return f"{piece.type}-{shas[piece.clip][:16]}-{shas[piece.clip + 1][:16]}-{key}.mp4"


# --- ffmpeg commands ----------------------------------------------------------------------------

Thumbs = tuple[str, list[int], tuple[int, int]]  # (png path, frame indices, (w, h))


def piece_argv(piece: Piece, clips: list[ClipInfo], fps: Fraction, width: int, height: int, encoder: Encoder,
               part: str, exe: str, through_xfade: bool, thumbs: Thumbs | None = None) -> list[str]:
    """The command that encodes one piece into ``part`` (and, for a body, the clip's thumbnails:
    ``(png path, frame indices, (w, h))``, frames picked and scaled as ``media.grab_frames`` does).

    ``through_xfade``: the film has a transition. In the one graph every frame then passes an
    ``xfade``, and ffmpeg negotiates that filter's pixel format (9.x's xfade has no yuv420p, so
    each frame goes 4:2:0 -> 4:4:4 -> 4:2:0 once, which changes its chroma). A body then passes
    an ``xfade`` too, one that never starts, so the same conversion happens whatever this
    ffmpeg's xfade supports.
    """
    graph = FilterGraph()

    def source(i: int) -> Stream:
        return Stream(f"{graph.input(str(clips[i].path.resolve()))}:v")

    def clip_frames(i: int, stream: Stream, start: int, end: int) -> Stream:
        return trimmed(graph, normalised(graph, stream, clips[i], fps, width, height), fps, start, end)

    tap = None
    if isinstance(piece, Body):
        stream = source(piece.clip)
        if thumbs is not None:
            stream, tap = graph.split(stream)
        video = clip_frames(piece.clip, stream, piece.start, piece.end)
        if through_xfade:
            video = _passthrough_xfade(graph, video, piece.frames, fps)
    else:
        a = clip_frames(piece.clip, source(piece.clip), piece.start, piece.start + piece.frames)
        b = clip_frames(piece.clip + 1, source(piece.clip + 1), 0, piece.frames)
        video = graph.filter([a, b], "xfade", transition=piece.type, duration=piece.duration,
                             offset=f"{float(Fraction(piece.offset_us, MICROSECONDS)):.6f}")
    # -f first, then by name: the order ffmpeg-python wrote (the golden files hold it)
    outputs = [Output([video], ["-f", "mp4", "-an", "-bsf:v", uniform_delay(fps), "-crf", str(encoder.crf),
                                "-pix_fmt", "yuv420p", "-preset", encoder.preset, "-vcodec", "libx264"], part)]
    if tap is not None:
        outputs.append(_thumbs_output(graph, tap, thumbs))
    return graph.argv(exe, outputs)


def _thumbs_output(graph: FilterGraph, tap: Stream, thumbs: Thumbs) -> Output:
    """The clip's thumbnails side by side in one png: picked, scaled and converted as
    ``media.grab_frames`` does."""
    png, picks, (width, height) = thumbs
    unique = sorted(set(picks))
    tiles = graph.filter(tap, "select", "+".join(f"eq(n,{i})" for i in unique))  # commas escaped by the graph
    tiles = graph.filter(tiles, "scale", width, height)
    tiles = graph.filter(tiles, "format", "rgb24")
    tiles = graph.filter(tiles, "tile", f"{len(unique)}x1")
    return Output([tiles], ["-f", "image2", "-update", "1", "-vcodec", "png", "-vframes", "1"], png)


REORDER_DELAY = 2  # frames: x264's largest decode delay (B-frames with b-pyramid; 1 without, 0 with none)


def uniform_delay(fps: Fraction) -> str:
    """A ``setts`` bitstream filter giving every piece the same decode delay: its DTS start
    ``REORDER_DELAY`` frames before its first PTS, whatever x264 chose.

    x264's DTS trail its PTS by 2 frames once it codes a B-frame (presets from superfast on), but a
    piece of 1 or 2 frames has none and its DTS equal its PTS (so do crf-0 pieces, usually). The
    concat demuxer shifts each piece by its PTS, so a piece of delay 0 followed by one of delay 2
    gives the join a DTS that goes back ("Non-monotonic DTS; previous: 11264, current: 10240"; a
    0.125 s fade at 16 fps is such a 2-frame piece) and the stream copy fails. Moving a piece's DTS
    earlier never touches a frame or its PTS, and with every piece at one delay the DTS run
    on across every join. ``llrint`` rounds the (whole) number of ticks."""
    ticks = f"{REORDER_DELAY * frame_step_us(fps)}/({MICROSECONDS}*TB)"
    return f"setts=pts=PTS:dts=DTS-STARTDTS+STARTPTS-{ticks}"



def _passthrough_xfade(graph: FilterGraph, stream: Stream, frames: int, fps: Fraction) -> Stream:
    """The stream through an xfade whose offset lies past its end: every frame passes unblended,
    in the pixel format ffmpeg negotiates for xfade; the one frame of the second input that the
    filter forwards after the end is trimmed off again."""
    main, tail = graph.split(stream)
    tail = graph.filter(tail, "trim", end_frame=1)
    past = float(Fraction(frames + 1) / fps) + 1
    film = graph.filter([main, tail], "xfade", transition="fade", duration="0.1", offset=f"{past:.6f}")
    return graph.filter(film, "trim", end_frame=frames)
