"""Following prompts on one server: the event socket on a thread, reconnecting with the same
``client_id``, and the ``/queue`` + ``/history`` reconciliation used whenever events may be lost.

ComfyUI sends a prompt's events only to the socket of the ``client_id`` that submitted it and
replays nothing, so a dropped socket loses events; ``prompt_states()`` tells where each prompt
really is. It reads ``/queue`` *before* ``/history``: a prompt can move from the queue into history
between the two reads but never back, so "in neither" really means lost (server restart).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from dataclasses import dataclass

import websocket

from wanclip.comfy.client import ComfyClient
from wanclip.comfy.events import Event, Status, parse
from wanclip.errors import ServerError

log = logging.getLogger("wanclip.follow")


@dataclass(frozen=True)
class Disconnected(Event):
    reason: str = ""


@dataclass(frozen=True)
class Reconnected(Event):
    pass


POLICY_VIOLATION = 1008  # newer ComfyUI: "Invalid client credentials" on a reconnect without the key


class ClosedByServer(websocket.WebSocketConnectionClosedException):
    def __init__(self, code: int | None, reason: str = ""):
        super().__init__(f"closed by the server (code {code}{': ' + reason if reason else ''})")
        self.code = code


def receive(ws):
    """The next text (or binary) frame; a close frame raises ``ClosedByServer`` with its code."""
    recv_data = getattr(ws, "recv_data", None)
    if recv_data is None:  # a stand-in socket with recv() only
        return ws.recv()
    opcode, data = recv_data()
    if opcode == websocket.ABNF.OPCODE_CLOSE:
        code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
        raise ClosedByServer(code, data[2:].decode("utf-8", "replace"))
    if opcode == websocket.ABNF.OPCODE_TEXT:
        return data.decode("utf-8", "replace")
    return data


def close_quietly(ws) -> None:
    """Close a websocket and its socket. websocket-client's ``close()`` does nothing once the peer
    has gone (``connected`` is already false), which would leak the socket: ``shutdown()`` too."""
    try:
        ws.close()
    except Exception:  # noqa: BLE001 - closing a broken socket may raise anything
        pass
    shutdown = getattr(ws, "shutdown", None)
    if shutdown is not None:
        try:
            shutdown()
        except Exception:  # noqa: BLE001
            pass


class EventStream:
    """The websocket of one server, read on a daemon thread into ``sink`` as ``(server_url, event)``.

    Supervised: whatever goes wrong in the reader (a dropped socket, a frame that breaks a parser,
    a bug) is reported (``Disconnected``) and the socket reopened with the same ``client_id``, with
    backoff, then reported again (``Reconnected``) so the caller reconciles. A replaced socket is
    closed; after ``stop()`` no socket is kept open. There is no idle timeout: a 14B model load is
    silent for minutes.
    """

    def __init__(self, client: ComfyClient, client_id: str, sink: queue.Queue,
                 recv_timeout: float = 0.5, backoff: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0, 2.0),
                 connect_timeout: float = 10.0, ping_every: float = 20.0, feature_flags: dict | None = None):
        self.client, self.client_id, self.sink = client, client_id, sink
        self.recv_timeout, self.backoff = recv_timeout, backoff
        self.connect_timeout, self.ping_every = connect_timeout, ping_every
        self.feature_flags = feature_flags  # sent first on every connect, where the server has /features
        self.credential_key: str | None = None  # from the server's first status (newer ComfyUI)
        self.refused = 0  # 1008 closes in a row
        self.connected = False
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._ws = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Connect now (raising ``ServerError`` if the server is not there), then read on a thread."""
        self._ws = self._open()
        self.connected = True
        self._thread = threading.Thread(target=self._run, name=f"ws {self.client.url}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _close(self) -> None:
        with self._lock:
            ws, self._ws = self._ws, None
        if ws is not None:
            close_quietly(ws)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._read(self._ws)
            except Exception as exc:  # noqa: BLE001 - supervised: any failure reconnects, none is fatal
                if self._stop.is_set():
                    break
                if isinstance(exc, ClosedByServer) and exc.code == POLICY_VIOLATION:
                    self.refused += 1
                    if self.refused > 1:  # refused even with our key: poll instead, never loop
                        self.connected = False
                        self._close()
                        self.sink.put((self.client.url, Disconnected(
                            None, reason="the server refused our websocket credentials (1008); following "
                                         "the shots by polling /queue and /history")))
                        break
                if not isinstance(exc, OSError | websocket.WebSocketException):
                    log.warning("event reader of %s failed (%s: %s); reconnecting", self.client.url,
                                type(exc).__name__, exc)
                self.connected = False
                self._close()
                reason = str(exc) if isinstance(exc, ClosedByServer) else type(exc).__name__
                self.sink.put((self.client.url, Disconnected(None, reason=reason)))
                if not self._reconnect():
                    break
                self.connected = True
                self.sink.put((self.client.url, Reconnected(None)))
        self._close()

    def _open(self):
        ws = self.client.open_ws(self.client_id, timeout=self.connect_timeout)
        try:
            if self.credential_key:  # a reconnect with our client id must show the key first
                ws.send(json.dumps({"type": "credential_auth", "data": {"credential_key": self.credential_key}}))
            if self.feature_flags is not None:  # then what we support (no previews)
                ws.send(json.dumps({"type": "feature_flags", "data": self.feature_flags}))
        except (OSError, websocket.WebSocketException) as exc:
            close_quietly(ws)
            raise ServerError(f"the event socket of ComfyUI at {self.client.url} closed at once: "
                              f"{type(exc).__name__}", server=self.client.url) from exc
        ws.settimeout(self.recv_timeout)  # short, only so that stop() is noticed
        return ws

    def _read(self, ws) -> None:
        if ws is None:
            raise websocket.WebSocketConnectionClosedException("no socket")
        last_ping = time.monotonic()
        while not self._stop.is_set():
            if time.monotonic() - last_ping > self.ping_every:
                # A model load is silent for minutes; proxies (nginx: 60 s) close idle sockets.
                ws.ping()
                last_ping = time.monotonic()
            try:
                frame = receive(ws)
            except websocket.WebSocketTimeoutException:
                continue
            if frame == "" and not ws.connected:
                raise websocket.WebSocketConnectionClosedException("closed by the server")
            event = parse(frame)
            if isinstance(event, Status) and event.credential_key:
                self.credential_key = event.credential_key  # each connection's first status may renew it
            if isinstance(event, Status) and event.sid:
                self.refused = 0  # accepted
            if event is not None:
                self.sink.put((self.client.url, event))

    def _reconnect(self) -> bool:
        attempt = 0
        while not self._stop.is_set():
            delay = self.backoff[min(attempt, len(self.backoff) - 1)]
            if self._stop.wait(delay):
                return False
            attempt += 1
            try:
                ws = self._open()
            except ServerError:
                continue
            with self._lock:
                if self._stop.is_set():  # stopped while connecting: keep no socket open
                    close_quietly(ws)
                    return False
                self._ws = ws
            return True
        return False


def prompt_states(client: ComfyClient, prompt_ids: list[str]) -> dict[str, tuple[str, dict | None]]:
    """Where each prompt is: ``running``, ``pending``, ``done`` (with its history entry) or ``missing``."""
    running, pending = client.queued_ids()
    states: dict[str, tuple[str, dict | None]] = {}
    for pid in prompt_ids:
        if pid in running:
            states[pid] = ("running", None)
        elif pid in pending:
            states[pid] = ("pending", None)
        else:
            entry = client.history(pid)
            states[pid] = ("done", entry) if entry else ("missing", None)
    return states


def wait_for_history(client: ComfyClient, prompt_id: str, timeout: float = 30.0, interval: float = 0.05) -> dict:
    """The history entry after ``executing: null``; retried because a proxy or older server may lag."""
    deadline = time.monotonic() + timeout
    while True:
        entry = client.history(prompt_id)
        if entry:
            return entry
        if time.monotonic() > deadline:
            raise ServerError(f"ComfyUI at {client.url} finished prompt {prompt_id} but has no history for it "
                              f"after {timeout:.0f} s", "rerun: the shot will be checked again", server=client.url)
        time.sleep(interval)
