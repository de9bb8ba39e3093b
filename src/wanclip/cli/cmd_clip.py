"""`wanclip clip`: one shot from a prompt, without writing a shots file."""

from __future__ import annotations

import zlib
from pathlib import Path

import typer
from pydantic import ValidationError

from wanclip.cli.base import app, handle_errors
from wanclip.cli.cmd_render import render_options
from wanclip.cli.rendering import run_render
from wanclip.errors import WanclipError
from wanclip.plan import plan_film
from wanclip.shots import Film, slugify


@app.command("clip")
def clip_command(
    prompt: str = typer.Argument(..., help="What the clip shows (a visible action and a camera framing)."),
    seconds: float = typer.Option(None, "--seconds", help="Length in seconds (5, 10, 30 ...; default 5)."),
    frames: int = typer.Option(None, "--frames", help="Length in frames (4n+1: 81, 161, 481)."),
    seed: int = typer.Option(None, "--seed", help="Noise seed (default: derived from the prompt, so a rerun "
                             "resumes instead of rendering again)."),
    out: Path = typer.Option(None, "--out", help="Folder for the clip (default out/clip-<prompt>)."),
    server: list[str] = typer.Option(None, "--server", "-s", metavar="URL", help="ComfyUI URL (default $WANCLIP_SERVER, "
                                     "else http://127.0.0.1:8188)."),
    header: list[str] = typer.Option(None, "--header", "-H", metavar="'NAME: VALUE'", help="Extra HTTP header 'Name: value'."),
    width: int = typer.Option(832, "--width", help="Width, a multiple of 16."),
    height: int = typer.Option(480, "--height", help="Height, a multiple of 16."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON event per line."),
) -> None:
    """Render one clip of PROMPT (the 5/10/30 s single clips) into OUT/clips/."""
    with handle_errors():
        name = slugify(prompt)[:40].strip("-") or "clip"
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
        plan = plan_film(Path("wanclip-clip"), out=out or Path("out") / f"clip-{name}", film=film)
        options = render_options(server, header, stitch=False)
    result = run_render(plan, options, as_json)
    raise typer.Exit(result.exit_code)
