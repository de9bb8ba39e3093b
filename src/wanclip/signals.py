"""SIGTERM handled like Ctrl-C: ``docker stop``, a CI cancel or ``timeout`` must clean up too.

A render takes both as events (``StopRequests``): its loop stops our prompts between two steps.
Elsewhere (stitch's ffmpeg, a download) ``terminate_as_interrupt`` still applies:
``terminate_as_interrupt()`` makes SIGTERM raise ``Terminated`` (a ``KeyboardInterrupt``) in the
main thread, so every ``except KeyboardInterrupt`` / ``finally`` that cleans up after Ctrl-C
(stitch's killing of its ffmpeg) runs for SIGTERM as well. The
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


class StopRequests:
    """SIGINT and SIGTERM recorded, never raised: the render loop takes them between its steps, so a
    stop cannot land between saving the ledger and posting a prompt.

    The handler only appends the signal's number to a list (no lock, no I/O: safe in a handler);
    ``take`` hands the loop the oldest one. ``request`` is the same for a ``KeyboardInterrupt``
    raised by a caller's callback.
    """

    def __init__(self) -> None:
        self.signals: list[int] = []

    def request(self, signum: int) -> None:
        self.signals.append(signum)

    def _handler(self, signum: int, frame: object) -> None:
        self.signals.append(signum)

    def take(self) -> int | None:
        return self.signals.pop(0) if self.signals else None

    @contextmanager
    def installed(self) -> Iterator[None]:
        """While inside, SIGINT and SIGTERM are recorded here (a no-op off the main thread)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {}
        try:
            for signum in (signal.SIGINT, signal.SIGTERM):
                previous[signum] = signal.signal(signum, self._handler)
        except (ValueError, OSError):  # not the main interpreter thread, or no such signal here
            pass
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


def signal_of(exc: BaseException) -> int:
    """The signal a ``KeyboardInterrupt`` stands for (``Terminated``: SIGTERM)."""
    return signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT


def exit_code_for_signal(signum: int) -> int:
    return EXIT_SIGTERM if signum == signal.SIGTERM else EXIT_SIGINT
