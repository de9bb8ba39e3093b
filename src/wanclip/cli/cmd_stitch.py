"""`wanclip stitch`: join clips (or a rendered film folder) into one film."""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from wanclip import media
from wanclip.cli.base import OUTPUT, app, console, err_console, handle_errors, in_range, print_json
from wanclip.errors import EXIT_BAD_INPUT, WanclipError
from wanclip.ledger import LEDGER_NAME, film_lock
from wanclip.stitch import graph, join, run

X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                "placebo")


@app.command("stitch")
def stitch_command(
    clips: list[Path] = typer.Argument(None, metavar="CLIP...", help="Clips to join, in this order (or use --from FILM_DIR).",
                                       show_default=False),
    from_dir: Path = typer.Option(None, "--from", metavar="FILM_DIR", rich_help_panel="What to join", help="A rendered film folder (out/<film>): clips, order "
                                  "and each cut's transition come from its ledger.json.", show_default=False),
    output: Path = typer.Option(None, "-o", "--output", metavar="FILE", rich_help_panel=OUTPUT, help="Film to write. Default: film.mp4 in the film "
                                "folder with --from, else film.mp4 next to the first clip.", show_default=False),
    mode: str = typer.Option("xfade", "--mode", metavar="xfade|concat", rich_help_panel="Cuts", help="xfade: one filter graph with a transition at every "
                             "cut. concat: hard cuts, stream copy when the clips match (else re-encoded)."),
    transition: str = typer.Option(None, "--transition", metavar="NAME", rich_help_panel="Cuts", help="Transition for every cut: any xfade name "
                                   "(fade, wipeleft, ...) or `cut`. Default: the ledger's, else fade.",
                                   show_default=False),
    duration: float = typer.Option(None, "--duration", metavar="SECONDS", rich_help_panel="Cuts", help="Transition length in seconds for every cut. "
                                   "Default: the ledger's, else 0.3.", show_default=False),
    crf: int = typer.Option(19, "--crf", metavar="N", callback=in_range(0, 51), rich_help_panel="Encoding",
                            help="x264 quality, 0 to 51 (lower is better and bigger)."),
    preset: str = typer.Option("fast", "--preset", metavar="NAME", rich_help_panel="Encoding",
                               help=f"x264 preset: {', '.join(X264_PRESETS)}."),
    audio: Path = typer.Option(None, "--audio", metavar="FILE", rich_help_panel="Encoding", help="A music file (mp3, m4a, wav, ...) under the film: "
                               "trimmed to the film's length (padded with silence if the music is shorter), "
                               "faded out over the last 1.5 s. The clips' own audio is not used.",
                               show_default=False),
    contact_sheet: bool = typer.Option(True, "--contact-sheet/--no-contact-sheet", rich_help_panel=OUTPUT,
                                       help="Write a contact sheet, a row per shot: contact_sheet.png in a film folder, else FILM.contact_sheet.png beside -o FILM.mp4 (a file of that name wanclip did not make is never replaced)."),
    skip_missing: bool = typer.Option(False, "--skip-missing", rich_help_panel="What to join", help="With --from: stitch the shots that are "
                                      "done and leave out the rest (default: refuse, naming them)."),
    pieces: bool = typer.Option(True, "--pieces/--no-pieces", rich_help_panel="Cuts", help="With --from and --mode xfade (no --audio): "
                                "join the film from its pieces in out/<film>/pieces/ (one per shot body and "
                                "per transition, reusing those the render or an earlier stitch made), by "
                                "stream copy; --no-pieces encodes the whole film in one ffmpeg graph. Same "
                                "frames either way."),
    as_json: bool = typer.Option(False, "--json", rich_help_panel=OUTPUT, help="Print one JSON object measured from the written film."),
    quiet: bool = typer.Option(False, "--quiet", "-q", rich_help_panel=OUTPUT, help="No progress line: print only what was written."),
) -> None:
    """Join clips (or a rendered film folder) into one film.

    Crossfades in one ffmpeg graph (--mode xfade), or stream-copied hard cuts (--mode concat).

    The film is written to FILM.part and renamed when it measures right; a missing or corrupt
    clip is named before ffmpeg starts, and the output may not be one of the inputs. With --from,
    a clip you changed since it was rendered is used as your version (as render does), the take
    the film uses is joined, and no render of that folder may run.

    Exit codes: 0 the film was written, 1 stitching failed (a clip missing or corrupt, or ffmpeg
    failed), 2 bad input, refused before ffmpeg starts (the options: an unknown
    --transition or --preset, a transition longer than a clip, --audio without sound; no film
    folder, a ledger clip outside it, the output is an input, a film.mp4 beside the clips that no
    -o named), 130 Ctrl-C, 143 SIGTERM.
    """
    with handle_errors(as_json=as_json), _progress(enabled=not as_json and not quiet) as on_progress:
        result = _run(clips or [], from_dir, output, mode, transition, duration, crf, preset, audio,
                      contact_sheet, skip_missing, on_progress, pieces)
    if as_json:
        print_json({k: v for k, v in result.to_json().items()
                    if k in ("output", "mode", "clips", "seconds", "frames", "width", "height", "fps")})
        return
    console.print(f"wrote {result.output}: {graph.counted(result.clips, 'clip')}, {result.frames} frames, "
                  f"{result.seconds:.4g} s, {result.width}x{result.height} @ {result.fps:g} fps ({result.mode})")
    if result.contact_sheet:
        console.print(f"contact sheet: {result.contact_sheet}")
    for note in result.notes:
        console.print(f"note: {note}")


@contextmanager
def _progress(enabled: bool) -> Iterator[run.OnProgress | None]:
    """A progress line (frames written of the film's total) on a terminal; nothing otherwise."""
    if not enabled or not err_console.is_terminal:
        yield None
        return
    with Progress(TextColumn("stitching"), BarColumn(), MofNCompleteColumn(), TextColumn("frames"),
                  TimeRemainingColumn(), console=err_console, transient=True) as progress:
        task = progress.add_task("stitch", total=None)
        yield lambda done, total: progress.update(task, completed=done, total=total)


def _run(clips, from_dir, output, mode, transition, duration, crf, preset, audio, contact_sheet,
         skip_missing, on_progress, pieces=True) -> run.StitchResult:
    if mode not in graph.MODES:
        raise WanclipError(f"unknown --mode {mode!r}", f"use one of: {', '.join(graph.MODES)}")
    if bool(clips) == bool(from_dir):
        raise WanclipError("give either clips or --from FILM_DIR (not both, not neither)",
                           "e.g. `wanclip stitch --from out/myfilm` or `wanclip stitch a.mp4 b.mp4`")
    if duration is not None and duration <= 0:
        raise WanclipError(f"--duration must be positive, got {duration:g}", "use `--transition cut` for hard cuts")
    if preset not in X264_PRESETS:
        close = difflib.get_close_matches(preset, X264_PRESETS, n=2, cutoff=0.6)
        guess = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
        raise WanclipError(f"unknown --preset {preset!r}{guess}", f"x264's presets: {', '.join(X264_PRESETS)}")
    if transition is not None and transition != graph.HARD_CUT:  # named now, not after the clips are read
        run.check_transitions([graph.Cut(transition, 1.0)], media.ffmpeg_exe(), "--transition")
    if from_dir:
        if not from_dir.is_dir():
            raise WanclipError(f"no film folder at {from_dir}",
                               "--from takes the folder `wanclip render` wrote (out/<film>, with ledger.json)")
        if not (from_dir / LEDGER_NAME).is_file():  # before the lock: nothing is written in a folder not ours
            raise WanclipError(f"{from_dir} is not a film folder: it has no {LEDGER_NAME}",
                               "--from takes the folder `wanclip render` wrote (out/<film>, with ledger.json)")
        try:  # the lock keeps a render from replacing clips while they are read (and vice versa)
            with film_lock(from_dir, "stitch"):
                return join.stitch_film(from_dir, output, mode, contact_sheet, audio, crf, preset,
                                        skip_missing, transition, duration, on_progress, pieces)
        except OSError as exc:  # the lock file (stitch_film's own are StitchErrors already)
            raise run.write_failure(exc, from_dir / graph.FILM_NAME) from exc
    kind = transition or graph.DEFAULT_TRANSITION
    seconds = 0.0 if kind == graph.HARD_CUT else (duration or graph.DEFAULT_DURATION)
    cuts = [graph.Cut(kind, seconds)] * (len(clips) - 1)
    target = output or clips[0].parent / graph.FILM_NAME
    if output is None and (target.exists() or target.is_symlink()):  # not named by the user: never replaced
        raise WanclipError(f"{target} already exists, and no -o named it: wanclip replaces only the output you name",
                           f"give the film a name with -o (e.g. -o {target.with_name('joined.mp4')}), or -o {target} "
                           "to replace that file", exit_code=EXIT_BAD_INPUT)
    return join.stitch(clips, target, mode, cuts, crf, preset, audio, contact_sheet, on_progress=on_progress)

