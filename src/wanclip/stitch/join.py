"""Joining clips into the film: ``stitch()`` for clips named on the command line, ``stitch_film()``
for a rendered film folder (its clips, order and cuts read from the render ledger).

This is the one place that chooses between the film's pieces (``stitch.pieces``) and the one
graph (``stitch.graph`` run by ``stitch.run``); see ``stitch_film``.
"""

from __future__ import annotations

import re
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path

from wanclip import media
from wanclip.errors import EXIT_BAD_INPUT, StitchError
from wanclip.files import sha256_file
from wanclip.ledger import inside as ledger_inside
from wanclip.ledger import load_ledger
from wanclip.media import ClipInfo
from wanclip.stitch.graph import DEFAULT_DURATION, DEFAULT_TRANSITION, FILM_NAME, HARD_CUT, Cut, plan_stitch
from wanclip.stitch.layout import Encoder, Unsupported
from wanclip.stitch.pieces import PIECES_DIR, FilmPieces
from wanclip.stitch.pieces import prune as prune_pieces
from wanclip.stitch.run import (
    OnProgress,
    StitchResult,
    check_not_an_input,
    check_transitions,
    run_stitch,
    write_failure,
)


def stitch(clips: list[Path], output: Path, mode: str = "xfade", cuts: list[Cut] | None = None,
           crf: int = 19, preset: str = "fast", audio: Path | None = None, contact_sheet: bool = True,
           names: list[str] | None = None, on_progress: OnProgress | None = None) -> StitchResult:
    """Probe the clips (naming any missing or corrupt one before ffmpeg starts), plan, run."""
    if audio is not None:
        check_audio(Path(audio))
    check_not_an_input(Path(output), [*clips, *([audio] if audio is not None else [])])
    infos = [media.probe(path) for path in clips]
    exe = media.ffmpeg_exe()
    if mode == "xfade" and cuts:
        check_transitions(cuts, exe)
    plan = plan_stitch(infos, output, mode, cuts, crf, preset, audio, exe, names)
    result = run_stitch(plan, on_progress)
    if contact_sheet:
        result.contact_sheet = _contact_sheet(names or [p.stem for p in clips], infos, Path(output), result.notes)
    return result


_AUDIO_STREAM = re.compile(r"^\s*Stream #0:\d+\S*: Audio: ", re.M)


def check_audio(path: Path) -> None:
    """``--audio`` is a file with sound in it, asked of ffmpeg before the film is encoded: a text
    file or a silent video otherwise failed minutes later with a page of ffmpeg's output."""
    hint = "--audio takes a music file (mp3, m4a, wav, ...) or a video with sound, to lay under the film"
    if not path.is_file():
        raise StitchError(f"music file not found: {path}", f"{hint}; check its path", exit_code=EXIT_BAD_INPUT)
    said = media.spawn([media.ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)], f"reading {path}",
                       timeout=120).stderr.decode("utf-8", "replace")
    if "Input #0" not in said:
        raise StitchError(f"{path} is not an audio or video file", hint, exit_code=EXIT_BAD_INPUT)
    if not _AUDIO_STREAM.search(said.split("Stream mapping:")[0]):
        raise StitchError(f"{path} has no audio stream", hint, exit_code=EXIT_BAD_INPUT)


def _contact_sheet(labels: list[str], infos: list[ClipInfo], output: Path, notes: list[str]) -> Path | None:
    """The sheet beside the film (``contact_sheet.sheet_path``); None, with a note, when a file wanclip
    did not make has its name."""
    from wanclip.stitch.contact_sheet import sheet_blocked, sheet_path, write_contact_sheet  # PIL: once made

    path = sheet_path(output)
    blocked = sheet_blocked(path)
    if blocked:
        notes.append(blocked)
        return None
    try:
        return write_contact_sheet(list(zip(labels, infos, strict=True)), path.parent, file_name=path.name)
    except OSError as exc:
        raise write_failure(exc, path) from exc


@dataclass
class FilmClips:
    """The clips of a rendered film, in order, with the cut into each one after the first."""

    names: list[str]
    paths: list[Path]
    cuts: list[Cut]
    skipped: list[str]
    notes: list[str] = field(default_factory=list)
    shas: list[str | None] = field(default_factory=list)  # the ledger's clip_sha256 of each (checked)

    def clip_shas(self) -> list[str]:
        """Each clip's sha256: the ledger's (checked against the file), else hashed now."""
        return [sha or sha256_file(path) for sha, path in zip(self.shas or [None] * len(self.paths), self.paths,
                                                              strict=True)]


def film_clips(film_dir: Path, skip_missing: bool = False, transition: str | None = None,
               duration: float | None = None) -> FilmClips:
    """Read the ledger: shots with status ``done``, their clips and the cut into each.

    A shot that ``continues`` the shot before it gets a hard cut that drops its first frame; a
    ledger with any other transition into it is refused. ``transition`` (``--transition``)
    overrides every other cut: those into continued shots stay hard cuts, with a note.
    """
    ledger = load_ledger(film_dir)
    done = [s for s in ledger.shots if ledger.film_take(s) is not None]  # the take the film uses (or none)
    skipped = [s.name for s in ledger.shots if s not in done]
    if skipped and not skip_missing:
        raise StitchError(f"shots not rendered yet in {ledger.folder}: {', '.join(skipped)}",
                          "finish them with `wanclip render`, or pass --skip-missing to stitch without them")
    if not done:
        raise StitchError(f"no rendered shots in {ledger.folder}", "render the film first with `wanclip render`")
    cuts, kept, notes, shas = [], [], [], []
    for record in done:
        _check_clip_inside(ledger, record, ledger.film_take(record)["clip"])
        shas.append(_clip_sha256(ledger, record, notes))
        if ledger.post_wanted(record):
            notes.append(f"shot {record.name}: its post clip ({record.post_key}) is not made yet, so the film uses "
                         "its rendered clip; `wanclip render` makes it (no shot is sampled again)")
    for before, record in zip(done, done[1:], strict=False):
        if not record.continues:
            cuts.append(ledger_cut(record.transition, transition, duration))
        elif record.continues != before.name:  # its predecessor is left out: no frame repeats
            cuts.append(ledger_cut(record.transition, transition, duration))
            notes.append(f"shot {record.name} continues {record.continues}, which is left out: its first "
                         "frame stays")
        else:
            cuts.append(_chain_cut(ledger, record))
            if transition is not None and transition != HARD_CUT:
                kept.append(record.name)
    if kept:
        notes.append(f"kept the hard cuts into continued shots ({', '.join(kept)}): --transition {transition} "
                     "joins the other shots")
    return FilmClips([s.name for s in done], [ledger.film_clip(s) for s in done], cuts, skipped, notes, shas)


def _chain_cut(ledger, record) -> Cut:
    """The cut into a shot that starts on its predecessor's last frame: hard, dropping that frame."""
    kind = (record.transition or {}).get("type") or HARD_CUT
    if kind != HARD_CUT:
        shots = ledger.film.get("shots_file") or "SHOTS.yaml"
        raise StitchError(f"shot {record.name} continues {record.continues}, but the ledger "
                          f"{ledger.path} records a {kind} into it: a continued shot starts on its "
                          "predecessor's last frame, so the cut into it must be a hard cut",
                          f"set `transition: cut` on shot {record.name} (or leave its transition out) and "
                          f"run `wanclip render {shlex.quote(shots)}` again")
    return Cut(HARD_CUT, 0.0, continues=True)


def _check_clip_inside(ledger, record, clip_value) -> None:
    """The ledger's clip path stays in the film folder (``ledger.inside``): a ledger edited to say
    ``../../etc/passwd`` or an absolute path is refused, naming the shot (exit 2)."""
    inside = ledger_inside(ledger.folder, clip_value) is not None
    if not inside:
        shots = ledger.film.get("shots_file") or "SHOTS.yaml"
        raise StitchError(f"the clip of shot {record.name} in {ledger.path} is {clip_value!r}, outside the film "
                          f"folder {ledger.folder}: wanclip only stitches clips it rendered into clips/",
                          f"restore the ledger, or re-render the shot with `wanclip render {shlex.quote(shots)} "
                          f"--only {shlex.quote(record.name)}`", exit_code=EXIT_BAD_INPUT)


def _clip_sha256(ledger, record, notes: list[str]) -> str | None:
    """The sha256 of the clip the film uses, as it is on disk now (the pieces are named by it). A
    clip changed since the render recorded it is the user's version (a grade, a trim): it is used,
    as `wanclip render` uses it, with a note; the ledger is left to the next render, which records
    it. A missing clip is named by the probe."""
    path, expected = ledger.film_clip(record), ledger.film_clip_sha256(record)
    if not path.is_file():
        return expected
    try:
        actual = sha256_file(path)
    except OSError as exc:
        raise StitchError(f"cannot read the clip of shot {record.name} ({path}): {exc.strerror}",
                          "check the film folder's permissions") from exc
    if expected and actual != expected:
        notes.append(f"clip {record.name} changed since it was rendered: using your version ({path.name})")
    return actual


def ledger_cut(recorded: dict | None, transition: str | None, duration: float | None) -> Cut:
    """The shot's own transition; --transition / --duration override every cut of the film."""
    recorded = recorded or {}
    kind = transition or recorded.get("type") or DEFAULT_TRANSITION
    seconds = duration if duration is not None else recorded.get("duration", DEFAULT_DURATION)
    return Cut(kind, 0.0 if kind == HARD_CUT else float(seconds))


def stitch_film(film_dir: Path, output: Path | None = None, mode: str = "xfade", contact_sheet: bool = True,
                audio: Path | None = None, crf: int = 19, preset: str = "fast", skip_missing: bool = False,
                transition: str | None = None, duration: float | None = None,
                on_progress: OnProgress | None = None, pieces: bool = True,
                made: FilmPieces | None = None) -> StitchResult:
    """Stitch a rendered film folder into ``<film_dir>/film.mp4`` (what `wanclip render` calls last).

    Each clip must still hash to the ledger's ``clip_sha256``. The caller holds the folder's
    ``film_lock`` (render does; `wanclip stitch --from` takes it as ``stitch``).

    **Pieces or one graph.** An ``xfade`` film without music is joined from its pieces
    (``wanclip.stitch.pieces``, in ``<film_dir>/pieces/``): a body per shot and a piece per transition,
    each named by the clips and settings it is made from. Those a render (or an earlier stitch)
    made are reused, the rest are encoded now, and the film is their stream copy: the same
    frames and frame count as the one graph, and re-stitching after one shot was re-rendered
    encodes only that shot's body and its two transitions. The one graph (``pieces=False``,
    `--no-pieces`) stays: for comparison, for ``--mode concat`` and ``--audio`` (music is laid
    under the whole film in one pass), and as the fallback when the clips differ in size or
    frame rate (the one graph's ``fps`` filter converts and rounds those; cut into pieces their
    frame counts could come out a frame apart: ``FilmPieces.finish`` raises ``Unsupported``).
    ``made``: the ``FilmPieces`` a render fed while it rendered, joined instead of new ones. Pieces
    that cannot be joined fall back to the one graph, with a note.
    """
    film = film_clips(Path(film_dir), skip_missing, transition, duration)
    output = Path(output) if output else Path(film_dir) / FILM_NAME
    unused = None
    if made is not None and (made.cuts != film.cuts or made.names != film.names):
        unused, made = made, None  # fed other cuts than the ledger now says: its pieces on disk are reused by name
    result, fallback = None, None
    if pieces and mode == "xfade" and audio is None:
        try:
            result = made.finish(on_progress) if made is not None else \
                _stitch_pieces(Path(film_dir), film, output, crf, preset, contact_sheet, on_progress)
        except Unsupported as exc:  # clips the pieces cannot hold the one graph's frames for
            fallback = f"joined in one graph, not from pieces: {exc}"
        except StitchError as exc:  # the film must come out: the one graph needs no stream copy
            if exc.exit_code == EXIT_BAD_INPUT:  # the one graph would refuse it too, in the same words
                raise
            fallback = f"joining from pieces failed ({exc.message.splitlines()[0]}); stitched in one graph"
    if result is None:
        sheet = made.contact_sheet if made is not None else contact_sheet  # a render draws it after the film
        result = stitch(film.paths, output, mode, film.cuts, crf, preset, audio, sheet, film.names, on_progress)
        if made is not None:
            made.film_written_at = time.monotonic()
        if fallback:
            result.notes.append(fallback)
    result.notes.extend(film.notes)
    if film.skipped:
        result.notes.append(f"left out shots not rendered: {', '.join(film.skipped)}")
    if (Path(film_dir) / PIECES_DIR).is_dir():
        try:  # a render's own pieces object, unused, may still be encoding: its .part files stay
            prune_pieces(Path(film_dir), film.clip_shas(), parts=unused is None)
        except OSError:  # tidying only: the film is made
            pass
    return result


def _stitch_pieces(film_dir: Path, film: FilmClips, output: Path, crf: int, preset: str, contact_sheet: bool,
                   on_progress: OnProgress | None) -> StitchResult:
    check_not_an_input(output, film.paths)
    infos = [media.probe(path) for path in film.paths]  # names a missing or corrupt clip first
    with FilmPieces(film_dir, film.cuts, Encoder(crf, preset), names=film.names, output=output,
                    contact_sheet=contact_sheet) as pieces:
        for position, (path, info) in enumerate(zip(film.paths, infos, strict=True)):
            pieces.clip_known(position, path, info)
        return pieces.finish(on_progress)
