"""``out/<film>/index.html``: a film folder's storyboard, the render ledger as a page to look at.

``write_page()`` reads ``ledger.json`` (and the shots file, for the prompt pieces older ledgers do
not record), makes one poster per done clip (``posters.py``) and writes the page ``page.py``
renders from the folder's ``board.Storyboard``. ``serve_folder()`` serves the folder on loopback
for ``wanclip review --serve`` (``serving.py``: byte ranges, nothing outside the folder).

The page refreshes itself only while a render of the film is running: ``render_running()`` reads
the film lock's owner file (``ledger.film_lock``) and asks whether the process it names is alive.
A render that ends (done, failed, interrupted) writes the page a last time as not running; one
that was killed leaves a page that says it runs, which the next ``review`` (and the server, before
serving it) rewrites.
"""

from __future__ import annotations

import http.server
import json
import os
import re
from datetime import datetime
from pathlib import Path

from wanclip import media
from wanclip.errors import WanclipError
from wanclip.files import atomic_write_text
from wanclip.ledger import OWNER_NAME, Ledger, load_ledger
from wanclip.planning.shots import Film, load_film
from wanclip.review.board import Recorded, Storyboard, card_of, command_base, film_take
from wanclip.review.page import LIVE_MARK, build_page
from wanclip.review.posters import Posters
from wanclip.review.serving import serve

PAGE_NAME = "index.html"
FILM_NAME = "film.mp4"


# -- reading the folder ----------------------------------------------------------------------------

def write_page(film_dir: Path, *, shots_file: Path | None = None, rendering: bool | None = None) -> Path:
    """Build ``film_dir/index.html`` from its ledger (posters made as needed); returns its path.

    ``shots_file`` (default: the one the ledger names) supplies the prompt pieces a ledger from an
    older wanclip lacks. ``rendering``: whether a render of the film is running (the page refreshes
    itself only then); None: ``render_running(film_dir)``. Raises WanclipError (exit 2) when the
    folder has no readable ledger.
    """
    folder = Path(film_dir)
    if not folder.is_dir():
        raise WanclipError(f"{folder} is not a film folder", "give the folder `wanclip render` wrote, "
                           "e.g. out/<film>")
    board = read_storyboard(folder, shots_file=shots_file,
                            rendering=render_running(folder) if rendering is None else rendering)
    path = folder / PAGE_NAME
    atomic_write_text(path, build_page(board))
    return path


def read_storyboard(folder: Path, *, shots_file: Path | None = None, rendering: bool = False) -> Storyboard:
    ledger = load_ledger(folder)
    shots_path = shots_file or ledger.film.get("shots_file")
    film = _film_or_none(Path(shots_path)) if shots_path else None
    command = command_base(folder, ledger, shots_path, film)
    posters = Posters(folder)
    cards = []
    for record in [Recorded(r, raw) for r, raw in zip(ledger.shots, _raw_shots(ledger), strict=False)]:
        used = film_take(ledger, record)
        cards.append(card_of(folder, record, film, command, posters.poster(ledger, record, used), used))
    posters.save()
    film_file = folder / FILM_NAME
    return Storyboard(
        title=ledger.film.get("title") or folder.name, cards=cards,
        film=FILM_NAME if film_file.is_file() else None,
        film_seconds=_film_seconds(film_file, ledger), stitch_seconds=ledger.film.get("stitch_seconds"),
        updated=datetime.now().strftime("%Y-%m-%d %H:%M:%S"), rendering=rendering, command=command)


def _raw_shots(ledger: Ledger) -> list[dict]:
    """The ledger's shot records as its JSON has them (one per record, ``{}`` where unreadable)."""
    try:
        shots = json.loads(ledger.path.read_text(encoding="utf-8")).get("shots")
    except (OSError, ValueError, AttributeError):
        shots = None
    shots = shots if isinstance(shots, list) and len(shots) == len(ledger.shots) else [{}] * len(ledger.shots)
    return [s if isinstance(s, dict) else {} for s in shots]


def render_running(folder: Path) -> bool:
    """A render of this film is running now: the film lock's owner file (written by the render that
    holds the lock, removed before it lets go) names a ``render`` whose process is alive. Reading it
    never touches the lock itself, so a render starting at that moment is never refused."""
    try:
        owner = (Path(folder) / OWNER_NAME).read_text(encoding="utf-8")
    except (OSError, ValueError):
        return False
    found = re.fullmatch(r"\s*render \(pid (\d+)\)\s*", owner)
    return bool(found) and process_alive(int(found.group(1)))


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (on Windows without ``os.kill``, which would end it)."""
    if pid <= 0:
        return False
    if os.name == "nt":  # pragma: no cover - Windows only
        import ctypes

        kernel = ctypes.windll.kernel32
        handle = kernel.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        try:
            code = ctypes.c_ulong()
            return bool(kernel.GetExitCodeProcess(handle, ctypes.byref(code))) and code.value == 259  # STILL_ACTIVE
        finally:
            kernel.CloseHandle(handle)
    try:
        os.kill(pid, 0)
    except PermissionError:
        return True  # someone else's process: alive
    except OSError:
        return False
    return True


def _film_or_none(path: Path) -> Film | None:
    """The shots file, if it is still there and still valid; else the page shows what the ledger has."""
    if not path.is_file():
        return None
    try:
        return load_film(path)
    except WanclipError:
        return None


def _film_seconds(film_file: Path, ledger: Ledger) -> float | None:
    if film_file.is_file():
        try:
            return media.probe(film_file).duration
        except WanclipError:
            pass
    return ledger.film.get("seconds")


# -- serving the folder ----------------------------------------------------------------------------

def serve_folder(film_dir: Path, port: int = 0) -> http.server.ThreadingHTTPServer:
    """An HTTP server for ``film_dir`` only, on 127.0.0.1 only (port 0: a free one). Caller closes it.

    Before the page is served, a page that says a render runs when none does (the render was killed)
    is written again, so the page in the browser stops refreshing."""
    folder = Path(film_dir).resolve()

    def before_page() -> None:
        try:
            text = (folder / PAGE_NAME).read_text(encoding="utf-8")
        except (OSError, ValueError):
            return
        if LIVE_MARK in text and not render_running(folder):
            try:
                write_page(folder, rendering=False)
            except WanclipError:
                pass  # the ledger went away: serve the page as it is

    try:
        return serve(folder, port, before_page)
    except OSError as exc:
        raise WanclipError(f"cannot serve on 127.0.0.1:{port}: {exc.strerror or exc}",
                           "pick another --port, or --port 0 for any free one") from exc
