"""The root of the CLI: ``wanclip --version`` / ``wanclip`` alone, and registering the commands.

Each command lives in its own ``cmd_<name>.py`` and registers itself on import. ``register(names)``
imports the modules asked for (all of them, in the order ``wanclip --help`` lists them, when
``names`` is None); the entry point imports only the command being run, so ``wanclip render`` does
not pay for the simulator's web server, the stitcher or the model downloader at start.
"""

from __future__ import annotations

import importlib
import pkgutil

import typer

import wanclip.cli as cli_package
from wanclip import __version__
from wanclip.cli import base
from wanclip.cli.base import app

# The order of `wanclip --help`: the path of a film, then the tools around it.
ORDER = ("plan", "render", "clip", "demo", "review", "takes", "stitch", "examples", "setup", "doctor", "serve", "sim")


def command_names() -> list[str]:
    names = {m.name[4:] for m in pkgutil.iter_modules(cli_package.__path__) if m.name.startswith("cmd_")}
    return [*[n for n in ORDER if n in names], *sorted(names - set(ORDER))]


def register(names: list[str] | None = None) -> None:
    for name in command_names() if names is None else names:
        importlib.import_module(f"wanclip.cli.cmd_{name}")


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True),
) -> None:
    """Turn a shot list into a finished Wan 2.2 film on your own ComfyUI (the help is base.app's)."""
    if version:
        base.console.print(f"wanclip {__version__}")
        raise typer.Exit(0)
    if ctx.invoked_subcommand is None:
        base.console.print(ctx.get_help())
        raise typer.Exit(0)
