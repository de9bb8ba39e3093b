"""The pictures of a chain: keyframes read and fitted to the film, last frames decoded exactly.

A shot that starts from a keyframe (``image:``) or lands on one (``end_image:``) gets that picture
fitted to the film's size the way ComfyUI's image-to-video nodes would (scaled to cover, then
centre-cropped), once, into ``<film>/inputs/``. A shot that continues starts from its
predecessor's last frame: decoded from the verified clip (not re-encoded), saved beside it as
``clips/NN_name.last.png``, then, with ``colour_match`` on, matched to the colour statistics of the
chain's first keyframe (``drift.match_colours``) so a long chain does not drift. Files are written
``.part`` then renamed.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

from wanclip.files import atomic_write_bytes
from wanclip.media import read_frames

if TYPE_CHECKING:
    from PIL.Image import Image as Picture

INPUTS = "inputs"
def fit(img: Picture, width: int, height: int) -> Picture:
    """Scale to cover ``width``x``height`` and centre-crop, as ComfyUI's ``common_upscale(..., "center")``."""
    from PIL import Image

    img = img.convert("RGB")
    if img.size == (width, height):
        return img
    scale = max(width / img.width, height / img.height)
    w, h = max(width, round(img.width * scale)), max(height, round(img.height * scale))
    img = img.resize((w, h), Image.Resampling.LANCZOS)
    left, top = (w - width) // 2, (h - height) // 2
    return img.crop((left, top, left + width, top + height))


def png_bytes(img: Picture) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def prepare_keyframe(src: Path, width: int, height: int, dest: Path) -> Path:
    """``src`` fitted to the film as a PNG at ``dest`` (kept when it is already there)."""
    from PIL import Image

    if not dest.is_file():
        with Image.open(src) as img:
            atomic_write_bytes(dest, png_bytes(fit(img, width, height)))
    return dest


def last_frame(clip: Path, frames: int, width: int, height: int, dest: Path) -> Path:
    """Decode frame ``frames - 1`` of ``clip`` (the last one) exactly, as RGB, into the PNG ``dest``."""
    from PIL import Image

    raw = read_frames(clip, [frames - 1], width, height, scale=False).get(frames - 1)
    if raw is None:
        raise ValueError(f"{clip} has no frame {frames} of {width}x{height} (the clip is shorter than the ledger says)")
    img = Image.frombytes("RGB", (width, height), raw)
    atomic_write_bytes(dest, png_bytes(img))
    return dest


def next_input(last: Path, reference: Path | None, dest: Path) -> Path:
    """The picture the next link starts from: ``last`` itself, or (``reference`` given) ``last``
    with its colour statistics moved towards the chain's first keyframe by at most one bounded
    step (``drift.bounded``), written to ``dest``."""
    if reference is None:
        return last
    from PIL import Image

    from wanclip.render.drift import bounded, colour_stats, match_colours

    with Image.open(last) as img:
        frame = img.convert("RGB")
        matched = match_colours(frame, bounded(colour_stats(reference), colour_stats(frame)))
    atomic_write_bytes(dest, png_bytes(matched))
    return dest
