"""The ``wanclip`` console script: start fast by importing only the command being run."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from wanclip.cli.base import app
from wanclip.cli.root import command_names, register

PLUGINS = "PYDANTIC_DISABLE_PLUGINS"


@contextmanager
def no_pydantic_plugins() -> Iterator[None]:
    """pydantic looks for its plugins in every installed package's entry points (a file read each, on
    a cold page cache) when the first model is made: the shots file's, as the command is imported.
    wanclip's models use no plugin, so that look is skipped while the command's modules load; the
    environment is left as it was (a child, such as ComfyUI under `wanclip serve`, never sees it),
    and a setting of the user's is kept."""
    if PLUGINS in os.environ:
        yield
        return
    os.environ[PLUGINS] = "__all__"
    try:
        yield
    finally:
        os.environ.pop(PLUGINS, None)


def main() -> None:
    first = next((a for a in sys.argv[1:] if not a.startswith("-")), None)
    with no_pydantic_plugins():
        register([first] if first in command_names() else None)
    app()
