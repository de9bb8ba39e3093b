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

from wanclip.errors import WanclipError
from wanclip.signals import exit_code_for, terminate_as_interrupt

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


def fail(error: WanclipError, as_json: bool = False) -> typer.Exit:
    """Print ``error`` for a person (or, with ``as_json``, as the one closing JSON event)."""
    if as_json:  # the event for scripts on stdout; the words for the person on stderr as always
        print_json({"event": "error", "exit_code": error.exit_code, "error": error.message, "hint": error.hint})
    err_console.print(f"[bold red]error:[/] {error.message}", markup=True)
    if error.hint:
        err_console.print(f"[yellow]hint:[/] {error.hint}", markup=True)
    return typer.Exit(error.exit_code)


@contextmanager
def handle_errors(as_json: bool = False) -> Iterator[None]:
    """Turn wanclip's errors into a message, a hint and the exit code; Ctrl-C into 130, SIGTERM 143.

    With ``as_json`` the error is one JSON event ``{"event": "error", "exit_code": N, ...}`` on
    stdout, so a script reading JSON lines always gets a last line that says how it ended.
    """
    try:
        with terminate_as_interrupt():
            yield
    except WanclipError as exc:
        raise fail(exc, as_json) from exc
    except KeyboardInterrupt as exc:
        code = exit_code_for(exc)
        if as_json:
            print_json({"event": "error", "exit_code": code, "error": "interrupted", "hint": ""})
        else:
            err_console.print("interrupted")
        raise typer.Exit(code) from exc
