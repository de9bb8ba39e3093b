"""ComfyUI websocket messages as typed events. Pure parsing: no I/O.

Messages are ``{"type": T, "data": D}`` (comfyui-api.md §2.3). Binary frames (previews) and types
we do not use become ``None`` so a newer server's extra messages (``progress_state``,
``feature_flags``, custom nodes') never break a render.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field


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
    """A node started; ``node is None`` means the prompt is over and its history is written."""

    node: str | None = None


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


def _str(value) -> str | None:
    return None if value is None else str(value)


def parse(frame: str | bytes) -> Event | None:
    """One websocket frame to an event, or None for frames wanclip does not use."""
    if isinstance(frame, bytes | bytearray):
        return None
    try:
        message = json.loads(frame)
    except ValueError:
        return None
    if not isinstance(message, dict) or not isinstance(message.get("data"), dict):
        return None
    kind, data = message.get("type"), message["data"]
    pid = _str(data.get("prompt_id"))
    if kind == "executing":
        return Executing(pid, node=_str(data.get("node")))
    if kind == "progress":
        return Progress(pid, node=_str(data.get("node")), value=int(data.get("value") or 0),
                        max=int(data.get("max") or 0))
    if kind == "execution_start":
        return ExecutionStart(pid, timestamp=data.get("timestamp"))
    if kind == "execution_cached":
        return ExecutionCached(pid, nodes=tuple(str(n) for n in data.get("nodes") or ()))
    if kind == "executed":
        return Executed(pid, node=_str(data.get("node")), output=data.get("output") or {})
    if kind == "execution_success":
        return ExecutionSuccess(pid, timestamp=data.get("timestamp"))
    if kind == "execution_error":
        return ExecutionError(pid, node_id=_str(data.get("node_id")), node_type=data.get("node_type"),
                              exception_type=str(data.get("exception_type") or ""),
                              exception_message=str(data.get("exception_message") or "").strip(),
                              timestamp=data.get("timestamp"))
    if kind == "execution_interrupted":
        return ExecutionInterrupted(pid, node_id=_str(data.get("node_id")), node_type=data.get("node_type"))
    if kind == "status":
        info = (data.get("status") or {}).get("exec_info") or {}
        return Status(None, queue_remaining=int(info.get("queue_remaining") or 0))
    return None


def history_error(entry: dict) -> ExecutionError | ExecutionInterrupted | None:
    """The failure recorded in a history entry's ``status.messages``, if any."""
    for kind, data in (entry.get("status") or {}).get("messages") or []:
        if kind in ("execution_error", "execution_interrupted"):
            event = parse(json.dumps({"type": kind, "data": data}))
            if event is not None:
                return event  # type: ignore[return-value]
    return None


def history_timestamps(entry: dict) -> tuple[int | None, int | None]:
    """(execution_start, execution_success) timestamps from a history entry, in ms."""
    found = {kind: data.get("timestamp") for kind, data in (entry.get("status") or {}).get("messages") or []}
    return found.get("execution_start"), found.get("execution_success")
