"""A full disk during a render: how much room the shots not rendered yet need, and what to say.

The estimate comes from what the shots are (frames x width x height) at the bytes per pixel the
film's clips already on disk take; with none yet, at ``BYTES_PER_PIXEL``, about what an H.264 clip
of Wan's output (crf 19) takes. A shot another one continues from also leaves its last frame, a
PNG, beside its clip. The free space is measured on the disk of the file that could not be written.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from wanclip.errors import LocalIOError
from wanclip.files import size_text
from wanclip.ledger import ShotRecord

BYTES_PER_PIXEL = 0.1  # of one frame, when no clip of the film is on disk yet to measure it from


def bytes_per_pixel(records: list[ShotRecord], folder: Path) -> float:
    """What the film's clips on disk take per pixel of a frame (``BYTES_PER_PIXEL`` with none)."""
    size = pixels = 0
    for record in records:
        if record.status != "done" or not record.clip:
            continue
        try:
            size += (Path(folder) / record.clip).stat().st_size
        except OSError:
            continue
        pixels += record.frames * record.width * record.height
    return size / pixels if size and pixels else BYTES_PER_PIXEL


def room_needed(records: list[ShotRecord], folder: Path, all_records: list[ShotRecord] | None = None) -> int:
    """Bytes the shots of ``records`` that are not done need: their clips, and a last frame for
    each one another shot continues from. ``all_records`` (default ``records``): the film's shots,
    whose clips on disk give the bytes per pixel."""
    film = all_records if all_records is not None else records
    rate = bytes_per_pixel(film, folder)
    continued = {r.continues for r in film if r.continues}
    need = 0.0
    for record in records:
        if record.status == "done":
            continue
        need += record.frames * record.width * record.height * rate
        if record.name in continued:
            need += record.width * record.height * 3
    return int(need) + 1


def free_space(path: str | Path) -> int | None:
    """Free bytes on the disk of ``path`` (its nearest folder that exists); None when it cannot be read."""
    where = Path(path)
    while not where.is_dir() and where != where.parent:
        where = where.parent
    try:
        return shutil.disk_usage(where).free
    except OSError:
        return None


def no_space_error(path: str, records: list[ShotRecord], folder: Path, all_records: list[ShotRecord],
                   kept: list[str], on_server: list[tuple[str, str, str | None]]) -> LocalIOError:
    """The render's closing error after a full disk stopped it (exit 1, like a failed shot).

    ``path``: the file that could not be written; ``records``: the shots this render was to make;
    ``kept``: shots finished on the server whose clip could not be saved; ``on_server``: (shot, how,
    server) of our prompts still there (``how``: "left to finish", or why a stop is not confirmed)."""
    where = os.path.dirname(str(path)) or "."
    todo = [r for r in records if r.status != "done"]
    need = room_needed(todo, folder, all_records)
    free = free_space(where)
    plural = "s" if len(todo) != 1 else ""
    text = (f"no space left on the disk of {where}: {len(todo)} shot{plural} not rendered need about "
            f"{size_text(need)} more" + (f" ({size_text(free)} free)" if free is not None else ""))
    text += "; no more prompts were sent"
    if kept:
        text += (f"; finished on the server, their clips not saved here: {', '.join(kept)}" if len(kept) > 1
                 else f"; {kept[0]} finished on the server, its clip not saved here")
    for name, how, server in on_server:
        text += f"; {name} is {how} on {server}" if how == "left to finish" else f"; still on {server}: {name} ({how})"
    room = f"free about {size_text(need - free)} more" if free is not None and need > free else "make room"
    waiting = " and the clips waiting on the servers are fetched, not rendered again" if kept or on_server else ""
    hint = f"{room} on that disk, then run the same command again: finished shots are kept{waiting}"
    return LocalIOError(text, hint, path=str(path), errno=errno.ENOSPC)
