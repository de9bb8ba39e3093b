"""A node pack's background encodes (WanclipSaveVideo): each on its own thread, stopped with the
server, and silent once the server restarted since its prompt ran."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class BackgroundEncodes:
    def __init__(self, lock: threading.RLock):
        self._lock = lock  # the engine's: a payload is delivered under it, never after a restart
        self._threads: list[threading.Thread] = []
        self.stopped = threading.Event()

    def start(self, work, fail_message: str | None, current: Callable[[], bool],
              deliver: Callable[[dict], None]) -> None:
        """``work(wait, fail_message)`` runs on its own thread and returns the payload to ``deliver``
        (None: nothing to send). ``wait(seconds)`` is False once the server stopped, or restarted
        since the prompt ran (``current()`` false)."""
        def wait(seconds: float) -> bool:
            end = time.monotonic() + max(seconds, 0.0)
            while True:
                if self.stopped.is_set() or not current():
                    return False
                left = end - time.monotonic()
                if left <= 0:
                    return True
                self.stopped.wait(min(left, 0.05))

        def body() -> None:
            try:
                payload = work(wait, fail_message)
                with self._lock:
                    if payload is not None and current() and not self.stopped.is_set():
                        deliver(payload)
            finally:
                with self._lock:
                    self._threads = [t for t in self._threads if t is not threading.current_thread()]

        thread = threading.Thread(target=body, name="wanclip-sim-encode", daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def join(self, timeout: float) -> None:
        for thread in list(self._threads):
            thread.join(timeout=timeout)
