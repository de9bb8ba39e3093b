"""`wanclip plan`: validate a shots file and build every shot's graph, with no server."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from wanclip.cli.base import WHAT, app, console, counted, err_console, handle_errors, print_json, shown
from wanclip.errors import EXIT_BAD_INPUT, LocalIOError
from wanclip.planning.plan import Plan, plan_film
from wanclip.render.resume import Decision, merge_ledger


@app.command("plan")
def plan_command(
    shots_file: Path = typer.Argument(..., metavar="SHOTS_FILE", show_default=False, help="The shots file (YAML), e.g. shots/tomato_egg.yaml, or the "
                                      "name of a shipped example (`wanclip examples`), e.g. tomato_egg."),
    out: Path = typer.Option(None, "--out", metavar="FOLDER", help="Film folder; graphs go to OUT/graphs/. Default: the film's `out`."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of the table."),
    reseed: list[str] = typer.Option(None, "--reseed", metavar="NAME", rich_help_panel=WHAT,
                                     help="Plan as `render --reseed NAME` would (repeatable)."),
    take: list[str] = typer.Option(None, "--take", metavar="NAME=N", rich_help_panel=WHAT,
                                   help="Plan as `render --take NAME=N` would (repeatable)."),
) -> None:
    """Dry run: validate SHOTS_FILE and build every shot's graph.

    Prints the plan, with every shot's seed and what `wanclip render` will do with it and why (done;
    will render: new shot, prompt changed, seed changed, reseed, clip missing...; your edited clip
    used; take N pinned), and writes each shot's injected API graph to OUT/graphs/NN_name.json.
    Needs no server.

    Exit codes: 0 planned, 2 refused (the message names the file, line and field; or the film
    folder cannot be written), 130 Ctrl-C, 143 SIGTERM.
    """
    from wanclip.cli.cmd_render import take_pins  # here: importing it first would list render before plan

    with handle_errors(as_json=as_json):
        plan = plan_film(shots_file, out=out, reseed=list(reseed or []), takes=take_pins(take))
        ledger, decisions = merge_ledger(plan)
        try:
            graphs = plan.write_graphs()
        except LocalIOError as exc:  # a bad --out (or `out:`) is bad input here: nothing else is written
            raise LocalIOError(exc.message, "choose another --out (or `out:` in the shots file), in a folder "
                               "you can write", path=exc.path, errno=exc.errno, exit_code=EXIT_BAD_INPUT) from exc
    if as_json:
        data = plan.to_json()
        for shot in data["shots"]:
            decision = decisions[shot["name"]]
            shot["action"], shot["reason"] = decision.action, decision.reason
            if shot["post"] is not None:
                shot["post"]["makes"] = ledger.post_wanted(ledger.shot(shot["name"]))
        print_json(data)
    else:
        render_plan(plan, graphs, decisions)
        render_posts(plan, ledger, decisions)
    for warning in plan.warnings:
        err_console.print(f"[yellow]warning:[/] {escape(shown(warning))}", markup=True)


def _will(decision: Decision) -> str:
    """The table's short word for what render will do with a shot."""
    return {"keep": "done", "edited": "yours", "render": "renders", "re-attach": "re-attach"}.get(
        decision.action, decision.reason.removesuffix(" pinned"))


def render_plan(plan: Plan, graphs: Path, decisions: dict[str, Decision]) -> None:
    film = plan.film
    table = Table(title=Text(f"{shown(film.title)} — {counted(len(plan.shots), 'shot')}, "
                             f"{plan.seconds:.2f} s after transitions"))
    posts = any(s.post for s in plan.shots)
    for column in ("#", "name", "seed", "frames", "seconds", "size", *(["post"] if posts else []), "render"):
        table.add_column(column, justify="left" if column in ("name", "size", "post", "render") else "right",
                         no_wrap=True)
    table.add_column("prompt", no_wrap=True)
    will = {name: _will(d) for name, d in decisions.items()}
    fixed = sum(len(s.name) + len(str(s.seed)) for s in plan.shots[:1]) + 55 + max(6, *map(len, will.values()))
    room = max(16, min(60, console.width - fixed - max(len(s.name) for s in plan.shots)))
    for shot in plan.shots:
        prompt = shown(shot.prompt)
        excerpt = prompt if len(prompt) <= room else prompt[:room - 1] + "…"
        post = [(f"{shot.post.frames}@{shot.post.fps:g}"
                 + (f" {shot.post.width}x{shot.post.height}" if shot.post.upscaling else "")
                 if shot.post else "none")] if posts else []
        table.add_row(str(shot.index), shot.name, str(shot.seed), str(shot.frames), f"{shot.seconds:.2f}",
                      f"{shot.width}x{shot.height}", *post, will[shot.name], Text(excerpt))
    console.print(table)
    render_decisions(plan, decisions)
    fps, m = film.out_fps, film.post.interpolate if film.post else 1
    total = sum(((s.frames - 1) * m + 1) / fps for s in plan.shots)
    repeated = sum(s.frames - s.kept_frames for s in plan.shots) / fps
    formula = film.seconds_after_transitions(whole_frames=False)
    frames = round(plan.seconds * fps)
    rounded = (f"; each transition starts on a whole frame, so the film is {frames} frames = {plan.seconds:.2f} s"
               if abs(formula - plan.seconds) > 1e-9 else "")
    console.print(f"film: {total:.2f} s of clips − {total - formula - repeated:.2f} s of transitions"
                  + (f" − {repeated:.2f} s of repeated first frames" if repeated else "")
                  + f" = {formula:.2f} s{rounded} at {fps:g} fps")
    if posts:
        width, height = film.out_size
        console.print(f"post: a second prompt per clip on the server "
                      f"{_post_words(film.post)}; the film is {width}x{height} at {fps:g} fps, and the rendered "
                      "clips stay beside their post clips (changing only `post:` renders no shot again)",
                      highlight=False)
        for shot in plan.shots:
            if (shot.post.key if shot.post else None) != (plan.shots[0].post.key if plan.shots[0].post else None):
                console.print(f"  shot {shot.name}: {shot.post.describe() if shot.post else 'no post step'} "
                              "(its own `post:`; the stitch fits it to the film's frame rate and size)",
                              highlight=False)
    render_chains(plan)
    console.print(Text(f"workflow: {shown(plan.workflow)}"))
    if plan.i2v_workflow:
        console.print(Text(f"image-to-video workflow: {shown(plan.i2v_workflow)}"))
    console.print(Text(f"graphs written to {shown(graphs)}/"))


def render_posts(plan: Plan, ledger, decisions: dict[str, Decision]) -> None:
    """Which post clips render will make, and why (a shot to render, new post settings, not made yet)."""
    todo = []
    for shot in plan.shots:
        record = ledger.shot(shot.name)
        if shot.post is None or not ledger.post_wanted(record):
            continue
        made = {p.get("key") for p in record.posts if isinstance(p, dict)}
        why = ("after it renders" if decisions[shot.name].renders else
               "post settings changed; the shot is not sampled again" if made else "not made yet")
        todo.append(f"{shot.name} ({why})")
    if todo:
        console.print(f"post clips to make: {', '.join(todo)}", highlight=False)
    elif any(s.post for s in plan.shots):
        console.print("post clips to make: none (every one is made)", highlight=False)


def _post_words(post) -> str:
    if post is None:
        return "for the shots that ask for it"
    size = post.upscale if isinstance(post.upscale, str) else f"x{float(post.upscale):g}"
    parts = ([f"upscales ({size})"] if post.upscale not in (1, 1.0) else []) + \
        ([f"interpolates x{post.interpolate} frames"] if post.interpolate > 1 else [])
    return " then ".join(parts)


def render_decisions(plan: Plan, decisions: dict[str, Decision]) -> None:
    """What render will do, in words: the shots it renders and why, each edited clip, each pinned take,
    and where each seed comes from when it is not seed_base + position."""
    todo = [s for s in plan.shots if decisions[s.name].renders]
    if todo:
        console.print(f"render will render {counted(len(todo), 'shot')}: "
                      + ", ".join(f"{s.name} ({decisions[s.name].reason})" for s in todo), highlight=False)
    else:
        console.print("render will render nothing: every shot is done", highlight=False)
    for shot in plan.shots:
        decision = decisions[shot.name]
        if decision.action in ("edited", "pinned"):
            console.print(decision.describe(shot.name) if decision.action == "edited" else
                          f"shot {shot.name}: the film uses {decision.reason}", highlight=False)
    moved = [f"{s.name} {s.seed} ({s.seed_source})" for s in plan.shots if s.seed != plan.film.seed_base + s.index]
    if moved:
        console.print(f"seeds other than seed_base + position: {', '.join(moved)}", highlight=False)


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
