"""``out/<film>/index.html``: a film folder's storyboard, the render ledger as a page to look at.

``write_page()`` reads ``ledger.json`` (and the shots file, for the prompt pieces older ledgers do
not record), makes one poster per done clip (``posters.py``) and writes the page ``page.py``
renders from the folder's ``board.Storyboard``. ``serve_folder()`` serves the folder on loopback
for ``wanclip review --serve``.
"""

from __future__ import annotations

import functools
import http.server
from datetime import datetime
from pathlib import Path

from wanclip import media
from wanclip.errors import WanclipError
from wanclip.files import atomic_write_text
from wanclip.ledger import Ledger, load_ledger
from wanclip.planning.shots import Film, load_film
from wanclip.review.board import Storyboard, card_of, command_base
from wanclip.review.page import build_page
from wanclip.review.posters import Posters

PAGE_NAME = "index.html"
FILM_NAME = "film.mp4"


# -- reading the folder ----------------------------------------------------------------------------

def write_page(film_dir: Path, *, shots_file: Path | None = None) -> Path:
    """Build ``film_dir/index.html`` from its ledger (posters made as needed); returns its path.

    ``shots_file`` (default: the one the ledger names) supplies the prompt pieces a ledger from an
    older wanclip lacks. Raises WanclipError (exit 2) when the folder has no readable ledger.
    """
    folder = Path(film_dir)
    if not folder.is_dir():
        raise WanclipError(f"{folder} is not a film folder", "give the folder `wanclip render` wrote, "
                           "e.g. out/<film>")
    board = read_storyboard(folder, shots_file=shots_file)
    path = folder / PAGE_NAME
    atomic_write_text(path, build_page(board))
    return path


def read_storyboard(folder: Path, *, shots_file: Path | None = None) -> Storyboard:
    ledger = load_ledger(folder)
    shots_path = shots_file or ledger.film.get("shots_file")
    film = _film_or_none(Path(shots_path)) if shots_path else None
    command = command_base(folder, ledger, shots_path, film)
    posters = Posters(folder)
    cards = [card_of(folder, record, film, command, posters.poster(ledger, record)) for record in ledger.shots]
    posters.save()
    film_file = folder / FILM_NAME
    return Storyboard(
        title=ledger.film.get("title") or folder.name, cards=cards,
        film=FILM_NAME if film_file.is_file() else None,
        film_seconds=_film_seconds(film_file, ledger), stitch_seconds=ledger.film.get("stitch_seconds"),
        updated=datetime.now().strftime("%Y-%m-%d %H:%M:%S"))


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
    """An HTTP server for ``film_dir`` only, on 127.0.0.1 only (port 0: a free one). Caller closes it."""
    handler = functools.partial(_QuietHandler, directory=str(Path(film_dir).resolve()))
    try:
        return http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError as exc:
        raise WanclipError(f"cannot serve on 127.0.0.1:{port}: {exc.strerror or exc}",
                           "pick another --port, or --port 0 for any free one") from exc


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, fmt, *args) -> None:  # the console stays for the URL and Ctrl-C
        pass

    def send_head(self):
        if self.path.split("?")[0] == "/favicon.ico" and not Path(self.translate_path(self.path)).is_file():
            self.send_response(204)  # browsers ask for one; a 404 would log an error in the console
            self.end_headers()
            return None
        return super().send_head()

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")  # a reloading page must see the new ledger
        super().end_headers()
