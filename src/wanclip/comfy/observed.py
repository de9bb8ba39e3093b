"""What one ComfyUI server was *seen* doing: the behaviours no route shows (``Capabilities``'
``refuses_known_ids``, ``credential_handshake``, ``progress_state``, ``progress_activity``).

Each starts ``None`` ("not known yet") and is set only by what the server sent: a version number,
its feature flags or its other routes never decide one (a real 0.33.0 has the jobs cancel routes
and ``node_replacements`` yet re-runs a re-posted id and sends no ``activity``). ``Observed`` reads
parsed websocket events and POST answers; ``handshake`` opens one socket to see its first frame.
"""

from __future__ import annotations

import uuid

import websocket

from wanclip.comfy.client import ComfyClient
from wanclip.comfy.events import Event, Executing, ExecutionSuccess, ProgressState, Status, parse
from wanclip.comfy.follow import close_quietly, receive
from wanclip.errors import ServerError


class Observed:
    """The four behaviours as seen so far (``None``: not seen either way)."""

    def __init__(self) -> None:
        self.refuses_known_ids: bool | None = None
        self.credential_handshake: bool | None = None
        self.progress_state: bool | None = None
        self.progress_activity: bool | None = None
        self._ran: set[str] = set()  # prompts seen executing a node
        self._bare: set[str] = set()  # prompts with a running node in progress_state, no activity/seconds yet

    def seen(self) -> dict[str, bool | None]:
        return {"refuses_known_ids": self.refuses_known_ids, "credential_handshake": self.credential_handshake,
                "progress_state": self.progress_state, "progress_activity": self.progress_activity}

    def event(self, event: Event | None) -> None:
        """One parsed websocket message (``events.parse``)."""
        if isinstance(event, Status) and event.sid is not None:  # a socket's first frame
            self.credential_handshake = event.credential_key is not None
        elif isinstance(event, Executing) and event.node is not None and event.prompt_id:
            self._ran.add(event.prompt_id)
        elif isinstance(event, ProgressState):
            self.progress_state = True
            if any(n.activity or n.seconds for n in event.nodes):
                self.progress_activity = True
            elif event.prompt_id and any(n.state == "running" for n in event.nodes):
                self._bare.add(event.prompt_id)
        elif isinstance(event, ExecutionSuccess) and event.prompt_id:
            # a whole prompt ran: what it never sent, this server does not send
            if event.prompt_id in self._ran and self.progress_state is None:
                self.progress_state = False
            if event.prompt_id in self._bare and self.progress_activity is None:
                self.progress_activity = False
            self._ran.discard(event.prompt_id)
            self._bare.discard(event.prompt_id)

    def message(self, message: str | bytes) -> None:
        """One raw websocket frame."""
        try:
            self.event(parse(message))
        except (TypeError, ValueError):
            pass

    def reposted(self, status: int) -> None:
        """The answer to a ``POST /prompt`` of an id the server already had: 409 refuses it, 200 queued
        it again."""
        if status == 409:
            self.refuses_known_ids = True
        elif status == 200:
            self.refuses_known_ids = False


def handshake(client: ComfyClient, timeout: float = 5.0) -> bool | None:
    """Open one event socket under a fresh client id, read its first ``status`` frame and close it:
    does it carry a ``credential_key`` (``True``)? ``None`` when no such frame came. Queues nothing.
    The server asks for the key only over TLS or from a loopback peer, so the answer is this
    client's."""
    observed = Observed()
    try:
        ws = client.open_ws(f"wanclip-doctor-{uuid.uuid4()}", timeout=timeout)
    except ServerError:
        return None
    try:
        for _ in range(8):  # the first status comes first; a busy server's events may follow
            observed.message(receive(ws))
            if observed.credential_handshake is not None:
                break
    except (OSError, websocket.WebSocketException):
        pass
    finally:
        close_quietly(ws)
    return observed.credential_handshake
