"""A child process started while another thread changes an environment variable.

On Linux, Python starts children with vfork; given no ``env``, the child execs with the C
library's ``environ`` array, which a thread setting a variable at that moment may move: the exec
fails with EFAULT ("[Errno 14] Bad address"). The suite saw it once (a simulator thread spawning
ffmpeg while a test set a variable). Every ffmpeg wanclip and its simulator start is given its
environment, built before the fork.
"""

from __future__ import annotations

import os
import threading

from wanclip import media


def test_ffmpeg_starts_while_another_thread_changes_the_environment():
    exe = media.ffmpeg_exe()
    stop = threading.Event()
    failures: list[BaseException] = []

    def churn() -> None:
        i = 0
        while not stop.is_set():
            os.environ[f"WANCLIP_TEST_CHURN_{i % 200}"] = "x" * (i % 40)
            if i % 7 == 0:
                os.environ.pop(f"WANCLIP_TEST_CHURN_{(i * 13) % 200}", None)
            i += 1

    def start_ffmpeg() -> None:
        for _ in range(40):
            try:
                media.spawn([exe, "-hide_banner", "-version"], "asking its version", timeout=60)
            except BaseException as exc:  # noqa: BLE001 - collected for the assertion
                failures.append(exc)

    churner = threading.Thread(target=churn)
    churner.start()
    try:
        workers = [threading.Thread(target=start_ffmpeg) for _ in range(3)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=120)
    finally:
        stop.set()
        churner.join()
        for name in [k for k in os.environ if k.startswith("WANCLIP_TEST_CHURN_")]:
            del os.environ[name]
    assert not failures, failures[:3]
