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

import hashlib
import io
from pathlib import Path
from typing import TYPE_CHECKING

from wanclip.files import atomic_write_bytes, sha256_file
from wanclip.media import read_frames

if TYPE_CHECKING:
    from PIL.Image import Image as Picture

INPUTS = "inputs"
MAX_CROP = 0.5  # a keyframe that would lose more than half of its width or height is refused


def fit_note(size: tuple[int, int], width: int, height: int) -> tuple[str | None, str | None]:
    """(problem, note) for a picture of ``size`` in a ``width``x``height`` film: a problem when
    cropping it would lose more than half of it, a note when it will be scaled and cropped."""
    w, h = size
    if (w, h) == (width, height):
        return None, None
    scale = max(width / w, height / h)
    kept_w, kept_h = width / (w * scale), height / (h * scale)
    lost = 1 - min(kept_w, kept_h)
    side = "width" if kept_w < kept_h else "height"
    if lost > MAX_CROP:
        return (f"its {w}x{h} is far from the film's {width}x{height} aspect: fitting it would crop away "
                f"{lost:.0%} of its {side}", None)
    what = f"scaled {'down' if scale < 1 else 'up'} to cover {width}x{height}"
    crop = f", centre-cropped (losing {lost:.0%} of its {side})" if lost > 0.005 else ""
    return None, f"{w}x{h} will be {what}{crop}"


def read_keyframe(path: Path) -> tuple[int, int]:
    """The picture's size; raises ``ValueError`` with a reason a person can act on."""
    from PIL import Image, UnidentifiedImageError  # Pillow only when a film has pictures

    try:
        with Image.open(path) as img:
            img.verify()
        with Image.open(path) as img:
            return img.size
    except FileNotFoundError:
        raise ValueError("no such file") from None
    except IsADirectoryError:
        raise ValueError("is a folder, not a picture") from None
    except UnidentifiedImageError:
        raise ValueError("is not a picture Pillow can read (use PNG or JPEG)") from None
    except OSError as exc:
        raise ValueError(f"cannot be read: {exc.strerror or exc}") from None


def keyframe_key(path: Path, width: int, height: int) -> str:
    """What names the fitted picture: the source's bytes and the film's size."""
    return hashlib.sha256(f"{sha256_file(path)}:{width}x{height}".encode()).hexdigest()


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

    from wanclip.drift import bounded, colour_stats, match_colours

    with Image.open(last) as img:
        frame = img.convert("RGB")
        matched = match_colours(frame, bounded(colour_stats(reference), colour_stats(frame)))
    atomic_write_bytes(dest, png_bytes(matched))
    return dest
