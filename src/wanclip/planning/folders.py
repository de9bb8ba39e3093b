"""Whose folder is it: wanclip writes a film only into a folder that is that film's, or new, or empty.

A film folder is the film's when its ``ledger.json`` is this film's: the same title, or the same
shots file (a retitled film keeps its shots file, a moved shots file keeps its title; only when
both differ is it another film). A folder holding another film's ledger is refused, and so is a
folder holding files wanclip did not make (``render --out ~/Documents`` must never replace the
user's ``index.html`` or ``film.mp4``). A missing or empty folder is fine; so is one holding only
what wanclip itself leaves before its first ledger (the lock, ``graphs/`` of `wanclip plan`) and
the litter operating systems leave (``.DS_Store``, ``Thumbs.db``, ``desktop.ini``).

``check_film_folder`` runs before any GPU work and before anything is written (``plan_film``),
and again under the folder's lock just before the ledger is read (a film could have taken the
folder in between). Planning may not import ``wanclip.ledger``: the ledger's file names are
repeated here.
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from pathlib import Path

from wanclip.errors import FolderRefused
from wanclip.planning.names import short_hash, slugify

LEDGER_NAME = "ledger.json"  # wanclip.ledger.LEDGER_NAME
LOCK_NAMES = frozenset({".render.lock", ".render.lock.owner"})  # wanclip.ledger.LOCK_NAME, OWNER_NAME
OS_LITTER = frozenset({".ds_store", "thumbs.db", "desktop.ini"})  # compared case-folded
GRAPH_FILE = re.compile(r"^\d{2,}_.+\.json$")  # graphs/NN_name.json, as `wanclip plan` writes them
CLIP_FILE = re.compile(r"^\d{2,}_.+\.(mp4|webm|mov|mkv)$")  # clips/NN_name.mp4, as render names them
PART_FILE = re.compile(r"^\..+\.part$")  # an atomic write cut short (files.atomic_write_bytes)
SHOWN = 5  # files named in a refusal
OWN_FOLDERS = frozenset({"clips", "posters", "pieces"})  # the folders a render makes: harmless while empty


def check_film_folder(folder: Path, title: str, shots_file: Path | None, where: str = "") -> None:
    """Refuse (``FolderRefused``, exit 2) to make the film ``title`` in ``folder`` unless the folder
    is missing, empty, this film's, or holds only wanclip's own leftovers. ``shots_file``: the
    film's shots file (None, or a path that is not a file, for a film without one: `wanclip clip`);
    ``where``: how the folder was chosen, for the message (``--out``, ``out: (line 7)``)."""
    folder = Path(folder)
    if not folder.is_dir():
        return  # made on the first render (a file in the way is refused where the folder is chosen)
    said = f"{where}: " if where else ""
    ledger = folder / LEDGER_NAME
    if ledger.exists() or ledger.is_symlink():
        recorded = _recorded_film(ledger, said)
        if not same_film(recorded, title, shots_file):
            _refuse_foreign(folder, recorded, title, said)
        return
    try:
        entries = sorted(folder.iterdir(), key=lambda p: p.name)
    except OSError as exc:
        raise FolderRefused(f"{said}cannot read the folder {folder}: {exc.strerror or exc}",
                            "choose another --out (or `out:` in the shots file), a folder you can read and write",
                            folder=str(folder)) from exc
    others = [p for p in entries if not _leftover(p)]
    if not others:
        return
    shown = ", ".join(p.name + ("/" if p.is_dir() else "") for p in others[:SHOWN])
    more = f" and {len(others) - SHOWN} more" if len(others) > SHOWN else ""
    if any(p.name in LOCK_NAMES for p in entries) or _has_rendered_clips(folder / "clips"):
        raise FolderRefused(
            f"{said}{folder} looks like a wanclip film folder whose ledger.json is gone (it holds {shown}{more}): "
            "without its ledger wanclip cannot tell which film it is or which files are its own",
            f"put its ledger.json back to resume that film; or move the folder away (or empty it) to render "
            f"{title!r} there; or give another --out, e.g. --out {folder.parent / slugify(title)}",
            folder=str(folder))
    raise FolderRefused(
        f"{said}{folder} is not empty and is not a wanclip film folder (it has no ledger.json): it holds "
        f"{shown}{more}; wanclip writes film.mp4, index.html, contact_sheet.png, clips/ ... there and never "
        "replaces files it did not make",
        f"give the film a new or empty folder (it is created) with --out or `out:` in its shots file, e.g. "
        f"--out {folder / slugify(title)}", folder=str(folder))


def _has_rendered_clips(clips: Path) -> bool:
    """Whether ``clips`` holds clips as wanclip names them (``NN_name.mp4``, ``NN_name.take2.mp4``):
    the sign of a film folder that lost its ledger (a finished render leaves no lock file)."""
    try:
        return clips.is_dir() and any(CLIP_FILE.match(p.name) for p in clips.iterdir())
    except OSError:
        return False


def same_film(recorded: dict, title: str, shots_file: Path | None) -> bool:
    """Whether a ledger's ``film`` (``recorded``) is the film ``title`` read from ``shots_file``:
    the same title, or the same shots file. Ledgers before ``shots_path`` have ``shots_file``
    as it was given (relative to the folder wanclip ran in: read here from this one)."""
    if _norm(recorded.get("title")) == _norm(title):
        return True
    theirs = recorded.get("shots_path") or recorded.get("shots_file")
    ours = shots_path(shots_file)
    if not isinstance(theirs, str) or not theirs or ours is None:
        return False
    try:
        return Path(theirs).expanduser().resolve() == Path(ours)
    except (OSError, RuntimeError, ValueError):
        return False


def shots_path(shots_file: Path | None) -> str | None:
    """The shots file as the ledger records it (``film.shots_path``): absolute, links resolved;
    None for a film without one."""
    if shots_file is None:
        return None
    try:
        path = Path(shots_file).expanduser()
        return str(path.resolve()) if path.is_file() else None
    except (OSError, RuntimeError, ValueError):
        return None


def _norm(title: object) -> str | None:
    return unicodedata.normalize("NFC", title).strip() if isinstance(title, str) else None


def _recorded_film(ledger: Path, said: str) -> dict:
    """The ``film`` of a ledger; a file that is no wanclip ledger is refused, never replaced."""
    hint = ("it is not a file wanclip wrote: give another --out, or move that file away if it is an old ledger "
            "you no longer need")
    try:
        data = json.loads(ledger.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise FolderRefused(f"{said}{ledger} cannot be read as a wanclip ledger: {reason}", hint,
                            folder=str(ledger.parent)) from exc
    film = data.get("film") if isinstance(data, dict) else None
    if not isinstance(film, dict) or not isinstance(data.get("shots", []), list):
        raise FolderRefused(f"{said}{ledger} is not a wanclip ledger (its JSON is of another shape)", hint,
                            folder=str(ledger.parent))
    if not isinstance(film.get("title"), str):  # every ledger wanclip wrote names its film
        raise FolderRefused(f"{said}{ledger} is not a wanclip ledger (it names no film title)", hint,
                            folder=str(ledger.parent))
    return film


def _refuse_foreign(folder: Path, recorded: dict, title: str, said: str) -> None:
    theirs = recorded.get("title")
    named = repr(theirs) if isinstance(theirs, str) else "another film"
    source = recorded.get("shots_path") or recorded.get("shots_file")
    source = f" (from {source})" if isinstance(source, str) and source else ""
    other = folder.parent / slugify(title)
    if other == folder:  # two titles of one slug ("Tomato & Egg", "tomato egg"): out/<slug>-<hash>
        other = folder.parent / f"{slugify(title)}-{short_hash(title)}"
    raise FolderRefused(
        f"{said}{folder} holds the film {named}{source}, not {title!r}: rendering {title!r} there would "
        "overwrite that film's clips, film and ledger",
        f"give this film another folder (--out FOLDER, or `out:` in its shots file), e.g. --out {other}; "
        f"or move {folder} away first", folder=str(folder))


def _leftover(path: Path) -> bool:
    """OS litter, or what wanclip leaves in a folder before its first ledger is written."""
    name = path.name
    if name.casefold() in OS_LITTER:
        return True
    if name in LOCK_NAMES or PART_FILE.match(name):
        return path.is_file() and not path.is_symlink()
    if name in OWN_FOLDERS and path.is_dir():  # empty: nothing in it to replace (a disk mounted there, say)
        try:
            return next(path.iterdir(), None) is None
        except OSError:
            return False
    if name == "graphs" and path.is_dir() and not path.is_symlink():
        try:
            return all(GRAPH_FILE.match(p.name) or PART_FILE.match(p.name) for p in path.iterdir()) \
                and all(p.is_file() for p in path.iterdir())
        except OSError:
            return False
    return False


def folder_is_ours(folder: Path) -> bool:
    """Whether ``folder`` is a wanclip film folder (it holds a ledger): the stitcher's test for
    writing ``contact_sheet.png`` beside the film."""
    return os.path.isfile(Path(folder) / LEDGER_NAME)
