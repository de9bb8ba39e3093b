"""The ``wanclip`` console script: start fast by importing only the command being run."""

from __future__ import annotations

import sys

from wanclip.cli.base import app
from wanclip.cli.root import command_names, register


def main() -> None:
    first = next((a for a in sys.argv[1:] if not a.startswith("-")), None)
    register([first] if first in command_names() else None)
    app()
