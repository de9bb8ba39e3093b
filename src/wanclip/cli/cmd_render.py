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


def unknown_only(only: list[str] | None, names: list[str]) -> None:
    """Refuse an ``--only`` that names no shot, with the nearest names and every valid one (exit 2)."""
    import difflib

    unknown = [n for n in dict.fromkeys(only or []) if n not in names]
    if not unknown:
        return
    guesses = []
    for name in unknown:
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
        guesses.append(f"{name!r} (did you mean {' or '.join(repr(c) for c in close)}?)" if close else repr(name))
    raise WanclipError(f"--only names no shot of this film: {', '.join(guesses)}",
                       f"shots are: {', '.join(names)}")


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


def take_pins(values: list[str] | None) -> dict[str, int]:
    """``--take NAME=N`` (repeatable) as ``{name: N}``; a malformed one is refused (exit 2)."""
    from wanclip.errors import UsageError
    from wanclip.planning.plan import NEWEST

    pins: dict[str, int] = {}
    for value in values or []:
        name, _, number = value.partition("=")
        number = number.strip()
        if number == "newest":
            pins[name.strip()] = NEWEST
        elif not name.strip() or not number.isdigit() or int(number) < 1:
            raise UsageError(f"--take {value!r} is not NAME=N", "write the shot's name and a take number, "
                             "e.g. --take b=1 (`wanclip takes` lists them), or --take b=newest", "--take")
        else:
            pins[name.strip()] = int(number)
    return pins


def _post_order(value: str) -> str:
    from wanclip.errors import UsageError
    from wanclip.render.posts import ORDERS

    if value not in ORDERS:
        raise UsageError(f"--post-order {value!r}: one of {', '.join(ORDERS)}",
                         "at-end runs the post steps after the last shot; after-each runs each right after its "
                         "shot", "--post-order")
    return value


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
    api: str = typer.Option("auto", "--api", metavar="auto|native|v2", rich_help_panel=SERVERS,
                            help="What the servers speak: native ComfyUI, or the Comfy API v2 (Comfy Cloud, "
                            "deployments, comfy-api-proxy); auto asks each server's /api/v2/health."),
    concurrency: int = typer.Option(None, "--concurrency", metavar="N", callback=in_range(1),
                                    rich_help_panel=SERVERS, help="Jobs in flight on each Comfy API v2 surface "
                                    "(default 2; lowered while it answers queue_full)."),
    only: list[str] = typer.Option(None, "--only", metavar="NAME", rich_help_panel=WHAT,
                                   help="Render only this shot (repeatable); re-renders it."),
    force: bool = typer.Option(False, "--force", rich_help_panel=WHAT, help="Re-render shots that are already done "
                               "(each as a new take: the earlier clip is kept)."),
    reseed: list[str] = typer.Option(None, "--reseed", metavar="NAME", rich_help_panel=WHAT,
                                     help="Render this shot again with a fresh seed no other shot uses, as a new "
                                     "take (repeatable); the shot keeps that seed after."),
    take: list[str] = typer.Option(None, "--take", metavar="NAME=N", rich_help_panel=WHAT,
                                   help="Make the film use take N of shot NAME (repeatable; kept for later "
                                   "renders, like `take: N` in the shots file; NAME=newest drops it). "
                                   "`wanclip takes` lists the takes."),
    post_order: str = typer.Option("at-end", "--post-order", metavar="at-end|after-each", rich_help_panel=WHAT,
                                   help="With `post:` in the shots file: queue each shot's post prompt behind "
                                   "every shot still queued (at-end), or right after its shot (after-each: "
                                   "earlier post clips, but on ComfyUI's classic cache each switch makes the "
                                   "next shot load its models again, ~12 s on an H100)."),
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

    A shot is known by its name: inserting, removing or reordering shots renders no other shot,
    and each keeps its seed. Re-rendering a shot keeps its earlier clip as a take (`wanclip
    takes`); a clip you changed (a grade) is used in the film and never rendered over.

    Post stage: with `post:` in the shots file (`interpolate: 2` for 32 fps, `upscale: 2` or
    `720p`), each clip gets a second prompt on the server after it renders (the clip is uploaded,
    interpolated and/or upscaled, saved beside it as OUT/clips/NN_name.<post>.mp4). The film uses
    the post clips; changing only `post:` samples no shot again. `wanclip setup --with
    interpolation` / `--with upscale` installs the models.

    Faster sampling: `weight_dtype: fp8_e4m3fn_fast` in the shots file saves about 11-12.5 % per
    sampler step on H100/H200 GPUs, at the cost of more numeric drift (a slightly different
    picture from the same seed); off by default.

    Exit codes: 0 every shot done, 1 some shots failed, 2 refused before any GPU work (the shots
    file, the graph, an unknown --only, no server answered), 130 Ctrl-C, 143 SIGTERM (rerun to
    resume).
    """
    with handle_errors(as_json):  # a --json caller gets its closing error event for a bad -H too
        plan = plan_film(shots_file, out=out, reseed=list(reseed or []), takes=take_pins(take))
        unknown_only(only, [s.name for s in plan.shots])
        options = render_options(server, header, only=list(only or []) + [n for n in reseed or [] if only],
                                 force=force, stitch=not no_stitch,
                                 shot_timeout=timeout, api=api, concurrency=concurrency,
                                 post_order=_post_order(post_order))
    result = run_render(plan, options, as_json, quiet)
    raise typer.Exit(result.exit_code)
