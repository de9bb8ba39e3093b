"""The event socket: pings while the server is silent, reconnects with the same client id."""

from __future__ import annotations

import queue
import threading
import time

import websocket

from wanclip.comfy.client import ComfyClient
from wanclip.comfy.events import Status
from wanclip.comfy.follow import Disconnected, EventStream, Reconnected


def drain(sink: queue.Queue, until, timeout: float = 60.0) -> list:  # ends at `until`; timeout: a stuck run
    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            seen.append(sink.get(timeout=0.1)[1])
        except queue.Empty:
            continue
        if until(seen):
            break
    return seen


class SilentSocket:
    """A server busy loading a model: nothing to say for a long time."""

    connected = True

    def __init__(self):
        self.pings = 0
        self.pinged_twice = threading.Event()

    def settimeout(self, seconds):
        self.timeout = seconds

    def recv(self):
        time.sleep(self.timeout)
        raise websocket.WebSocketTimeoutException("nothing yet")

    def ping(self):
        self.pings += 1
        if self.pings >= 2:
            self.pinged_twice.set()

    def close(self):
        self.connected = False


def test_a_silent_server_is_pinged_so_proxies_keep_the_socket(sim):
    silent = SilentSocket()
    client = ComfyClient(sim.url, ws_connect=lambda url, **kwargs: silent)
    stream = EventStream(client, "pinger", queue.Queue(), recv_timeout=0.02, ping_every=0.1)
    stream.start()
    pinged = silent.pinged_twice.wait(60)  # the event, not a sleep: a loaded machine pings later
    stream.stop()
    assert pinged and silent.pings >= 2
    assert silent.timeout == 0.02


def test_dropped_socket_is_reported_and_reopened_with_the_same_client_id(sim):
    sink: queue.Queue = queue.Queue()
    stream = EventStream(ComfyClient(sim.url), "same-id", sink, recv_timeout=0.05, backoff=(0.05,))
    stream.start()
    try:
        sink.get(timeout=60)
        sim.restart()  # closes every socket, like a real restart
        seen = drain(sink, lambda s: any(isinstance(e, Reconnected) for e in s))
        kinds = [type(e) for e in seen]
        assert kinds.index(Disconnected) < kinds.index(Reconnected)
        status = drain(sink, lambda s: any(isinstance(e, Status) for e in s))
        assert any(isinstance(e, Status) for e in status) and stream.connected
    finally:
        stream.stop()
