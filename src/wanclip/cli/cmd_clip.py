"""`wanclip clip`: one shot from a prompt, without writing a shots file."""

from __future__ import annotations

import zlib
from pathlib import Path

import typer
from pydantic import ValidationError

from wanclip.cli.base import OUTPUT, SERVERS, WHAT, app, handle_errors
from wanclip.cli.cmd_render import render_options
from wanclip.cli.rendering import run_render
from wanclip.errors import WanclipError
from wanclip.planning.names import clip_folder_name, clip_shot_name
from wanclip.planning.plan import plan_film
from wanclip.planning.shots import Film


@app.command("clip")
def clip_command(
    prompt: str = typer.Argument(..., metavar="PROMPT", show_default=False,
                                 help="What the clip shows (a visible action and a camera framing)."),
    seconds: float = typer.Option(None, "--seconds", metavar="SECONDS", rich_help_panel=WHAT,
                                  help="Length in seconds (5, 10, 30 ...; default 5)."),
    frames: int = typer.Option(None, "--frames", metavar="N", rich_help_panel=WHAT,
                               help="Length in frames (4n+1: 81, 161, 481)."),
    seed: int = typer.Option(None, "--seed", metavar="N", rich_help_panel=WHAT, help="Noise seed (default: "
                             "derived from the prompt, so a rerun resumes instead of rendering again)."),
    width: int = typer.Option(832, "--width", metavar="PIXELS", rich_help_panel=WHAT, help="Width, a multiple of 16."),
    height: int = typer.Option(480, "--height", metavar="PIXELS", rich_help_panel=WHAT,
                               help="Height, a multiple of 16."),
    server: list[str] = typer.Option(None, "--server", "-s", metavar="URL", rich_help_panel=SERVERS,
                                     help="ComfyUI URL; repeat (or comma-separate) for several servers. Default: "
                                     "$WANCLIP_SERVER, else the servers of a running `wanclip serve`, else "
                                     "http://127.0.0.1:8188."),
    header: list[str] = typer.Option(None, "--header", "-H", metavar="'NAME: VALUE'", rich_help_panel=SERVERS,
                                     help="Extra HTTP header for a proxy (repeatable; also $WANCLIP_HEADERS)."),
    out: Path = typer.Option(None, "--out", metavar="FOLDER", rich_help_panel=OUTPUT,
                             help="Folder for the clip (default out/clip-<prompt>-<hash of the prompt, seed, size and length>: another seed or size gets its own folder)."),
    as_json: bool = typer.Option(False, "--json", rich_help_panel=OUTPUT, help="Print one JSON event per line."),
    quiet: bool = typer.Option(False, "--quiet", "-q", rich_help_panel=OUTPUT,
                               help="No progress: print only the summary (and any error)."),
) -> None:
    """Render one clip of PROMPT, no shots file needed.

    A single 5, 10 or 30 s clip (--seconds) into OUT/clips/, resumable like `wanclip render`; the
    last line gives the clip's absolute path (`clip` in --json's summary).

    Exit codes: 0 the clip was rendered, 1 it failed, 2 refused before any GPU work (bad
    --seconds/--frames/--width/--height, no server answered), 130 Ctrl-C, 143 SIGTERM.
    """
    with handle_errors(as_json):
        name = clip_shot_name(prompt)
        if seconds is not None and frames is not None:
            raise WanclipError("give --seconds or --frames, not both", "e.g. --seconds 10, or --frames 161")
        try:
            film = Film(title=f"clip {name}", seconds=seconds, frames=frames, width=width, height=height,
                        seed_base=0, shots=[{"name": name, "prompt": prompt,
                                             "seed": seed if seed is not None else zlib.crc32(prompt.encode())}])
        except ValidationError as exc:
            problems = [f"--{next(p for p in reversed(e['loc']) if isinstance(p, str))}: "
                        f"{e['msg'].removeprefix('Value error, ')}" for e in exc.errors()]
            raise WanclipError("; ".join(problems),
                               "frames are 4n+1 (81, 161, 481); width and height are multiples of 16") from exc
        folder = out or Path("out") / clip_folder_name(prompt, film.shot_seed(1), width, height, film.shot_frames(1))
        plan = plan_film(Path("wanclip-clip"), out=folder, film=film)
        options = render_options(server, header, stitch=False)
    result = run_render(plan, options, as_json, quiet, clip=True)
    raise typer.Exit(result.exit_code)
