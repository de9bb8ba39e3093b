"""`wanclip render`: every shot of a film on one or many ComfyUI servers, then the film."""

from __future__ import annotations

from pathlib import Path

import typer

from wanclip import config
from wanclip.cli.base import app, handle_errors
from wanclip.cli.rendering import run_render
from wanclip.errors import WanclipError
from wanclip.plan import plan_film
from wanclip.render import RenderOptions


def server_list(servers: list[str] | None) -> list[str]:
    """--server repeated or comma separated; else WANCLIP_SERVER; else the local default."""
    urls = [u.strip() for s in servers or [] for u in s.split(",") if u.strip()]
    return urls or config.server_urls()


def render_options(servers: list[str] | None, headers: list[str] | None, **kwargs) -> RenderOptions:
    return RenderOptions(servers=server_list(servers), headers=list(headers or []) + config.extra_headers(),
                         **kwargs)


@app.command("render")
def render_command(
    shots_file: Path = typer.Argument(..., help="The shots file (YAML)."),
    server: list[str] = typer.Option(None, "--server", "-s", metavar="URL", help="ComfyUI URL; repeat (or comma-separate) for "
                                     "several servers. Default: $WANCLIP_SERVER, else the servers of a running "
                                     "`wanclip serve` that are up, else http://127.0.0.1:8188."),
    out: Path = typer.Option(None, "--out", help="Film folder (default: the film's `out`, else out/<film>)."),
    only: list[str] = typer.Option(None, "--only", metavar="NAME", help="Render only this shot (repeatable); re-renders it."),
    force: bool = typer.Option(False, "--force", help="Re-render shots that are already done."),
    no_stitch: bool = typer.Option(False, "--no-stitch", help="Do not join the clips into film.mp4."),
    header: list[str] = typer.Option(None, "--header", "-H", metavar="'NAME: VALUE'", help="Extra HTTP header 'Name: value' for a proxy "
                                     "(repeatable; also $WANCLIP_HEADERS). Never printed or saved."),
    timeout: float = typer.Option(1800.0, "--timeout", help="Fail a running shot after this many seconds "
                                  "without any progress (model loads are silent for minutes)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON event per line instead of progress."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the summary."),
) -> None:
    """Render every shot of SHOTS_FILE on ComfyUI, resumably, then stitch film.mp4.

    All pending shots are queued at once (with several servers, each is kept one shot ahead) so
    the GPU never waits. The ledger (OUT/ledger.json) records every shot; rerunning the command
    skips finished shots, re-attaches to shots still on a server and resubmits lost ones.
    Exit codes: 0 all done, 1 some shots failed, 2 refused before any GPU work, 130 interrupted.
    """
    with handle_errors():
        plan = plan_film(shots_file, out=out)
        unknown = sorted(set(only or []) - {s.name for s in plan.shots})
        if unknown:
            raise WanclipError(f"--only names no shot of this film: {', '.join(unknown)}",
                               f"shots are: {', '.join(s.name for s in plan.shots)}")
        options = render_options(server, header, only=list(only or []), force=force, stitch=not no_stitch,
                                 shot_timeout=timeout)
    result = run_render(plan, options, as_json, quiet)
    raise typer.Exit(result.exit_code)
