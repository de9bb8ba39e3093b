"""A film from start to end: render the shots, then stitch them, then the storyboard page.

``make_film`` is what ``wanclip render`` runs; ``render.render_film`` only renders and
``stitch.stitch_film`` only stitches. One lock covers both, so no stitch reads a clip a render is
replacing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from wanclip import media
from wanclip.errors import WanclipError
from wanclip.ledger import Ledger, film_lock
from wanclip.planning.plan import Plan
from wanclip.planning.workflow import canonical_json
from wanclip.render.loop import Render, RenderEvent, RenderOptions, RenderResult

log = logging.getLogger("wanclip.film")
PAGE_EVENTS = ("plan", "done", "failed", "lost", "cancelled")  # the storyboard is rewritten on these


@dataclass
class FilmResult:
    render: RenderResult
    film: object | None = None  # StitchResult when stitched
    note: str | None = None
    stitch_failed: bool = False
    page: Path | None = None  # the storyboard, index.html

    @property
    def ledger(self) -> Ledger:
        return self.render.ledger

    @property
    def selected(self) -> list[str]:
        return self.render.selected

    @property
    def exit_code(self) -> int:
        """0 when every selected shot is done and the film (when asked for) was written, else 1."""
        return 1 if self.stitch_failed else self.render.exit_code


class PageWriter:
    """Keeps ``index.html`` current off the render loop: one writer thread, requests coalesced (a
    burst of finished shots is one rewrite), a failure logged and never fatal to the render."""

    def __init__(self, film_dir: Path, shots_file: Path | None):
        self.film_dir, self.shots_file = Path(film_dir), shots_file
        self._wanted = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="storyboard", daemon=True)
        self._thread.start()

    def request(self) -> None:
        self._wanted.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._wanted.wait(0.2):
                self._wanted.clear()
                self.write_now()

    def write_now(self) -> None:
        from wanclip.review.storyboard import write_page

        try:
            write_page(self.film_dir, shots_file=self.shots_file)
        except Exception as exc:  # noqa: BLE001 - the page is a view; the film must not suffer for it
            log.warning("could not write the storyboard page in %s: %s", self.film_dir, exc)

    def close(self) -> None:
        """Stop the thread and write the page once more, so it shows the end state."""
        self._stop.set()
        self._thread.join(timeout=30)
        self.write_now()


PIECES_FROM = ("submitted", "reattached", "done")  # render events after which the pieces are set up


def make_film(plan: Plan, options: RenderOptions,
              on_event: Callable[[RenderEvent], None] = lambda event: None) -> FilmResult:
    """Render every selected shot of ``plan``; then, when every shot is done, stitch the film.

    ``index.html`` in the film folder (the storyboard) is rewritten as shots finish and at the end."""
    with film_lock(plan.out_dir):
        page = PageWriter(plan.out_dir, plan.shots_file if plan.shots_file.is_file() else None)
        pieces, pending = None, options.stitch

        def watched(event: RenderEvent) -> None:
            nonlocal pieces, pending
            on_event(event)
            if event.kind in PAGE_EVENTS:
                page.request()
            if pieces is not None:
                pieces.on_render_event(event)  # a queue.put: the encode runs in the background
            elif pending and event.kind in PIECES_FROM:
                # made once the first prompt is posted (the GPU is busy): its imports and the ffmpeg
                # probe stay off the start; the ledger brings every clip already done, this one too
                pending, pieces = False, _pieces(render.ledger)

        try:
            render = Render(plan, options, watched)
            result = FilmResult(render.run())
            if options.stitch:
                _stitch(result, on_event, pieces)
        finally:
            if pieces is not None:
                pieces.close()
            page.close()
    result.page = plan.out_dir / "index.html"
    return result


def _emit(on_event, kind: str, **data) -> None:
    on_event(RenderEvent(kind, data=data))


def _pieces(ledger: Ledger):
    """The film's pieces, encoded while the later shots render (None: stitch at the end instead)."""
    from wanclip.stitch.join import ledger_cut
    from wanclip.stitch.pieces import FilmPieces

    try:
        pieces = FilmPieces(ledger.folder, [ledger_cut(s.transition, None, None) for s in ledger.shots[1:]],
                            names=[s.name for s in ledger.shots])
        pieces.feed_ledger(ledger)  # shots already done (and those --only leaves alone)
    except Exception as exc:  # noqa: BLE001 - the one graph at the end still makes the film
        log.warning("not stitching while rendering: %s", exc)
        return None
    return pieces


def _stitch(result: FilmResult, on_event, pieces=None) -> None:
    from wanclip.stitch.graph import FILM_NAME
    from wanclip.stitch.join import stitch_film
    from wanclip.stitch.run import StitchResult

    ledger = result.ledger
    failed = [s.name for s in ledger.shots if s.status == "failed"]
    unfinished = [s.name for s in ledger.shots if s.status not in ("done", "failed")]
    if failed or unfinished:
        parts = ([f"failed: {', '.join(failed)}"] if failed else []) + \
                ([f"not rendered yet: {', '.join(unfinished)}"] if unfinished else [])
        result.note = f"film not stitched ({'; '.join(parts)})"
        return
    key = canonical_json([[s.clip_sha256, s.transition] for s in ledger.shots])
    film_file = ledger.folder / FILM_NAME
    try:
        if ledger.film.get("stitched") == key and film_file.is_file():
            sheet = ledger.folder / "contact_sheet.png"
            result.film = StitchResult.measured(media.probe(film_file), "xfade", len(ledger.shots),
                                                contact_sheet=sheet if sheet.is_file() else None)
            _emit(on_event, "stitch_kept", output=str(film_file), seconds=result.film.seconds)
            return  # same clips, same cuts: the film on disk is already this one
        _emit(on_event, "stitching", shots=len(ledger.shots))
        started = time.monotonic()
        sheet_after = pieces is not None and pieces.contact_sheet
        if sheet_after:
            pieces.contact_sheet = False  # the film first; its contact sheet once it is on disk
        result.film = stitch_film(ledger.folder, made=pieces)  # the pieces fed along the way, if any
    except WanclipError as exc:
        result.note = f"film not stitched: {exc.message}" + (f" ({exc.hint})" if exc.hint else "")
        result.stitch_failed = True
        return
    except Exception as exc:  # noqa: BLE001 - the clips are safe; say what broke instead of a traceback
        result.note = (f"film not stitched: unexpected {type(exc).__name__}: {exc} (the clips are kept; "
                       "run `wanclip stitch --from` the film folder to try again, and report this as a bug)")
        result.stitch_failed = True
        return
    if result.film.notes:  # e.g. the pieces could not be joined and one graph made the film
        result.note = "; ".join(result.film.notes)
    ledger.film["stitched"] = key
    ledger.film["stitch_seconds"] = round(time.monotonic() - started, 3)
    ledger.save()
    _emit(on_event, "stitched", output=str(result.film.output), seconds=result.film.seconds)
    if sheet_after and result.film.contact_sheet is None:
        try:
            result.film.contact_sheet = pieces.write_sheet()
        except Exception as exc:  # noqa: BLE001 - the film is made; a missing sheet is only a note
            result.note = "; ".join(filter(None, [result.note, f"no contact sheet: {exc}"]))
