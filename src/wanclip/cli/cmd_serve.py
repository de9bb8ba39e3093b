"""`wanclip serve`: one ComfyUI per GPU, supervised, found by `wanclip render` (see wanclip.serve.supervisor)."""

from __future__ import annotations

from pathlib import Path

import typer

from wanclip.cli.base import (
    OUTPUT,
    SERVERS,
    TIMING,
    app,
    console,
    counted,
    err_console,
    handle_errors,
    in_range,
    print_json,
)
from wanclip.serve.state import state_path
from wanclip.serve.supervisor import DEFAULT_COMMAND, SIM_COMMAND, ServeOptions, Supervisor, parse_gpus
from wanclip.signals import StopRequests


def _started(d: dict) -> str:
    again = f" (restart {d['restart']})" if d.get("restart") else ""
    return f"starting on GPU {d['gpu']}{again}, pid {d['pid']}, log {d['log']}"


def _exited(d: dict) -> str:
    tail = "".join(f"\n    {line}" for line in d["log_tail"])
    return f"{d['url']} stopped: {d['reason']} after {d['up_seconds']:.0f} s; last lines of {d['log']}:{tail}"


# event -> (printed on stderr, the line after "gpuN: ")
LINES = {
    "started": (False, _started),
    "ready": (False, lambda d: f"ready at {d['url']} after {d['seconds']:.1f} s"),
    "warming": (False, lambda d: "loading the models (warm-up prompt)"),
    "warm": (False, lambda d: f"warm after {d['seconds']:.1f} s"),
    "warm_failed": (True, lambda d: f"the warm-up failed: {d['error']}"),
    "exited": (True, _exited),
    "restarting": (True, lambda d: f"restarting in {d['in_seconds']:g} s (attempt {d['attempt']})"),
    "hung": (True, lambda d: f"no answer {d['seconds']} s after its start: killing it (log {d['log']})"),
    "stopped": (False, lambda d: "stopped"),
}


def _printer(as_json: bool):
    def show(kind: str, data: dict) -> None:
        if as_json:
            print_json({"event": kind, **data})
        elif kind in LINES:
            to_stderr, line = LINES[kind]
            (err_console if to_stderr else console).print(f"{data.get('server', '')}: {line(data)}")

    return show


@app.command("serve", context_settings={"allow_interspersed_args": False})
def serve(
    comfy_flags: list[str] = typer.Argument(None, metavar="-- COMFYUI_FLAGS", show_default=False,
                                            help="Flags after `--` go to every ComfyUI unchanged."),
    comfy_dir: Path = typer.Option(..., "--comfy-dir", metavar="FOLDER", rich_help_panel=SERVERS, help="The ComfyUI folder (with main.py); servers run in it."),
    gpus: str = typer.Option("all", "--gpus", metavar="all|0,1,3", rich_help_panel=SERVERS, help="GPUs to serve, one ComfyUI each: `all` "
                             "(nvidia-smi -L, or $CUDA_VISIBLE_DEVICES when set) or indices/UUIDs, comma-separated."),
    port: int = typer.Option(8188, "--port", metavar="PORT", callback=in_range(1, 65535), rich_help_panel=SERVERS, help="Port of the first server; the next take PORT+1, PORT+2, ..."),
    warm: bool = typer.Option(False, "--warm", rich_help_panel="Warm-up", help="Load the models on every server before the first film, "
                              "with a 5-frame prompt of the shipped graph (about a minute each, all at once)."),
    warm_workflow: Path = typer.Option(None, "--warm-workflow", metavar="FILE", rich_help_panel="Warm-up", help="Warm with this API graph instead (your film's)."),
    command: str = typer.Option(None, "--command", metavar="TEMPLATE", rich_help_panel=SERVERS, help="The command that starts one server "
                                "(default: $WANCLIP_SERVE_COMMAND, else ComfyUI's main.py; see below)."),
    output_dir: Path = typer.Option(None, "--output-dir", metavar="FOLDER", rich_help_panel=SERVERS, help="Each server writes to OUTPUT_DIR/gpuN "
                                    "(default: COMFY_DIR/output/gpuN)."),
    ready_timeout: float = typer.Option(600.0, "--ready-timeout", metavar="SECONDS", rich_help_panel=TIMING, help="Seconds a server may take to answer "
                                        "GET /system_stats after it starts."),
    as_json: bool = typer.Option(False, "--json", rich_help_panel=OUTPUT, help="Print one JSON event per line."),
) -> None:
    """Run one ComfyUI per GPU, supervised, for `wanclip render` to use.

    Each server gets its own CUDA_VISIBLE_DEVICES, port (8188, 8189, ...) and output folder; its
    log is WANCLIP_HOME/serve/gpuN.log (~/.wanclip by default), printed at start. Once every server
    answers GET /system_stats the URLs are written to WANCLIP_HOME/serve.json, and `wanclip render`
    with no --server (and no $WANCLIP_SERVER) renders across the servers that are up. A server that
    exits is restarted after 1, 2, 5, 10, 30, 60 s (its exit code and the end of its log are
    printed). Ctrl-C or SIGTERM stops every server (SIGTERM, then SIGKILL after 15 s) and removes
    serve.json. One `wanclip serve` at a time.

    The server command is a template run in --comfy-dir, with {python} (ComfyUI's own: the venv,
    .venv or portable build in --comfy-dir, else wanclip's), {wanclip_python}, {port}, {output_dir},
    {gpu}, {comfy_dir} and {host} filled in and the flags after `--` appended. The default is
    `{python} main.py --listen {host} --port {port} --output-directory {output_dir}`; the
    simulator instead (no GPU): --command '{wanclip_python} -m wanclip sim --port {port} --output-dir {output_dir}'.

    No ComfyUI flag is added for you, and none is a sure speed-up: on an H200 (ComfyUI 0.3.64,
    Wan 2.2 14B) --use-sage-attention made sampling 12 % slower and --fast gained nothing. Measure
    a film on your own GPUs before passing such flags, e.g. `wanclip serve --comfy-dir ~/ComfyUI --
    --use-sage-attention`.

    Exit codes: 1 a server failed to start, 2 refused before starting (bad --gpus, ports in use,
    already running), 130 Ctrl-C, 143 SIGTERM (each stops every server first).
    """
    assert DEFAULT_COMMAND and SIM_COMMAND  # the help above quotes both
    show = _printer(as_json)
    with handle_errors(as_json=as_json):
        options = ServeOptions(comfy_dir=comfy_dir, gpus=parse_gpus(gpus), port=port, extra=list(comfy_flags or []),
                               command=command, warm=warm or warm_workflow is not None, warm_workflow=warm_workflow,
                               output_dir=output_dir, ready_timeout=ready_timeout)
        stops = StopRequests()  # Ctrl-C / SIGTERM recorded, taken by the supervisor between its steps
        with stops.installed(), Supervisor(options, on_event=show, stops=stops) as supervisor:
            urls = supervisor.start()
            if as_json:
                print_json({"event": "serving", "urls": urls, "state": str(state_path())})
            else:
                console.print(f"serving {counted(len(urls), 'ComfyUI server')}: {', '.join(urls)}")
                console.print(f"written to {state_path()}: `wanclip render FILM.yaml` uses them "
                              "(no --server needed). Ctrl-C stops them all.")
            supervisor.run()
