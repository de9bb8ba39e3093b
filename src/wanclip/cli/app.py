"""The whole CLI with every command registered: what tests and the docs generator import.

The ``wanclip`` console script is ``wanclip.cli.entry:main``, which registers only the command
being run (a faster start); ``main()`` here is the same CLI with everything loaded.
"""

from __future__ import annotations

from wanclip.cli.base import app
from wanclip.cli.root import register

register()


def main() -> None:
    app()
