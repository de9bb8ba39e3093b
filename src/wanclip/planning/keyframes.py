"""Keyframe pictures as the plan sees them: readable, of which size, how they will fit the film.

The plan checks every ``image:`` / ``end_image:`` before any GPU work; ``render.pictures`` does the
fitting itself when a shot is submitted.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from wanclip.files import sha256_file

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
    except Image.DecompressionBombError:  # its header alone claims more pixels than Pillow will decode
        raise ValueError(f"is {_claimed_size(path)} pixels, past Pillow's safety limit of "
                         f"{Image.MAX_IMAGE_PIXELS * 2:,} pixels: scale it down (the film is far smaller)") from None
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


def _claimed_size(path: Path) -> str:
    """The size a picture's header claims, without decoding it (Pillow refuses to open it at all)."""
    from PIL import Image

    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        with Image.open(path) as img:
            return f"{img.size[0]}x{img.size[1]}"
    except Exception:  # noqa: BLE001 - only for the message
        return "more"
    finally:
        Image.MAX_IMAGE_PIXELS = limit
