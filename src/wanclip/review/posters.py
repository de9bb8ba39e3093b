"""``posters/NN_name.jpg``: a done clip's middle frame, the picture its card shows before it plays.

Made once per clip and remade only when the clip's sha256 changed (``posters/.posters.json``
records which clip each poster was made from), so rewriting the page while a film renders stays
cheap.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from wanclip import media
from wanclip.errors import WanclipError
from wanclip.files import atomic_write_bytes, atomic_write_text, safe_filename
from wanclip.ledger import Ledger, ShotRecord
from wanclip.review.board import relative_link

POSTER_DIR = "posters"
POSTER_INDEX = ".posters.json"  # poster file -> the clip sha256 it was made from
POSTER_MAX_WIDTH = 640


class Posters:
    """``posters/NN_name.jpg`` per done clip, remade only when the clip's sha256 changed."""

    def __init__(self, folder: Path):
        self.folder = folder / POSTER_DIR
        self.index_file = self.folder / POSTER_INDEX
        try:
            self.made: dict[str, str] = json.loads(self.index_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self.made = {}
        self.changed = False

    def poster(self, ledger: Ledger, record: ShotRecord, take: dict | None = None) -> str | None:
        """The poster of the clip the film uses for ``record`` (``take``, from ``board.film_take``;
        None: the record's own clip)."""
        take = take if take is not None else {"clip": record.clip, "clip_sha256": record.clip_sha256}
        link = relative_link(take.get("clip"))
        clip = ledger.folder / link if link else None
        if record.status != "done" or clip is None or not clip.is_file():
            return None
        name = safe_filename(f"{record.index:02d}_{record.name}") + ".jpg"
        key = take.get("clip_sha256") or ""
        if take.get("edited"):  # the user's version of the clip: its bytes are not the rendered sha256
            stat = clip.stat()
            key = f"{key}+edited:{stat.st_size}:{stat.st_mtime_ns}"
        if not key or self.made.get(name) != key or not (self.folder / name).is_file():
            try:
                atomic_write_bytes(self.folder / name, poster_jpeg(clip))
            except WanclipError:
                return None  # an unreadable clip gets no poster; its card still shows
            self.made[name], self.changed = key, True
        return f"{POSTER_DIR}/{name}"

    def save(self) -> None:
        if self.changed:
            atomic_write_text(self.index_file, json.dumps(self.made, indent=1, sort_keys=True) + "\n")


def poster_jpeg(clip: Path) -> bytes:
    """The clip's middle frame as JPEG bytes, at most POSTER_MAX_WIDTH wide."""
    from PIL import Image

    info = media.probe(clip)
    width = min(info.width, POSTER_MAX_WIDTH)
    height = max(2, round(width * info.height / max(1, info.width) / 2) * 2)
    raw = media.grab_frames(info, [info.frames // 2], width, height)[0]
    buffer = io.BytesIO()
    Image.frombytes("RGB", (width, height), raw).save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()
