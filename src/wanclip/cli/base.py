"""What every command shares: the typer app, the consoles, and the one place errors become exits.

Each command lives in its own ``cmd_<name>.py`` module, registers itself on ``app`` with
``@app.command()``, validates its arguments, calls one core function inside ``handle_errors()``
and renders the typed result.
"""

from __future__ import annotations

import inspect
import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer
from typer.core import TyperArgument, TyperGroup, TyperOption

from wanclip.errors import WanclipError
from wanclip.render.events import stamped
from wanclip.signals import exit_code_for, terminate_as_interrupt

if TYPE_CHECKING:
    from rich.console import Console

# The panels that group options in --help (`rich_help_panel=`), named alike in every command.
# Every command's docstring ends with an "Exit codes:" paragraph (tests/test_cli_help.py checks).
SERVERS, WHAT, TIMING, OUTPUT = "Servers", "What to render", "Timing", "Output"


class _Argument(TyperArgument):
    """An argument shown by its metavar alone (SHOTS_FILE, not ``shots_file <path>``)."""

    def display_type_rich(self, ctx) -> str | None:
        return None

    def get_usage_pieces(self, ctx) -> list[str]:
        name = self.display_name_raw
        if self.nargs != 1 and not name.endswith("..."):
            name += "..."
        return [name if self.required else f"[{name}]"]


class _Option(TyperOption):
    """An option shown by its metavar (URL, SECONDS, FOLDER); a flag shows none (not ``<bool>``)."""

    def display_type_rich(self, ctx) -> str | None:
        return None if self.is_flag or self.count else super().display_type_rich(ctx)


def in_range(low: int, high: int | None = None):
    """An option's ``callback=`` that refuses a number outside [low, high] (exit 2, the range named).

    Used instead of ``min=``/``max=``, which print ``[0<=x<=65535]`` in --help, hidden only by
    overriding a private typer method; the option's help says the range in words."""

    def check(value: int | None) -> int | None:
        if value is not None and (value < low or (high is not None and value > high)):
            raise typer.BadParameter(f"{value} is not between {low} and {high}" if high is not None
                                     else f"{value}: give {low} or more")
        return value

    return check


def _prose(text: str | None) -> str | None:
    """Help text as a person reads it: each paragraph reflowed, no rich markup (``[@NODE]`` is text)."""
    if not text:
        return text
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(_literal(p if p.startswith("\b") else " ".join(p.split())) for p in paragraphs)


def _literal(text: str) -> str:
    """``text`` as rich markup that shows it as it is (rich's ``escape``). Only a ``[`` or a trailing
    backslash needs escaping: text without either is returned as is, without importing rich, so a
    command whose help has neither (``render``) starts without rich's markup and console."""
    if "[" not in text and not text.endswith("\\"):
        return text
    from rich.markup import escape

    return escape(text)


def _for_people(command: typer.core.TyperCommand) -> None:
    """Typer shows Python types (``<path>``, ``<bool>``, ``{shots_file}``): show metavars instead."""
    command.help = _prose(command.help)
    command.short_help = _prose(command.short_help)
    for param in command.params:
        if isinstance(param, TyperArgument):
            param.__class__ = _Argument
        elif isinstance(param, TyperOption):
            param.__class__ = _Option
        param.help = _prose(getattr(param, "help", None))
    command.get_help_option = _help_option(command.get_help_option, command)
    for sub in getattr(command, "commands", {}).values():
        _for_people(sub)


def _help_option(make, command):
    """--help shown like the other flags, at the end of the last panel where options are grouped."""

    def get_help_option(ctx):
        option = make(ctx)
        if isinstance(option, TyperOption):
            option.__class__ = _Option
            panels = [p.rich_help_panel for p in command.params if isinstance(p, TyperOption)]
            option.rich_help_panel = panels[-1] if panels else None
        return option

    return get_help_option


# click's UsageError, whether typer uses click or its own copy of it (typer 0.29 vendors it)
_USAGE_ERROR = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")


class Group(TyperGroup):
    """The ``wanclip`` group: every command's help made for people once, when the CLI is built."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _for_people(self)

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        ctx.meta["wanclip.args"] = list(args)  # as typed: a usage error comes before --json is parsed
        return super().parse_args(ctx, args)

    def invoke(self, ctx):
        """A usage error (an unknown option, a value out of range) of a command run with ``--json``
        also ends with the closing error event, as every other refusal does."""
        try:
            return super().invoke(ctx)
        except _USAGE_ERROR as exc:
            args = ctx.meta.get("wanclip.args") or []
            args = args[:args.index("--")] if "--" in args else args
            command = exc.ctx.command if exc.ctx is not None and exc.ctx is not ctx else None
            if "--json" in args and command is not None and any(
                    "--json" in getattr(p, "opts", ()) for p in command.params):
                print_json({"event": "error", "exit_code": exc.exit_code, "error": exc.format_message(),
                            "hint": f"see `wanclip {command.name} --help`"})
            raise


app = typer.Typer(
    name="wanclip",
    cls=Group,
    help="Turn a shot list into a finished Wan 2.2 film on your own ComfyUI.\n\n"
         "Start with `wanclip demo` (no GPU), then `wanclip plan tomato_egg` and `wanclip render tomato_egg "
         "-s URL`. `wanclip COMMAND --help` gives a command's options and exit codes.",
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",  # for the option panels; help text is never markup (see _prose)
)

# C0 and C1 controls but newline and tab, DEL, and the bidirectional overrides and isolates
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def shown(text: object) -> str:
    """Text from a shots file or a server as the terminal may show it: each control character made
    visible (``\\x1b``), so a prompt cannot set the terminal's title, clear the screen or write the
    clipboard. Print it as text, never as markup (``Text(shown(x))`` or ``escape(shown(x))``)."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), str(text))


_consoles: dict[str, Console] = {}


def _console(name: str) -> Console:
    """``console`` (stdout) or ``err_console`` (stderr), made on first use: a ``--quiet`` or ``--json``
    render posts its first prompt without importing rich (each module is a disk read on a cold start)."""
    if name not in _consoles:
        from rich.console import Console

        _consoles.setdefault(name, Console(stderr=name == "err_console", highlight=False, soft_wrap=True))
    return _consoles[name]


def __getattr__(name: str) -> Console:  # ``base.console``, ``from wanclip.cli.base import console``
    if name in ("console", "err_console"):
        return _console(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def counted(n: int, noun: str) -> str:
    """``1 shot``, ``2 shots``: never ``1 shots`` (nouns with a plain -s plural)."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def print_json(obj: object) -> None:
    """One JSON document on stdout, nothing else (for scripts). An event (a dict with ``event``)
    always carries ``time``, a timestamp (``events.timestamp``), second after ``event``."""
    if isinstance(obj, dict) and "event" in obj:
        obj = stamped(obj)
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def fail(error: WanclipError, as_json: bool = False) -> typer.Exit:
    """Print ``error`` for a person (or, with ``as_json``, as the one closing JSON event)."""
    if as_json:  # the event for scripts on stdout; the words for the person on stderr as always
        print_json({"event": "error", "exit_code": error.exit_code, "error": error.message, "hint": error.hint})
    # the words are text, never markup: "pip install 'wanclip[sim]'" lost its [sim] to rich
    from rich.markup import escape

    err_console = _console("err_console")
    err_console.print(f"[bold red]error:[/] {escape(shown(error.message))}", markup=True)
    if error.hint:
        err_console.print(f"[yellow]hint:[/] {escape(shown(error.hint))}", markup=True)
    return typer.Exit(error.exit_code)


SIM_EXTRA = "pip install 'wanclip[sim]'"


def import_sim():
    """``wanclip.sim``, whose web server (aiohttp) is the ``sim`` extra: without it, an error that says
    how to install it (exit 2) instead of a traceback."""
    try:
        import wanclip.sim as sim
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] != "aiohttp":
            raise
        raise WanclipError("the simulated ComfyUI needs aiohttp, which is not installed",
                           f"install the simulator's extra: {SIM_EXTRA}") from exc
    return sim


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
            _console("err_console").print("interrupted")
        raise typer.Exit(code) from exc
