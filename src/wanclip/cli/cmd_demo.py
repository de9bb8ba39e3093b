"""`wanclip demo`: the whole pipeline on a simulated ComfyUI, no GPU needed."""

from __future__ import annotations

import tempfile
from pathlib import Path

import typer

from wanclip.cli.base import app, console, handle_errors
from wanclip.cli.rendering import run_render
from wanclip.plan import plan_film, shipped_path
from wanclip.render import RenderOptions


@app.command("demo")
def demo_command(
    out: Path = typer.Option(None, "--out", help="Film folder (default out/<film>, as `wanclip render`)."),
    shots_file: Path = typer.Option(None, "--shots", help="Shots file to render (default: the 12-shot "
                                    "tomato-and-egg film)."),
    load_seconds: float = typer.Option(2.0, "--load-seconds", help="Simulated model load on the first shot."),
    step_seconds: float = typer.Option(0.25, "--step-seconds", help="Simulated seconds per sampler step."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON event per line."),
) -> None:
    """Render the example film on a simulated ComfyUI started in-process, then stitch it.

    The simulator speaks ComfyUI's real protocol and writes real mp4 test-card clips (each shows
    its prompt and seed), so this runs the same code path as `wanclip render` on any laptop.
    """
    from wanclip.sim import serve_in_thread

    with handle_errors():
        plan = plan_film(shots_file or shipped_path("shots", "tomato_egg.yaml"), out=out)
    with tempfile.TemporaryDirectory(prefix="wanclip-sim-") as comfy:
        sim = serve_in_thread(Path(comfy) / "output", load_seconds=load_seconds, step_seconds=step_seconds)
        try:
            if not as_json:
                console.print(f"simulated ComfyUI on {sim.url}; rendering {plan.film.title} "
                              f"({len(plan.shots)} shots) into {plan.out_dir}")
            result = run_render(plan, RenderOptions(servers=[sim.url]), as_json)
        finally:
            sim.stop()
    if result.film and not as_json:
        console.print(f"\nyour film: {result.film.output}  ({result.film.seconds:.2f} s, "
                      f"{len(plan.shots)} shots)\ncontact sheet: {result.film.contact_sheet}")
    raise typer.Exit(result.exit_code)
