"""``wanclip doctor``: one table of checks per server, each pass or fail with its fix."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table
from rich.text import Text

from wanclip.checks.doctor import DoctorReport, run_doctor
from wanclip.checks.post_files import PostNeed
from wanclip.checks.v2_doctor import run_v2_doctor
from wanclip.cli.base import app, console, counted, handle_errors, print_json, shown
from wanclip.cli.cmd_render import header_map, server_list
from wanclip.comfy import v2
from wanclip.comfy.client import ComfyClient
from wanclip.errors import EXIT_OK, EXIT_SHOTS_FAILED, WanclipError
from wanclip.planning.workflow import load_graph


@app.command("doctor")
def doctor(
    shots: Path | None = typer.Argument(None, metavar="SHOTS_FILE", show_default=False, help="A shots file (or example name): check "
                                        "the graphs and model files this film needs, the image-to-video ones "
                                        "only when a shot has image:, end_image: or continue:."),
    server: list[str] = typer.Option(None, "--server", "-s", metavar="URL",
                                     help="ComfyUI URL; repeat (or "
                                     "comma-separate) to check several servers, as `wanclip render` takes them. "
                                     "Default: $WANCLIP_SERVER, else http://127.0.0.1:8188."),
    header: list[str] = typer.Option(None, "--header", "-H", metavar="'NAME: VALUE'",
                                     help="Extra HTTP header for a proxy, as `wanclip render` takes it "
                                     "(repeatable; also $WANCLIP_HEADERS). Never printed or saved."),
    comfy_dir: Path | None = typer.Option(None, "--comfy-dir", metavar="FOLDER", help="The ComfyUI folder, to verify the model files on disk."),
    workflow: Path | None = typer.Option(None, "--workflow", metavar="FILE", help="Check this API graph instead of the shipped one."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object per server instead of the tables."),
) -> None:
    """Check that ComfyUI (GPU, nodes, model files) is ready for Wan 2.2.

    One report per server: a check that fails says how to fix it.

    Exit codes: 0 every check passed on every server, 1 a check failed
    (or a server did not answer), 2 bad input (e.g. an unreadable --workflow or shots file), 130 Ctrl-C,
    143 SIGTERM.
    """
    reports: list[DoctorReport] = []
    with handle_errors(as_json=as_json):
        graphs, post = _graphs(shots, workflow)
        headers = header_map(header)  # parsed once; every request to every server sends them
        for url in server_list(server):
            surface = v2.surface(url, headers)  # a Comfy API v2 surface: its own report
            if surface is not None:
                reports.append(run_v2_doctor(url, headers, surface, graphs))
            else:
                with ComfyClient(url, headers=headers) as client:
                    reports.append(run_doctor(client, comfy_dir, graphs=graphs, post=post))
            if as_json:
                print_json(reports[-1].to_dict())
            else:
                _render(reports[-1])
    raise typer.Exit(EXIT_OK if all(r.ok for r in reports) else EXIT_SHOTS_FAILED)


def _graphs(shots: Path | None, workflow: Path | None) -> tuple[list[dict] | None, PostNeed | None]:
    """The film's planned graphs (each shot's, as render would queue it), or the --workflow graph; and
    what the film's post steps need of the server (``post:``), if it has any."""
    if shots is not None and workflow is not None:
        raise WanclipError("give a shots file or --workflow, not both",
                         "the shots file names its own graphs (`workflow:`, `i2v_workflow:`)")
    if shots is not None:
        from wanclip.planning.plan import plan_film

        planned = plan_film(shots, check_folder=False).shots  # nothing is written
        jobs = [s.post for s in planned if s.post is not None]
        need = PostNeed(any(j.interpolating for j in jobs), any(j.upscaling for j in jobs)) if jobs else None
        return [shot.graph for shot in planned], need
    return ([load_graph(workflow)] if workflow else None), None


def _render(report: DoctorReport) -> None:
    table = Table(title=Text(shown(f"wanclip doctor — {report.server}")))
    for column in ("check", "", "detail"):
        table.add_column(column, overflow="fold")
    for check in report.checks:
        table.add_row(check.name, "[green]ok[/]" if check.ok else "[red]FAIL[/]", Text(shown(check.detail)))
    console.print(table)
    for check in report.failed:  # the fixes as sentences, where a narrow terminal cannot cut them
        console.print(shown(f"{check.name}: {check.detail}"), markup=False)
        console.print(shown(f"  fix: {check.fix}"), markup=False)
    console.print("all checks passed" if report.ok else f"{counted(len(report.failed), 'check')} failed")
