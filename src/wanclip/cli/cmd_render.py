"""`wanclip render`: every shot of a film on one or many ComfyUI servers, then the film."""

from __future__ import annotations

from pathlib import Path

import typer

from wanclip import config
from wanclip.cli.base import OUTPUT, SERVERS, TIMING, WHAT, app, handle_errors, in_range
from wanclip.cli.rendering import run_render
from wanclip.errors import WanclipError
from wanclip.planning.plan import plan_film
from wanclip.render.loop import RenderOptions
from wanclip.serve.state import default_servers


def server_list(servers: list[str] | None) -> list[str]:
    """--server repeated or comma separated; else WANCLIP_SERVER; else the local default. An address
    without a scheme (``127.0.0.1:8188``, as ComfyUI prints it) is http; an empty one is refused
    rather than silently replaced by the default."""
    from wanclip.errors import UsageError

    if servers and not any(u.strip() for s in servers for u in s.split(",")):
        raise UsageError("--server is empty", "give a server address, e.g. -s 127.0.0.1:8188, or leave -s out to "
                         "use $WANCLIP_SERVER, `wanclip serve`'s servers or http://127.0.0.1:8188", "--server")
    urls = [u.strip() for s in servers or [] for u in s.split(",") if u.strip()]
    return [u if "://" in u else f"http://{u}" for u in urls] or default_servers()


def header_map(lines: list[str] | None) -> dict[str, str]:
    """``-H 'Name: value'`` lines, then $WANCLIP_HEADERS, parsed once into the mapping every request
    (and any follow-up, such as the allowed values after a 400) sends: a later one of the same name
    (in any case) wins. A malformed line is refused without repeating it (it may be a secret)."""
    from wanclip.comfy.client import parse_header

    out: dict[str, str] = {}
    for line in [*(lines or []), *config.extra_headers()]:
        name, value = parse_header(line)
        out = {k: v for k, v in out.items() if k.lower() != name.lower()}
        out[name] = value
    return out


def render_options(servers: list[str] | None, headers: list[str] | None, **kwargs) -> RenderOptions:
    return RenderOptions(servers=server_list(servers), headers=header_map(headers), **kwargs)


@app.command("render")
def render_command(
    shots_file: Path = typer.Argument(..., metavar="SHOTS_FILE", show_default=False, help="The shots file "
                                      "(YAML), or the name of a shipped example (`wanclip examples`)."),
    server: list[str] = typer.Option(None, "--server", "-s", metavar="URL", rich_help_panel=SERVERS,
                                     help="ComfyUI URL; repeat (or comma-separate) for several servers. Default: "
                                     "$WANCLIP_SERVER, else the servers of a running `wanclip serve` that are "
                                     "up, else http://127.0.0.1:8188."),
    header: list[str] = typer.Option(None, "--header", "-H", metavar="'NAME: VALUE'", rich_help_panel=SERVERS,
                                     help="Extra HTTP header for a proxy (repeatable; also $WANCLIP_HEADERS). "
                                     "Never printed or saved."),
    # hidden until the README's command reference is regenerated (`make docs`) with them
    api: str = typer.Option("auto", "--api", metavar="auto|native|v2", hidden=True, rich_help_panel=SERVERS,
                            help="What the servers speak: native ComfyUI, or the Comfy API v2 (Comfy Cloud, "
                            "deployments, comfy-api-proxy); auto asks each server's /api/v2/health."),
    concurrency: int = typer.Option(None, "--concurrency", metavar="N", callback=in_range(1), hidden=True,
                                    rich_help_panel=SERVERS, help="Jobs in flight on each Comfy API v2 surface "
                                    "(default 2; lowered while it answers queue_full)."),
    only: list[str] = typer.Option(None, "--only", metavar="NAME", rich_help_panel=WHAT,
                                   help="Render only this shot (repeatable); re-renders it."),
    force: bool = typer.Option(False, "--force", rich_help_panel=WHAT, help="Re-render shots that are already done."),
    timeout: float = typer.Option(1800.0, "--timeout", metavar="SECONDS", callback=in_range(1), rich_help_panel=TIMING,
                                  help="Fail a running shot after this long without any progress (model loads "
                                  "are silent for minutes)."),
    out: Path = typer.Option(None, "--out", metavar="FOLDER", rich_help_panel=OUTPUT,
                             help="Film folder (default: the film's `out`, else out/<film>)."),
    no_stitch: bool = typer.Option(False, "--no-stitch", rich_help_panel=OUTPUT,
                                   help="Do not join the clips into film.mp4."),
    as_json: bool = typer.Option(False, "--json", rich_help_panel=OUTPUT,
                                 help="Print one JSON event per line instead of progress."),
    quiet: bool = typer.Option(False, "--quiet", "-q", rich_help_panel=OUTPUT,
                               help="No progress: print only the summary (and any error)."),
) -> None:
    """Render every shot on ComfyUI, resumably, then stitch the film.

    Renders each shot of SHOTS_FILE into OUT/clips/, then joins them into OUT/film.mp4. All
    pending shots are queued at once (with several servers, each is kept one shot ahead) so the
    GPU never waits. The ledger (OUT/ledger.json) records every shot; rerunning the command skips
    finished shots, re-attaches to shots still on a server and resubmits lost ones. A shot with
    `continue: true` waits for the clip before it and starts from its last frame.

    Faster sampling: `weight_dtype: fp8_e4m3fn_fast` in the shots file saves about 11-12.5 % per
    sampler step on H100/H200 GPUs, at the cost of more numeric drift (a slightly different
    picture from the same seed); off by default.

    Exit codes: 0 every shot done, 1 some shots failed (or no server answered), 2 refused before
    any GPU work (the shots file, the graph, an unknown --only), 130 Ctrl-C, 143 SIGTERM (rerun
    to resume).
    """
    with handle_errors(as_json):  # a --json caller gets its closing error event for a bad -H too
        plan = plan_film(shots_file, out=out)
        unknown = sorted(set(only or []) - {s.name for s in plan.shots})
        if unknown:
            raise WanclipError(f"--only names no shot of this film: {', '.join(unknown)}",
                               f"shots are: {', '.join(s.name for s in plan.shots)}")
        options = render_options(server, header, only=list(only or []), force=force, stitch=not no_stitch,
                                 shot_timeout=timeout, api=api, concurrency=concurrency)
    result = run_render(plan, options, as_json, quiet)
    raise typer.Exit(result.exit_code)
