"""The entry point: import every ``cmd_*`` module so each registers its command, then run."""

from __future__ import annotations

import importlib
import pkgutil

import typer

import wanclip.cli as cli_package
from wanclip import __version__
from wanclip.cli.base import app, console


def _register_commands() -> None:
    for module in sorted(pkgutil.iter_modules(cli_package.__path__), key=lambda m: m.name):
        if module.name.startswith("cmd_"):
            importlib.import_module(f"wanclip.cli.{module.name}")


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True),
) -> None:
    """Turn a shot list into a finished Wan 2.2 film on your own ComfyUI."""
    if version:
        console.print(f"wanclip {__version__}")
        raise typer.Exit(0)


_register_commands()


def main() -> None:
    app()
