"""``wanclip setup``: install the model files into ComfyUI's models/ folder, verified."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from wanclip import config
from wanclip.cli.base import OUTPUT, app, console, err_console, handle_errors, in_range, print_json
from wanclip.errors import EXIT_BAD_INPUT, EXIT_OK, EXIT_SHOTS_FAILED, AssetError
from wanclip.models import install as installer
from wanclip.models.manifest import load_manifest
from wanclip.models.results import Event, SetupResult
from wanclip.models.verify import check_files, models_dir_of


@app.command("setup")
def setup(
    comfy_dir: Path | None = typer.Option(None, "--comfy-dir", metavar="FOLDER", rich_help_panel="Where", help="The ComfyUI folder, the one with main.py "
                                          "(files go to its models/)."),
    models_dir: Path | None = typer.Option(None, "--models-dir", metavar="FOLDER", rich_help_panel="Where", help="The models/ folder itself (a shared or "
                                           "separate models folder)."),
    manifest: Path | None = typer.Option(None, "--manifest", metavar="FILE", rich_help_panel="What to install", help="A manifest YAML instead of the built-in one."),
    with_: list[str] = typer.Option(None, "--with", metavar="SET", rich_help_panel="What to install", help="Also the files of SET; repeatable. "
                                    "i2v: the Wan 2.2 I2V experts and their LightX2V 4-step LoRA pair (31 GB "
                                    "more), for shots with image:, end_image: or continue:. "
                                    "interpolation: the RIFE 4.26 model core FrameInterpolate loads (23 MB), for "
                                    "post: interpolate: (the RIFE VFI custom node fetches its own). "
                                    "upscale: a 2x upscale model (67 MB) and SeedVR2 3B with its VAE (4 GB), for "
                                    "post: upscale:. "
                                    "lightx2v-1217: the newer LightX2V LoRAs of lightx2v: 1217 (2.6 GB: the T2V "
                                    "1217 pair, whose size is taken from the hub, and the I2V 1022 pair)."),
    endpoint: str | None = typer.Option(None, "--endpoint", metavar="URL", rich_help_panel="Source", help="A hub mirror (default: HF_ENDPOINT, else huggingface.co)."),
    from_dir: Path | None = typer.Option(None, "--from-dir", metavar="FOLDER", rich_help_panel="Source", help="Install from a local folder of model files "
                                         "(a models/ tree, the hub's repo tree, or flat): hard-linked or "
                                         "copied, verified, no network."),
    workers: int = typer.Option(0, "--workers", metavar="N", callback=in_range(0), rich_help_panel="Source", help="Files fetched at once (0: all)."),
    check: bool = typer.Option(False, "--check", rich_help_panel="What to install", help="Verify only; exit 1 if anything is missing or wrong."),
    nodes: bool = typer.Option(False, "--nodes", rich_help_panel="What to install", help="Install wanclip's ComfyUI node pack instead of the models: "
                               "WanclipSaveVideo (the clip is encoded in the background, so the GPU does not wait "
                               "~2 s per shot) into custom_nodes/wanclip_nodes of --comfy-dir, and VHS's ultrafast format file "
                               "when VideoHelperSuite is there. Needs --comfy-dir; with --check, verify only."),
    as_json: bool = typer.Option(False, "--json", rich_help_panel=OUTPUT, help="JSON lines: events, then the result."),
    quiet: bool = typer.Option(False, "--quiet", "-q", rich_help_panel=OUTPUT, help="No progress bars: print only the result."),
) -> None:
    """Download the Wan 2.2 model files into models/, verified.

    The Wan 2.2 14B text-to-video files by default, resumable and sha256-verified; `--with i2v`
    adds the image-to-video ones, `--with interpolation` and `--with upscale` the post stage's models,
    `--with lightx2v-1217` the newer LoRAs (with --check, verifies them too).

    Exit codes: 0 every file is in place and verified, 1 a file is missing, wrong or could not be
    fetched (a rerun resumes), 2 bad input (where models go, the manifest, --with), 130 Ctrl-C,
    143 SIGTERM.
    """
    if nodes:
        _setup_nodes(comfy_dir, models_dir, check, as_json)
    with handle_errors(as_json=as_json):
        target = _models_dir(comfy_dir, models_dir)
        items = load_manifest(manifest, extras=with_ or ())
        if check:
            result = check_files(items, target)
        else:
            source = installer.Source(endpoint=(endpoint or config.hf_endpoint() or installer.DEFAULT_ENDPOINT).rstrip("/"),
                                   token=config.hf_token(), from_dir=from_dir)
            result = (installer.install(items, target, source, workers=workers) if quiet and not as_json
                      else _install(items, target, source, workers, as_json))
    _render(result, as_json)
    raise typer.Exit(EXIT_OK if result.ok else EXIT_SHOTS_FAILED)


def _setup_nodes(comfy_dir: Path | None, models_dir: Path | None, check: bool, as_json: bool) -> None:
    from wanclip.models import nodepack

    with handle_errors(as_json=as_json):
        if comfy_dir is None or models_dir is not None:
            raise AssetError("--nodes installs into ComfyUI's custom_nodes/: give --comfy-dir (not --models-dir)",
                             "e.g. wanclip setup --nodes --comfy-dir ~/ComfyUI", exit_code=EXIT_BAD_INPUT)
        result = nodepack.check(comfy_dir) if check else nodepack.install(comfy_dir)
    if as_json:
        print_json(result.to_dict())
    else:
        style = "green" if result.ok else "red"
        console.print(f"[{style}]{result.status}[/]: {result.detail}")
        if result.vhs_format:
            console.print(f"VHS format {nodepack.VHS_FORMAT}: {result.vhs_format} ({result.vhs_format_path})",
                          markup=False)
        if result.fix:
            console.print(f"  {'next' if result.ok else 'fix'}: {result.fix}", markup=False)
    raise typer.Exit(EXIT_OK if result.ok else EXIT_SHOTS_FAILED)


def _models_dir(comfy_dir: Path | None, models_dir: Path | None) -> Path:
    if bool(comfy_dir) == bool(models_dir):
        raise AssetError("say where ComfyUI's models go: give --comfy-dir or --models-dir (one of them)",
                         "e.g. wanclip setup --comfy-dir ~/ComfyUI", exit_code=EXIT_BAD_INPUT)
    return models_dir if models_dir else models_dir_of(comfy_dir)


def _install(items, target: Path, source: installer.Source, workers: int, as_json: bool) -> SetupResult:
    if as_json:
        return installer.install(items, target, source, workers=workers, on_event=lambda e: print_json(asdict(e)))
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  TimeRemainingColumn(), console=err_console, transient=False) as progress:
        return installer.install(items, target, source, workers=workers, on_event=_ProgressView(progress))


class _ProgressView:
    """A bar per file and one for the total, fed by the core's events."""

    def __init__(self, progress: Progress):
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}
        self.done: dict[str, int] = {}
        self.total: TaskID | None = None

    def __call__(self, event: Event) -> None:
        if event.kind == "plan":  # (warnings are printed once, with the result)
            self.total = self.progress.add_task("total", total=event.total or None)
        elif event.kind == "start":
            self.tasks[event.file] = self.progress.add_task(event.file.split("/")[-1], total=event.total,
                                                            completed=event.done)
            self.done[event.file] = event.done
            if self.total is not None:  # bytes resumed from a .part count as done
                self.progress.advance(self.total, event.done)
        elif event.kind in ("progress", "done") and event.file in self.tasks:
            self._advance(event)

    def _advance(self, event: Event) -> None:
        if event.kind == "done" and event.message != "installed":
            return
        step = event.done - self.done.get(event.file, 0)
        self.done[event.file] = event.done
        self.progress.update(self.tasks[event.file], completed=event.done)
        if self.total is not None and step > 0:
            self.progress.advance(self.total, step)


def _render(result: SetupResult, as_json: bool) -> None:
    if as_json:
        print_json(result.to_dict())
        return
    for warning in result.warnings:
        err_console.print(f"warning: {warning}")
    table = Table(title=f"models in {result.models_dir}")
    for column in ("file", "status", "bytes"):
        table.add_column(column, overflow="fold")
    for f in result.files:
        style = "green" if f.ok else "red"
        table.add_row(f.dest, f"[{style}]{f.status}[/]", f"{f.bytes:,}" if f.bytes else "")
    console.print(table)
    for f in result.files:  # problems as sentences, not squeezed into table cells
        if not f.ok:
            console.print(f"{f.status}: {f.detail}", markup=False)
            console.print(f"  fix: {f.fix}", markup=False)
