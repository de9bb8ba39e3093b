"""The entry point: import every ``cmd_*`` module so each registers its command, then run."""

from __future__ import annotations

import importlib
import pkgutil

import typer

import wanclip.cli as cli_package
from wanclip import __version__
from wanclip.cli.base import app, console

# The order of `wanclip --help`: the path of a film, then the tools around it.
ORDER = ("plan", "render", "clip", "demo", "stitch", "setup", "doctor", "sim")


def _register_commands() -> None:
    names = {m.name[4:] for m in pkgutil.iter_modules(cli_package.__path__) if m.name.startswith("cmd_")}
    for name in [*[n for n in ORDER if n in names], *sorted(names - set(ORDER))]:
        importlib.import_module(f"wanclip.cli.cmd_{name}")


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True),
) -> None:
    """Turn a shot list into a finished Wan 2.2 film on your own ComfyUI."""
    if version:
        console.print(f"wanclip {__version__}")
        raise typer.Exit(0)
    if ctx.invoked_subcommand is None:
        console.print(ctx.get_help())
        raise typer.Exit(0)


_register_commands()


def main() -> None:
    app()
