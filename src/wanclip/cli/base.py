"""What every command shares: the typer app, the consoles, and the one place errors become exits.

Each command lives in its own ``cmd_<name>.py`` module, registers itself on ``app`` with
``@app.command()``, validates its arguments, calls one core function inside ``handle_errors()``
and renders the typed result.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console

from wanclip.errors import EXIT_INTERRUPTED, WanclipError

app = typer.Typer(
    name="wanclip",
    help="Turn a shot list into a finished Wan 2.2 film on your own ComfyUI.",
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def print_json(obj: object) -> None:
    """One JSON document on stdout, nothing else (for scripts)."""
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def fail(error: WanclipError) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {error.message}", markup=True)
    if error.hint:
        err_console.print(f"[yellow]hint:[/] {error.hint}", markup=True)
    return typer.Exit(error.exit_code)


@contextmanager
def handle_errors() -> Iterator[None]:
    """Turn wanclip's errors into a message, a hint and the exit code; Ctrl-C into 130."""
    try:
        yield
    except WanclipError as exc:
        raise fail(exc) from exc
    except KeyboardInterrupt as exc:
        err_console.print("interrupted")
        raise typer.Exit(EXIT_INTERRUPTED) from exc
