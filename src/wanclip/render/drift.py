"""Colour drift along a chain of image-to-video shots, and its correction.

A chained shot starts from its predecessor's last frame; every link passes that frame through VAE
encode, sampling and decode, which adds a small global colour cast that compounds link after link.
What is measured here, per RGB channel of a frame: the mean and standard deviation (0-255 levels)
and a normalised 32-bin histogram. Two frames' ``distance`` is the largest |Δmean| over R, G, B
(the cast a viewer sees, in levels) and the Hellinger distance of the histograms (0 identical,
1 disjoint; averaged over the three channels), which also catches a change of contrast or shape.

The correction, ``match_colours``, is Reinhard-style mean/std transfer per channel: an affine map
per channel that gives the frame the reference's mean and spread. It is chosen because drift is
mostly such a map (a gain and an offset per channel), it is exact for it, it needs nothing beyond
Pillow (three 256-entry lookup tables), and it is deterministic. Its limits: it corrects global
casts only, not local ones (a patch that changed colour, a vignette, a shift in only the shadows);
it cannot tell drift from intended change (a light switched on in the scene is "corrected" too); and
it keeps the frame's histogram shape, so drift that reshapes a histogram is left.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import sqrt
from pathlib import Path

from PIL import Image, ImageStat

BINS = 32
Box = tuple[int, int, int, int]  # (left, top, right, bottom), as Image.crop takes it
STD_FLOOR = 1.0  # levels: a channel flatter than this is treated as this flat
RATIO_RANGE = (0.5, 2.0)  # std gain bounds: a flat or near-flat frame is not blown up into noise
Triple = tuple[float, float, float]


@dataclass(frozen=True)
class Stats:
    """Colour statistics of one RGB frame: per-channel ``mean`` and ``std`` (population) in 0-255
    levels, and ``hist``: per channel, 32 bins of 8 levels each, summing to 1."""

    mean: Triple
    std: Triple
    hist: tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]

    def to_dict(self) -> dict:
        return {"mean": list(self.mean), "std": list(self.std), "hist": [list(h) for h in self.hist]}

    @classmethod
    def from_dict(cls, data: dict) -> Stats:
        try:
            mean, std, hist = tuple(map(float, data["mean"])), tuple(map(float, data["std"])), data["hist"]
            hist = tuple(tuple(map(float, h)) for h in hist)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"colour stats {data!r:.80}: not mean/std/hist lists of numbers ({exc})") from exc
        if len(mean) != 3 or len(std) != 3 or len(hist) != 3 or any(len(h) != BINS for h in hist):
            raise ValueError(f"colour stats need 3 means, 3 stds and 3 histograms of {BINS} bins; "
                             f"got {len(mean)}, {len(std)} and {[len(h) for h in hist]}")
        return cls(mean, std, hist)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Drift:
    """How far a frame's colours are from a reference: ``mean_delta`` = max |Δmean| over R, G, B in
    levels; ``channel_delta`` = the signed Δmeans (other − reference; R > 0 and B < 0 is a warm cast);
    ``hist`` = Hellinger distance sqrt(½ Σ (√p − √q)²) (= sqrt(1 − Σ √(p·q)) for normalised histograms,
    exactly 0 for identical ones) of each channel's histograms, averaged over R, G, B (0-1)."""

    mean_delta: float
    channel_delta: Triple
    hist: float


def _rgb(image: Image.Image | Path) -> Image.Image:
    if isinstance(image, Image.Image):
        return image if image.mode == "RGB" else image.convert("RGB")
    with Image.open(image) as opened:
        return opened.convert("RGB")


def _mask(size: tuple[int, int], exclude: Box | None) -> Image.Image | None:
    if exclude is None:
        return None
    mask = Image.new("L", size, 255)
    mask.paste(0, exclude)
    if mask.getbbox() is None:
        raise ValueError(f"the box {exclude} to leave out covers the whole {size[0]}x{size[1]} frame: "
                         "nothing is left to measure; pass a smaller box")
    return mask


def colour_stats(image: Image.Image | Path, exclude: Box | None = None) -> Stats:
    """Stats of ``image`` (a picture or a file; converted to RGB), leaving out the pixels in the
    ``exclude`` box (e.g. a caption or test card drawn over the frame)."""
    rgb = _rgb(image)
    mask = _mask(rgb.size, exclude)
    stat = ImageStat.Stat(rgb, mask)
    counts = rgb.histogram(mask)
    hist = []
    for c in range(3):
        channel = counts[256 * c:256 * (c + 1)]
        total = sum(channel)
        hist.append(tuple(sum(channel[b * 8:(b + 1) * 8]) / total for b in range(BINS)))
    return Stats(tuple(stat.mean), tuple(stat.stddev), tuple(hist))  # type: ignore[arg-type]


def distance(reference: Stats, other: Stats) -> Drift:
    """The drift of ``other`` from ``reference``."""
    delta = tuple(o - r for r, o in zip(reference.mean, other.mean, strict=True))
    hellinger = [min(1.0, sqrt(0.5 * sum((sqrt(p) - sqrt(q)) ** 2 for p, q in zip(hr, ho, strict=True))))
                 for hr, ho in zip(reference.hist, other.hist, strict=True)]
    return Drift(max(abs(d) for d in delta), delta, sum(hellinger) / 3)  # type: ignore[arg-type]


def _lut(mean: float, std: float, ref_mean: float, ref_std: float, strength: float) -> list[int]:
    lo, hi = RATIO_RANGE
    ratio = min(hi, max(lo, ref_std / max(std, STD_FLOOR)))
    table = []
    for v in range(256):
        new = v + strength * ((v - mean) * ratio + ref_mean - v)
        table.append(min(255, max(0, int(new + 0.5))))
    return table


def match_colours(image: Image.Image | Path, reference: Stats, strength: float = 1.0,
                  exclude: Box | None = None) -> Image.Image:
    """``image`` with each channel mapped to ``reference``'s mean and std:
    new = x + strength · ((x − mean_x) · gain + mean_ref − x), gain = std_ref / std_x bounded to
    ``RATIO_RANGE`` (std floored at ``STD_FLOOR``), rounded and clipped to 0-255. ``strength`` 0 keeps
    the frame, 1 matches fully. The image's own stats leave out ``exclude``; the whole frame is mapped.
    The result has the input's size and mode (an alpha channel is kept as it was; a file is read as RGB)."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"colour match strength {strength} is outside 0-1 (0 keeps the frame, 1 matches fully)")
    original = image if isinstance(image, Image.Image) else _rgb(image)
    rgb = _rgb(original)
    own = colour_stats(rgb, exclude)
    table: list[int] = []
    for c in range(3):
        table += _lut(own.mean[c], own.std[c], reference.mean[c], reference.std[c], strength)
    matched = rgb.point(table)
    if original.mode == "RGB":
        return matched
    if original.mode == "RGBA":
        matched.putalpha(original.getchannel("A"))
        return matched
    return matched.convert(original.mode)


STEP_SHIFT = 3.0  # levels of mean a chain link's correction may move (drift is a few levels per link)
STEP_GAIN = 0.03  # fraction of spread a chain link's correction may change


def bounded(reference: Stats, current: Stats, shift: float = STEP_SHIFT, gain: float = STEP_GAIN) -> Stats:
    """The target for one chain link: ``reference``, but no further from ``current`` than ``shift``
    levels of mean and ``gain`` of spread per channel. Drift builds up slowly, a few levels per link,
    so a bounded step undoes it over the links while a real change of the picture (the subject
    moved, a light came on) is never "corrected" by a visible jump at the seam."""
    mean = tuple(c + max(-shift, min(shift, r - c)) for r, c in zip(reference.mean, current.mean, strict=True))
    std = tuple(c * max(1 - gain, min(1 + gain, r / c)) if c > 0 else r
                for r, c in zip(reference.std, current.std, strict=True))
    return Stats(mean, std, reference.hist)  # type: ignore[arg-type]


def chain_report(frames: list[Path], reference: Stats | None = None, exclude: Box | None = None) -> list[Drift]:
    """The drift of each link's last frame (in chain order) against ``reference``, by default the
    first frame given (so the first entry is then zero); pass the chain keyframe's stats to see the
    first link's own drift too."""
    if not frames:
        return []
    stats = [colour_stats(frame, exclude) for frame in frames]
    base = reference if reference is not None else stats[0]
    return [distance(base, s) for s in stats]
