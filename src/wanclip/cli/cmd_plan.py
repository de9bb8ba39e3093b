"""`wanclip plan`: validate a shots file and build every shot's graph, with no server."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from wanclip.cli.base import app, console, counted, err_console, handle_errors, print_json, shown
from wanclip.errors import EXIT_BAD_INPUT, LocalIOError
from wanclip.planning.plan import Plan, plan_film


@app.command("plan")
def plan_command(
    shots_file: Path = typer.Argument(..., metavar="SHOTS_FILE", show_default=False, help="The shots file (YAML), e.g. shots/tomato_egg.yaml, or the "
                                      "name of a shipped example (`wanclip examples`), e.g. tomato_egg."),
    out: Path = typer.Option(None, "--out", metavar="FOLDER", help="Film folder; graphs go to OUT/graphs/. Default: the film's `out`."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of the table."),
) -> None:
    """Dry run: validate SHOTS_FILE and build every shot's graph.

    Prints the plan and writes each shot's injected API graph to OUT/graphs/NN_name.json. Needs
    no server.

    Exit codes: 0 planned, 2 refused (the message names the file, line and field; or the film
    folder cannot be written), 130 Ctrl-C, 143 SIGTERM.
    """
    with handle_errors(as_json=as_json):
        plan = plan_film(shots_file, out=out)
        try:
            graphs = plan.write_graphs()
        except LocalIOError as exc:  # a bad --out (or `out:`) is bad input here: nothing else is written
            raise LocalIOError(exc.message, "choose another --out (or `out:` in the shots file), in a folder "
                               "you can write", path=exc.path, errno=exc.errno, exit_code=EXIT_BAD_INPUT) from exc
    if as_json:
        print_json(plan.to_json())
    else:
        render_plan(plan, graphs)
    for warning in plan.warnings:
        err_console.print(f"[yellow]warning:[/] {escape(shown(warning))}", markup=True)


def render_plan(plan: Plan, graphs: Path) -> None:
    film = plan.film
    table = Table(title=Text(f"{shown(film.title)} — {counted(len(plan.shots), 'shot')}, "
                             f"{plan.seconds:.2f} s after transitions"))
    for column in ("#", "name", "seed", "frames", "seconds", "size"):
        table.add_column(column, justify="left" if column in ("name", "size") else "right", no_wrap=True)
    table.add_column("prompt", no_wrap=True)
    fixed = sum(len(s.name) + len(str(s.seed)) for s in plan.shots[:1]) + 52
    room = max(16, min(60, console.width - fixed - max(len(s.name) for s in plan.shots)))
    for shot in plan.shots:
        prompt = shown(shot.prompt)
        excerpt = prompt if len(prompt) <= room else prompt[:room - 1] + "…"
        table.add_row(str(shot.index), shot.name, str(shot.seed), str(shot.frames), f"{shot.seconds:.2f}",
                      f"{shot.width}x{shot.height}", Text(excerpt))
    console.print(table)
    total = sum(s.seconds for s in plan.shots)
    repeated = sum(s.frames - s.kept_frames for s in plan.shots) / film.fps
    formula = film.seconds_after_transitions(whole_frames=False)
    frames = round(plan.seconds * film.fps)
    rounded = (f"; each transition starts on a whole frame, so the film is {frames} frames = {plan.seconds:.2f} s"
               if abs(formula - plan.seconds) > 1e-9 else "")
    console.print(f"film: {total:.2f} s of clips − {total - formula - repeated:.2f} s of transitions"
                  + (f" − {repeated:.2f} s of repeated first frames" if repeated else "")
                  + f" = {formula:.2f} s{rounded} at {film.fps:g} fps")
    render_chains(plan)
    console.print(Text(f"workflow: {shown(plan.workflow)}"))
    if plan.i2v_workflow:
        console.print(Text(f"image-to-video workflow: {shown(plan.i2v_workflow)}"))
    console.print(Text(f"graphs written to {shown(graphs)}/"))


def render_chains(plan: Plan) -> None:
    """Each chain (``1 → 2 → 3``) and what each link waits for; each keyframe and where it goes."""
    if plan.chains:
        console.print("chains (a link starts from the last frame of the one before and joins it with a hard "
                      "cut that drops that repeated frame):", highlight=False)
    for chain in plan.chains:
        console.print(f"  {' → '.join(str(s.index) for s in chain)}  ({' → '.join(s.name for s in chain)})",
                      highlight=False)
        for shot in chain[1:]:
            console.print(f"    {shot.index} {shot.name} waits for {shot.continues}'s clip", highlight=False)
    for shot in plan.shots:
        ends = [f"{'starts from' if role == 'start_image' else 'ends on'} {path.name}"
                for role, path in shot.keyframes.items()]
        if ends:
            console.print(Text(f"keyframes: {shot.index} {shot.name} {shown(' and '.join(ends))}"))
