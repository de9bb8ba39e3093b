"""Write the README's command reference from each command's --help (tests/test_docs.py checks it)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from typer.main import get_command
from typer.testing import CliRunner

from wanclip.cli.app import app

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- commands:start -->", "<!-- commands:end -->"


def command_names() -> list[str]:
    return list(get_command(app).commands)  # registration order


def help_text(args: list[str]) -> str:
    result = CliRunner().invoke(app, [*args, "--help"], prog_name="wanclip", terminal_width=100,
                                env={"COLUMNS": "100"})
    return "\n".join(line.rstrip() for line in result.output.splitlines()).strip("\n") + "\n"  # rich pads lines


def reference() -> str:
    parts = [START, "", "```", help_text([]).rstrip(), "```"]
    for name in command_names():
        parts += ["", f"### `wanclip {name}`", "", "```", help_text([name]).rstrip(), "```"]
    parts += ["", END]
    return "\n".join(parts)


def updated(text: str) -> str:
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise SystemExit(f"{README} has no {START} ... {END} section")
    return pattern.sub(lambda _: reference(), text)


if __name__ == "__main__":
    new = updated(README.read_text(encoding="utf-8"))
    if "--check" in sys.argv:
        sys.exit(0 if new == README.read_text(encoding="utf-8") else 1)
    README.write_text(new, encoding="utf-8")
    print(f"updated the command reference in {README.name}")
