"""The CLI side of a render, shared by `render`, `clip` and `demo`: progress, summary, exit code."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import typer

from wanclip.checks.graph import explain_rejection
from wanclip.cli import base
from wanclip.cli.base import handle_errors, print_json, shown
from wanclip.cli.progress import RenderView
from wanclip.errors import EXIT_BAD_INPUT, PromptRejected, WanclipError
from wanclip.film import FilmResult, run_film
from wanclip.planning.plan import Plan
from wanclip.render.loop import RenderOptions


def run_render(plan: Plan, options: RenderOptions, as_json: bool = False, quiet: bool = False,
               clip: bool = False) -> FilmResult:
    """Render with progress drawn (or JSON lines), print the summary; exits with the render's code.
    ``clip`` (`wanclip clip`): the summary ends with the clip's absolute path (``clip`` in --json)."""
    mode = "json" if as_json else "quiet" if quiet else "rich" if base.console.is_terminal else "plain"
    for warning in plan.warnings:
        from rich.markup import escape  # rich (the consoles too) only where it draws: not for --quiet, --json

        base.err_console.print(f"[yellow]warning:[/] {escape(shown(warning))}", markup=True)
    view = RenderView(mode, [(s.index, s.name, s.frames) for s in plan.shots
                             if not options.only or s.name in options.only], film_shots=len(plan.shots))
    with handle_errors(as_json), view:
        try:
            result = run_film(plan, options, view)
        except PromptRejected as exc:
            if as_json:
                print_json({"event": "error", "exit_code": EXIT_BAD_INPUT, "error": exc.message, "shot": exc.shot,
                            "node_errors": exc.node_errors, "hint": "nothing was rendered"})
            rejected(exc, servers=options.servers, headers=options.headers)
            raise typer.Exit(EXIT_BAD_INPUT) from exc
    summary(result, as_json, clip)
    return result


def clip_written(result: FilmResult) -> Path | None:
    """The absolute path of the first selected shot's clip, when it is done (`wanclip clip`'s one)."""
    for s in result.ledger.shots:
        if s.name in result.selected and s.status == "done" and s.clip:
            return (result.ledger.folder / s.clip).absolute()
    return None


def _object_info_of(server: str, servers: Sequence[str], headers: Mapping[str, str] | None):
    """(client, its ``/object_info`` reader) for the server that refused a prompt, reached as the
    render reached it; (None, None) when it does not answer (the table then shows what it sent)."""
    from wanclip.comfy.capabilities import object_info_for
    from wanclip.comfy.client import ComfyClient, split_credentials

    url = next((u for u in servers if split_credentials(u)[0] == server), server)  # its user:pass@, if any
    try:
        client = ComfyClient(url, headers=dict(headers or {}), timeout=10)
        return client, object_info_for(client)
    except WanclipError:
        return None, None


def _film_clip(result: FilmResult, record) -> str | None:
    """The clip the film uses for the shot, saying when it is the user's version or a pinned take."""
    used = result.ledger.film_take(record)
    if used is None:
        return record.clip
    post = result.ledger.post_clip(record)
    if post is not None:
        return f"{post['clip']} (post {post['key']}, from {used['clip']})"
    if result.ledger.post_wanted(record):
        error = (record.post or {}).get("error") or {}
        return f"{used['clip']} (post step failed: {error.get('message', 'not made')})"
    notes = [f"take {used['take']}" if record.use_take is not None else "",
             "your version" if used.get("edited_sha256") else ""]
    return used["clip"] + "".join(f" ({n})" for n in notes if n)


def summary(result: FilmResult, as_json: bool, clip: bool = False) -> None:
    shots = [s for s in result.ledger.shots if s.name in result.selected]
    written = clip_written(result) if clip else None
    if as_json:
        print_json({**result.to_json(), **({"clip": str(written)} if written else {})})
        return
    from rich.table import Table  # the summary's table is drawn at the end, not on the way to shot 1
    from rich.text import Text

    from wanclip.review.timings import describe, film_split

    console = base.console
    table = Table(title="render summary")
    for column in ("#", "shot", "status", "seconds", "server", "clip or error"):
        table.add_column(column)
    for s in shots:
        seconds = ((s.execution_success_ms or 0) - (s.execution_start_ms or 0)) / 1000
        detail = _film_clip(result, s) or \
            (f"{s.error.get('class') or ''} {s.error.get('message', '')}".strip() if s.error else "")
        table.add_row(str(s.index), s.name, s.status, f"{seconds:.1f}" if seconds > 0 else "",
                      (s.server or "").split("//")[-1], Text(shown(detail)))
    console.print(table)
    done = sum(s.status == "done" for s in shots)
    console.print(f"{done}/{len(shots)} shot{'s' if len(shots) != 1 else ''} done; ledger: {result.ledger.path}")
    missing = [record.name for record in shots if record.status == "done" and result.ledger.post_wanted(record)]
    if missing:
        console.print(f"post clips not made: {', '.join(missing)} (run the same command again: only their post "
                      "steps run)", highlight=False)
    if result.stitched:
        console.print(f"film: {result.stitched.output} ({result.stitched.seconds:.2f} s)")
    if result.note:
        console.print(Text(shown(result.note)))
    if result.page and result.page.is_file():
        console.print(f"storyboard: {result.page}")
    split = describe(film_split(result.ledger))
    if split:
        console.print(f"where the time went: {split}")
    background = result.background
    if background:
        clips, median = background
        console.print(f"encoded in the background by wanclip's node pack, off the GPU's path: {clips} "
                      f"clip{'s' if clips != 1 else ''}, {median:.1f} s each (median)")
    if written:
        console.print(Text(f"clip: {shown(written)}"))


def rejected(error: PromptRejected, object_info_for=None, servers: Sequence[str] = (),
             headers: Mapping[str, str] | None = None) -> None:
    """A 400 from ComfyUI as a table: node, class, input, received value, allowed values.

    Where the server left the allowed values out (``(list of length N)``), they come from its
    ``/object_info/{class}`` (``object_info_for``, else asked of the server that refused it, with
    the credentials of its URL in ``servers`` and the same ``headers`` as the render)."""
    client = None
    if object_info_for is None and error.server:
        client, object_info_for = _object_info_of(error.server, servers, headers)
    try:
        rows = explain_rejection(error.node_errors, object_info_for)
    finally:
        if client is not None:
            client.close()
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    err_console = base.err_console
    table = Table(title=f"ComfyUI refused shot {error.shot or ''}".strip())
    for column in ("node", "class", "input", "received", "allowed", "problem"):
        table.add_column(column, overflow="fold")
    for row in rows:
        allowed = ", ".join(row.allowed)
        if len(allowed) > 300:
            allowed = f"{allowed[:300]}… ({len(row.allowed)} in all)"
        problem = row.problem + (f"; did you mean {row.did_you_mean!r}?" if row.did_you_mean else "")
        table.add_row(*(Text(shown(cell)) for cell in (row.node, row.class_type, row.input,
                                                       repr(row.received) if row.has_received else "", allowed,
                                                       problem)))
    if table.row_count:
        err_console.print(table)
    top = error.error or {}
    details = f" ({top.get('details')})" if top.get("details") else ""
    err_console.print(f"[bold red]error:[/] {escape(shown(error.message + details))}", markup=True)
    err_console.print("[yellow]hint:[/] nothing was rendered; fix the graph or the model files named above "
                      "(`wanclip doctor` checks the server)", markup=True)
