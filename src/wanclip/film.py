"""A film from start to end: render the shots, then stitch them, then the storyboard page.

``make_film(plan, servers=[...])`` is the library's call; ``run_film(plan, options)`` the same
with every setting in a ``RenderOptions`` (what ``wanclip render`` runs). ``render.loop.render_film``
only renders and ``stitch.join.stitch_film`` only stitches. One lock covers both, so no stitch
reads a clip a render is replacing. While shots render, each verified clip goes to the film's
pieces (``FilmPieces.clip_ready``) from its typed ``ShotClip`` event: the stitcher is told of
clips, it does not listen to the progress the person sees.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wanclip import media
from wanclip.errors import WanclipError
from wanclip.ledger import Ledger, film_lock
from wanclip.planning.plan import Plan
from wanclip.planning.workflow import canonical_json
from wanclip.render.events import (
    FilmKept,
    FilmStitched,
    FilmStitching,
    RenderEvent,
    ShotCancelled,
    ShotClip,
    ShotDone,
    ShotFailed,
    ShotLost,
    ShotQueued,
    ShotReattached,
    timestamp,
)
from wanclip.render.loop import Render, RenderOptions, RenderResult

if TYPE_CHECKING:  # the stitcher is imported once a film is stitched, never at the start
    from wanclip.stitch.pieces import FilmPieces
    from wanclip.stitch.run import StitchResult

log = logging.getLogger("wanclip.film")
OnEvent = Callable[[RenderEvent], None]
PAGE_EVENTS = (ShotDone, ShotFailed, ShotLost, ShotCancelled)  # the storyboard is rewritten on these
# The pieces are set up, and the storyboard first written, after the first of these: once the first
# prompt is posted, so their imports and work stay off the way to it (the GPU is busy by then).
PIECES_FROM = (ShotQueued, ShotReattached, ShotDone)


@dataclass
class FilmResult:
    """What ``make_film`` made: the ledger (every shot's state), the film if it was stitched."""

    render: RenderResult
    stitched: StitchResult | None = None  # the film as measured (length, size, contact sheet), when stitched
    note: str | None = None
    stitch_failed: bool = False
    page: Path | None = None  # the storyboard, index.html

    @property
    def film(self) -> Path | None:
        """The film's file, or None when it was not stitched (a shot failed, ``stitch=False``)."""
        return self.stitched.output if self.stitched is not None else None

    @property
    def ledger(self) -> Ledger:
        return self.render.ledger

    @property
    def selected(self) -> list[str]:
        return self.render.selected

    def to_json(self) -> dict[str, Any]:
        """The closing line of ``wanclip render --json``: how it ended, shot by shot."""
        from wanclip.review.timings import film_split  # the summary's: off the way to the first prompt

        shots = [s for s in self.ledger.shots if s.name in self.selected]
        found = self.background
        background = {"background_encode": {"clips": found[0], "median_seconds": found[1]}} if found else {}
        return {"event": "summary", "time": timestamp(), "ledger": str(self.ledger.path), "exit_code": self.exit_code,
                "film": str(self.film) if self.film else None, "note": self.note,
                "page": str(self.page) if self.page else None, "seconds": film_split(self.ledger), **background,
                "shots": [{"name": s.name, "status": s.status, "clip": s.clip, "server": s.server,
                           "error": s.error} for s in shots]}

    @property
    def background(self) -> tuple[int, float] | None:
        """(clips, median seconds) the node pack encoded off the GPU's path, of the selected done shots."""
        from wanclip.review.timings import background_encode

        return background_encode([s.node_seconds for s in self.ledger.shots
                                  if s.name in self.selected and s.status == "done"])

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

    def write_now(self, rendering: bool = True) -> None:
        from wanclip.review.storyboard import write_page

        try:
            write_page(self.film_dir, shots_file=self.shots_file, rendering=rendering)
        except Exception as exc:  # noqa: BLE001 - the page is a view; the film must not suffer for it
            log.warning("could not write the storyboard page in %s: %s", self.film_dir, exc)

    def close(self) -> None:
        """Stop the thread and write the page once more, so it shows the end state: no render
        running (done, failed or interrupted alike), so the page stops refreshing itself."""
        self._stop.set()
        self._thread.join(timeout=30)
        self.write_now(rendering=False)


def make_film(plan: Plan, *, servers: Iterable[str], on_event: OnEvent | None = None,
              headers: Mapping[str, str] | None = None, only: Iterable[str] = (), force: bool = False,
              stitch: bool = True, **settings: Any) -> FilmResult:
    """Render every shot of ``plan`` (``only`` these, when given) on ``servers``, then stitch the film.

    ``servers``: ComfyUI URLs (``http://user:pass@host:8188`` carries credentials, never printed);
    ``headers``: extra HTTP headers for a proxy, e.g. ``{"Authorization": "Bearer …"}``;
    ``force``: render shots again that are already done; ``on_event``: called with each typed
    ``RenderEvent`` as the render goes (on this thread: keep it short); ``settings``: any other
    ``RenderOptions`` field (``shot_timeout``, ``server_grace``, …). Raises a ``WanclipError`` when
    the render is refused before any GPU work; a shot that fails is in the result (``exit_code``
    1), not raised."""
    urls = [servers] if isinstance(servers, str) else list(servers)  # one URL is a list of one, not of letters
    options = RenderOptions(servers=urls, headers=dict(headers or {}), only=list(only), force=force,
                            stitch=stitch, **settings)
    return run_film(plan, options, on_event)


def run_film(plan: Plan, options: RenderOptions, on_event: OnEvent | None = None) -> FilmResult:
    """``make_film`` with every setting in ``options``.

    ``index.html`` in the film folder (the storyboard) is rewritten as shots finish and at the end.
    Servers that ``wanclip serve --warm`` loaded already count as warm unless ``options.warm`` says."""
    from wanclip.serve.state import served_warm

    tell: OnEvent = on_event or (lambda event: None)
    if not options.warm:
        options = replace(options, warm=frozenset(served_warm()))
    plan.check_folder()  # another film's folder, or the user's files: refused before the lock writes there
    with film_lock(plan.out_dir):
        page = PageWriter(plan.out_dir, plan.shots_file if plan.shots_file.is_file() else None)
        pieces: FilmPieces | None = None
        pending, first_page = options.stitch, True

        def watched(event: RenderEvent) -> None:
            nonlocal pieces, pending, first_page
            tell(event)
            if isinstance(event, PAGE_EVENTS) or (first_page and isinstance(event, PIECES_FROM)):
                first_page = False
                page.request()
            if pieces is not None:
                _clip_to_pieces(pieces, render.ledger, event)  # a queue.put: the encode runs in the background
            elif pending and isinstance(event, PIECES_FROM):
                # made once the first prompt is posted (the GPU is busy): its imports and the ffmpeg
                # probe stay off the start; the ledger brings every clip already done, this one too
                pending, pieces = False, _pieces(render.ledger)

        try:
            render = Render(plan, options, watched)
            result = FilmResult(render.run())
            if options.stitch:
                _stitch(result, tell, pieces)
        finally:
            if pieces is not None:
                pieces.close()
            page.close()
    result.page = plan.out_dir / "index.html"
    return result


def _clip_to_pieces(pieces: FilmPieces, ledger: Ledger, event: RenderEvent) -> None:
    """A shot's verified clip is one of the film's pieces: encode it while later shots render (the
    take the film uses, which is not the new one when an earlier take is pinned)."""
    if isinstance(event, ShotClip) and event.clip and event.index and event.shot:
        record = ledger.shot(event.shot)
        if ledger.post_wanted(record):
            return  # its post clip is the film's: that one comes with post_done
        clip = ledger.film_clip(record)
        if clip is not None:
            pieces.clip_ready(event.index - 1, clip, None)


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


def _stitch(result: FilmResult, on_event: OnEvent, pieces: FilmPieces | None = None) -> None:
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
    key = canonical_json([[ledger.film_clip_sha256(s), s.transition] for s in ledger.shots])
    film_file = ledger.folder / FILM_NAME
    try:
        if ledger.film.get("stitched") == key and film_file.is_file():
            sheet = ledger.folder / "contact_sheet.png"
            result.stitched = StitchResult.measured(media.probe(film_file), "xfade", len(ledger.shots),
                                                    contact_sheet=sheet if sheet.is_file() else None)
            on_event(FilmKept(output=film_file, seconds=result.stitched.seconds))
            return  # same clips, same cuts: the film on disk is already this one
        on_event(FilmStitching(shots=len(ledger.shots)))
        started = time.monotonic()
        sheet_after = pieces is not None and pieces.contact_sheet
        if sheet_after:
            pieces.contact_sheet = False  # the film first; its contact sheet once it is on disk
        result.stitched = stitch_film(ledger.folder, made=pieces)  # the pieces fed along the way, if any
    except WanclipError as exc:
        result.note = f"film not stitched: {exc.message}" + (f" ({exc.hint})" if exc.hint else "")
        result.stitch_failed = True
        return
    except Exception as exc:  # noqa: BLE001 - the clips are safe; say what broke instead of a traceback
        result.note = (f"film not stitched: unexpected {type(exc).__name__}: {exc} (the clips are kept; "
                       "run `wanclip stitch --from` the film folder to try again, and report this as a bug)")
        result.stitch_failed = True
        return
    if result.stitched.notes:  # e.g. the pieces could not be joined and one graph made the film
        result.note = "; ".join(result.stitched.notes)
    ledger.film["stitched"] = key
    ledger.film["stitch_seconds"] = round(time.monotonic() - started, 3)
    ledger.save()
    on_event(FilmStitched(output=result.stitched.output, seconds=result.stitched.seconds))
    if sheet_after and result.stitched.contact_sheet is None:
        try:
            result.stitched.contact_sheet = pieces.write_sheet()
        except Exception as exc:  # noqa: BLE001 - the film is made; a missing sheet is only a note
            result.note = "; ".join(filter(None, [result.note, f"no contact sheet: {exc}"]))
