"""ComfyUI websocket messages as typed events. Pure parsing: no I/O.

Messages are ``{"type": T, "data": D}`` (comfyui-api.md §2.3). Binary frames (previews) and types
we do not use become ``None`` so a newer server's extra messages (``progress_state``,
``feature_flags``, custom nodes') never break a render.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

log = logging.getLogger("wanclip.events")


@dataclass(frozen=True)
class Event:
    prompt_id: str | None


@dataclass(frozen=True)
class ExecutionStart(Event):
    timestamp: int | None = None


@dataclass(frozen=True)
class ExecutionCached(Event):
    nodes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Executing(Event):
    """A node started; ``node is None`` means the prompt is over and its history is written.
    ``display_node``: the graph's node id when ``node`` is an execution id (``"54:73"``)."""

    node: str | None = None
    display_node: str | None = None


@dataclass(frozen=True)
class NodeState:
    """One node of a ``progress_state`` message (ComfyUI ≥ 0.3.5x; ``activity``/``seconds`` newer)."""

    node: str  # the graph's id (display_node_id, else real_node_id, else the key)
    state: str = ""  # pending | running | finished | error
    activity: str | None = None  # e.g. "loading": what a running node spends its time on
    seconds: dict = field(default_factory=dict)  # set when it finishes: {"total": s, "<activity>": s}


@dataclass(frozen=True)
class ProgressState(Event):
    nodes: tuple[NodeState, ...] = ()


@dataclass(frozen=True)
class Progress(Event):
    node: str | None = None
    value: int = 0
    max: int = 0


@dataclass(frozen=True)
class Executed(Event):
    node: str | None = None
    output: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ExecutionSuccess(Event):
    timestamp: int | None = None


@dataclass(frozen=True)
class ExecutionError(Event):
    node_id: str | None = None
    node_type: str | None = None
    exception_type: str = ""
    exception_message: str = ""
    timestamp: int | None = None


@dataclass(frozen=True)
class ExecutionInterrupted(Event):
    node_id: str | None = None
    node_type: str | None = None


@dataclass(frozen=True)
class Status(Event):
    queue_remaining: int = 0
    sid: str | None = None
    credential_key: str | None = None  # newer ComfyUI over loopback/TLS: present it on a reconnect


@dataclass(frozen=True)
class VideoSaved(Event):
    """``wanclip.video`` (wanclip's node pack): the background encode of ``filename`` is over,
    ``status`` "done" or "failed"; ``seconds`` from the frames queued to the file renamed."""

    node: str | None = None
    filename: str = ""
    subfolder: str = ""
    kind: str = "output"
    status: str = "done"
    message: str = ""
    frames: int = 0
    bytes: int = 0
    seconds: float = 0.0

    @property
    def key(self) -> tuple[str, str, str]:
        return self.kind, self.subfolder, self.filename


VIDEO_EVENT = "wanclip.video"


def _str(value) -> str | None:
    return None if value is None else str(value)


def parse(frame: str | bytes) -> Event | None:
    """One websocket frame to an event, or None for frames wanclip does not use.

    Total: a malformed frame (``{"type": "progress", "data": {"value": "12%"}}``, a list where a
    dict belongs ...) is logged and dropped, never raised, so no frame can stop the reader.
    """
    if isinstance(frame, bytes | bytearray):
        return None
    try:
        message = json.loads(frame)
    except (TypeError, ValueError):  # not JSON text: dropped, as before
        return None
    return from_message(message)


def _int(value) -> int:
    return int(float(value or 0))


def from_message(message: object) -> Event | None:
    """A decoded ``{"type", "data"}`` message as an event: ``parse`` after ``json.loads``, as total."""
    try:
        return _from_message(message)
    except (TypeError, ValueError, AttributeError, KeyError, OverflowError) as exc:
        log.warning("dropped a malformed ComfyUI message (%s: %s): %.200r", type(exc).__name__, exc, message)
        return None


def _from_message(message: object) -> Event | None:
    if not isinstance(message, dict) or not isinstance(message.get("data"), dict):
        return None
    kind, data = message.get("type"), message["data"]
    pid = _str(data.get("prompt_id"))
    if kind == "executing":
        return Executing(pid, node=_str(data.get("node")), display_node=_str(data.get("display_node")))
    if kind == "progress_state":
        return ProgressState(pid, nodes=tuple(_node_state(key, value) for key, value in
                                              (data.get("nodes") or {}).items()))
    if kind == "progress":
        return Progress(pid, node=_str(data.get("node")), value=_int(data.get("value")),
                        max=_int(data.get("max")))
    if kind == "execution_start":
        return ExecutionStart(pid, timestamp=data.get("timestamp"))
    if kind == "execution_cached":
        return ExecutionCached(pid, nodes=tuple(str(n) for n in data.get("nodes") or ()))
    if kind == "executed":
        output = data.get("output") or {}
        if not isinstance(output, dict):
            raise TypeError(f"executed output is a {type(output).__name__}")
        return Executed(pid, node=_str(data.get("node")), output=output)
    if kind == "execution_success":
        return ExecutionSuccess(pid, timestamp=data.get("timestamp"))
    if kind == "execution_error":
        return ExecutionError(pid, node_id=_str(data.get("node_id")), node_type=_str(data.get("node_type")),
                              exception_type=str(data.get("exception_type") or ""),
                              exception_message=str(data.get("exception_message") or "").strip(),
                              timestamp=data.get("timestamp"))
    if kind == "execution_interrupted":
        return ExecutionInterrupted(pid, node_id=_str(data.get("node_id")), node_type=_str(data.get("node_type")))
    if kind == VIDEO_EVENT:
        return _video(pid, data)
    if kind == "status":
        info = (data.get("status") or {}).get("exec_info") or {}
        return Status(None, queue_remaining=_int(info.get("queue_remaining")), sid=_str(data.get("sid")),
                      credential_key=_str(data.get("credential_key")))
    return None


def _video(pid: str | None, data: dict) -> VideoSaved | None:
    """A well-formed ``wanclip.video`` message; None for one without a file name or a final status."""
    if not isinstance(data.get("filename"), str) or data.get("status") not in ("done", "failed"):
        return None
    try:
        frames, size = int(data.get("frames") or 0), int(data.get("bytes") or 0)
    except (TypeError, ValueError):
        frames, size = 0, 0
    try:
        seconds = max(0.0, float(data.get("seconds") or 0.0))
    except (TypeError, ValueError):
        seconds = 0.0
    return VideoSaved(pid, _str(data.get("node")), data["filename"], str(data.get("subfolder") or ""),
                      str(data.get("type") or "output"), data["status"], str(data.get("message") or ""),
                      frames, size, seconds)


def _node_state(key: str, value: dict) -> NodeState:
    if not isinstance(value, dict):
        raise TypeError(f"progress_state node {key!r} is a {type(value).__name__}")
    seconds = value.get("seconds") or {}
    if not isinstance(seconds, dict):
        raise TypeError("progress_state seconds is not an object")
    node = _str(value.get("display_node_id") or value.get("real_node_id") or key)
    return NodeState(node=node, state=str(value.get("state") or ""), activity=_str(value.get("activity")),
                     seconds={str(k): float(v) for k, v in seconds.items() if isinstance(v, int | float)})


def history_error(entry: dict) -> ExecutionError | ExecutionInterrupted | None:
    """The failure recorded in a history entry's ``status.messages``, if any."""
    for kind, data in _messages(entry):
        if kind in ("execution_error", "execution_interrupted"):
            event = parse(json.dumps({"type": kind, "data": data}))
            if event is not None:
                return event  # type: ignore[return-value]
    return None


def history_timestamps(entry: dict) -> tuple[int | None, int | None]:
    """(execution_start, execution_success) timestamps from a history entry, in ms."""
    found = {kind: data.get("timestamp") for kind, data in _messages(entry)}
    return found.get("execution_start"), found.get("execution_success")


def _messages(entry: dict) -> list[tuple[str, dict]]:
    """A history entry's ``status.messages`` as (kind, data) pairs, skipping malformed ones."""
    status = entry.get("status") if isinstance(entry, dict) else None
    messages = status.get("messages") if isinstance(status, dict) else None
    return [(m[0], m[1]) for m in messages or [] if isinstance(m, list | tuple) and len(m) == 2
            and isinstance(m[1], dict)]
