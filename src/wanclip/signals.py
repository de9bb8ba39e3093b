"""SIGTERM handled like Ctrl-C: ``docker stop``, a CI cancel or ``timeout`` must clean up too.

``terminate_as_interrupt()`` makes SIGTERM raise ``Terminated`` (a ``KeyboardInterrupt``) in the
main thread, so every ``except KeyboardInterrupt`` / ``finally`` that cleans up after Ctrl-C
(render's cancel of our prompts, stitch's killing of its ffmpeg) runs for SIGTERM as well. The
exit code then is 143 (128 + SIGTERM) instead of 130.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

EXIT_SIGINT = 130
EXIT_SIGTERM = 143


class Terminated(KeyboardInterrupt):
    """The process was asked to stop by SIGTERM."""


def exit_code_for(exc: BaseException) -> int:
    return EXIT_SIGTERM if isinstance(exc, Terminated) else EXIT_SIGINT


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM raises ``Terminated`` in the main thread (a no-op off the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    try:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except (ValueError, OSError):  # not the main interpreter thread, or no SIGTERM here
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
