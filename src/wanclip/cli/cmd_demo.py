"""`wanclip demo`: the whole pipeline on a simulated ComfyUI, no GPU needed."""

from __future__ import annotations

import tempfile
from pathlib import Path

import typer

from wanclip.cli.base import OUTPUT, TIMING, WHAT, app, console, counted, handle_errors, import_sim
from wanclip.cli.rendering import run_render
from wanclip.planning.plan import plan_film, shipped_path
from wanclip.render.loop import RenderOptions


@app.command("demo")
def demo_command(
    shots_file: Path = typer.Option(None, "--shots", metavar="SHOTS_FILE", rich_help_panel=WHAT,
                                    help="Shots file to render, or an example's name (default: the 12-shot "
                                    "tomato-and-egg film)."),
    load_seconds: float = typer.Option(2.0, "--load-seconds", metavar="SECONDS", rich_help_panel=TIMING,
                                       help="Simulated model load on the first shot."),
    step_seconds: float = typer.Option(0.25, "--step-seconds", metavar="SECONDS", rich_help_panel=TIMING,
                                       help="Simulated seconds per sampler step."),
    out: Path = typer.Option(None, "--out", metavar="FOLDER", rich_help_panel=OUTPUT,
                             help="Film folder (default out/<film>, as `wanclip render`)."),
    as_json: bool = typer.Option(False, "--json", rich_help_panel=OUTPUT, help="Print one JSON event per line."),
    quiet: bool = typer.Option(False, "--quiet", "-q", rich_help_panel=OUTPUT,
                               help="No progress: print only the summary and where the film is."),
) -> None:
    """Render an example film on a simulated ComfyUI: no GPU needed.

    The simulator is started in-process; it speaks ComfyUI's real protocol and writes real mp4
    test-card clips (each shows its prompt and seed), so this runs the same code path as
    `wanclip render` on any laptop.

    Exit codes: 0 the film was made, 1 some shots failed, 2 refused before rendering (a bad --shots
    or --out, the simulator's extra not installed), 130 Ctrl-C, 143 SIGTERM.
    """
    with handle_errors(as_json):
        serve_in_thread = import_sim().serve_in_thread
        plan = plan_film(shots_file or shipped_path("shots", "tomato_egg.yaml"), out=out)
    with tempfile.TemporaryDirectory(prefix="wanclip-sim-") as comfy:
        sim = serve_in_thread(Path(comfy) / "output", load_seconds=load_seconds, step_seconds=step_seconds)
        try:
            if not as_json and not quiet:
                console.print(f"simulated ComfyUI on {sim.url}; rendering {plan.film.title} "
                              f"({counted(len(plan.shots), 'shot')}) into {plan.out_dir}")
            result = run_render(plan, RenderOptions(servers=[sim.url]), as_json, quiet)
        finally:
            sim.stop()
    if result.stitched and not as_json:
        console.print(f"\nyour film: {result.stitched.output}  ({result.stitched.seconds:.2f} s, "
                      f"{counted(len(plan.shots), 'shot')})\ncontact sheet: {result.stitched.contact_sheet}")
    raise typer.Exit(result.exit_code)
