"""``contact_sheet.png``: the one-glance review of a render, one row per shot.

Each row is the shot's name, then its first, middle and last frame. Frames come from the clips
(not the stitched film), so a row shows exactly what that shot rendered. A stitch from pieces
passes the frames its body encodes already decoded (``thumbs``); otherwise they are read here. The label font is the
one Pillow ships (``ImageFont.load_default(size=...)``), so no system font is needed.

Where it goes (``sheet_path``): ``contact_sheet.png`` in a film folder (one with a ledger); beside
any other film, ``<film's stem>.contact_sheet.png`` (``-o x.mp4``: ``x.contact_sheet.png``), so a
user's own ``contact_sheet.png`` there is never touched. A file already at that name is replaced
only when wanclip made it (its PNG text says so, ``MARK``); otherwise the sheet is left out with a
note (``sheet_blocked``).
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from wanclip import media
from wanclip.files import atomic_write_bytes
from wanclip.media import ClipInfo
from wanclip.planning.folders import folder_is_ours

SHEET_NAME = "contact_sheet.png"
MARK = "wanclip contact sheet"  # the PNG's Software text: a sheet wanclip made may be replaced
THUMB_WIDTH = 240
LABEL_WIDTH = 200
GAP = 6
BACKGROUND = (24, 24, 24)
INK = (235, 235, 235)
COLUMNS = ("first", "middle", "last")


def thumb_size(clip: ClipInfo) -> tuple[int, int]:
    """Thumbnail size with the clip's display aspect, even numbers for the scaler."""
    height = round(THUMB_WIDTH * clip.height / max(1, clip.width) / 2) * 2
    return THUMB_WIDTH, max(2, height)


def row_height(shots: list[tuple[str, ClipInfo]]) -> int:
    return max(thumb_size(clip)[1] for _, clip in shots) + GAP


def thumb_picks(clip: ClipInfo) -> list[int]:
    """The frames a row shows: first, middle, last."""
    return [0, clip.frames // 2, clip.frames - 1]


def sheet_path(output: Path) -> Path:
    """The contact sheet of the film ``output``: ``contact_sheet.png`` in a film folder, else
    ``<stem>.contact_sheet.png`` beside it."""
    output = Path(output)
    if folder_is_ours(output.parent):
        return output.parent / SHEET_NAME
    return output.with_name(f"{output.stem}.{SHEET_NAME}")


def sheet_blocked(path: Path) -> str | None:
    """Why the sheet may not be written at ``path`` (a file there that wanclip did not make), or None."""
    path = Path(path)
    if (path.name == SHEET_NAME and folder_is_ours(path.parent)) or not (path.exists() or path.is_symlink()):
        return None
    if path.is_file() and not path.is_symlink():
        try:
            with Image.open(path) as image:
                if image.info.get("Software") == MARK:
                    return None
        except (OSError, ValueError, Image.DecompressionBombError):
            pass
    return (f"no contact sheet: {path} is there already and wanclip did not make it (left as it is; "
            "move it away to get the sheet, or pass --no-contact-sheet)")


def write_contact_sheet(shots: list[tuple[str, ClipInfo]], folder: Path,
                        thumbs: list[list[bytes]] | None = None, file_name: str = SHEET_NAME) -> Path:
    """Draw the sheet for ``(shot name, clip)`` pairs into ``folder/file_name`` (``contact_sheet.png``).

    ``thumbs[r]``: row r's three frames as raw RGB24 at ``thumb_size`` (as ``media.grab_frames``
    returns them), when the caller has them already; else they are read from the clip."""
    row = row_height(shots)
    width = LABEL_WIDTH + len(COLUMNS) * (THUMB_WIDTH + GAP)
    sheet = Image.new("RGB", (width, row * len(shots)), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=16)
    for r, (name, clip) in enumerate(shots):
        top = r * row
        draw.text((GAP, top + GAP), _fit(draw, name, font), fill=INK, font=font)
        draw.text((GAP, top + GAP + 22), f"{clip.frames} fr  {clip.duration:.2f} s", fill=INK, font=font)
        size = thumb_size(clip)
        frames = thumbs[r] if thumbs is not None else media.grab_frames(clip, thumb_picks(clip), *size)
        for c, raw in enumerate(frames):
            sheet.paste(Image.frombytes("RGB", size, raw), (LABEL_WIDTH + c * (THUMB_WIDTH + GAP), top))
    path = Path(folder) / file_name
    atomic_write_bytes(path, _png(sheet))
    return path


def _fit(draw: ImageDraw.ImageDraw, name: str, font) -> str:
    """Shorten a long shot name with an ellipsis so it stays in the label column."""
    while name and draw.textlength(name, font=font) > LABEL_WIDTH - 2 * GAP:
        name = name[:-2] + "…"
    return name


def _png(image: Image.Image) -> bytes:
    import io

    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Software", MARK)  # wanclip made it: a later stitch may replace it (sheet_blocked)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True, pnginfo=info)
    return buffer.getvalue()
