"""What a render tells its caller: one frozen dataclass per kind of event, handed to ``on_event``.

A library user matches on the class (``case ShotDone(shot=name, clip=clip)``); the CLI draws them
or prints ``event.to_json()``, one JSON line each (``wanclip render --json``): ``event``, ``time``,
then ``shot``/``index``/``server`` where known, then the event's own fields in declaration order.

The render loop and the shot machine still speak in a kind and a dict (``Emit(kind, data)``);
``RenderEvent.make`` turns those into the typed event at the one place they leave the loop, so
the emit sites need not know these classes (``RenderEvent(kind, shot, index, server, data)``, the
call they made when this was one class, does the same). A key an emit site adds that the class does not
declare is kept in ``extra`` (and in the JSON line), never dropped. This module imports nothing
from wanclip.
"""

from __future__ import annotations

import time
from dataclasses import Field, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

WHERE = ("shot", "index", "server")  # the JSON line's keys after event and time


def timestamp(at: float | None = None) -> float:
    """The one format of every JSON event's ``time``: Unix time (seconds since 1970-01-01 UTC) as a
    number, to the millisecond (``1765130400.123``)."""
    return round(time.time() if at is None else at, 3)


def stamped(line: dict[str, Any]) -> dict[str, Any]:
    """``line`` (a JSON event: it has ``event``) with ``time`` second, the stamp of now unless it has one."""
    rest = {k: v for k, v in line.items() if k not in ("event", "time")}
    return {"event": line["event"], "time": line.get("time", timestamp()), **rest}
OMIT_NONE = {"omit_none": True}  # a field absent from today's JSON line when not set


class _ByKind(type):
    """``RenderEvent(kind, shot, index, server, data)``, the loop's old call, builds the typed event."""

    def __call__(cls, *args, **kwargs):
        if cls is RenderEvent:
            return cls.make(*args, **kwargs)
        return super().__call__(*args, **kwargs)


@dataclass(frozen=True, kw_only=True)
class RenderEvent(metaclass=_ByKind):
    """Base of every event. ``kind`` is the JSON line's ``event``; ``at`` its ``time`` (epoch s)."""

    KINDS: ClassVar[dict[str, type[RenderEvent]]] = {}
    kind: str = field(default="", init=False)
    shot: str | None = None
    index: int | None = None  # the shot's number in the film, from 1
    server: str | None = None  # printable: never carries credentials
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    at: float = field(default_factory=time.time, compare=False)

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        kind = cls.__dict__.get("kind")  # the Field as written in the subclass (before @dataclass)
        kind = kind.default if isinstance(kind, Field) else kind
        if isinstance(kind, str) and kind:
            RenderEvent.KINDS[kind] = cls

    @classmethod
    def make(cls, kind: str, shot: str | None = None, index: int | None = None, server: str | None = None,
             data: dict | None = None) -> RenderEvent:
        """The typed event of ``kind`` from an emit site's dict (unknown keys go to ``extra``)."""
        data = dict(data or {})
        target = cls.KINDS.get(kind)
        if target is None:
            return OtherEvent(name=kind, shot=shot, index=index, server=server, extra=data)
        own = {f.name for f in fields(target) if f.init and f.name not in (*WHERE, "extra", "at")}
        known = {k: data.pop(k) for k in list(data) if k in own}
        return target(shot=shot, index=index, server=server, extra=data, **known)

    @property
    def data(self) -> dict[str, Any]:
        """The event's own fields (and ``extra``) as a dict: what follows ``server`` in the JSON line."""
        out = {}
        for f in fields(self):
            if f.name in ("kind", *WHERE, "extra", "at"):
                continue
            value = getattr(self, f.name)
            if value is None and f.metadata.get("omit_none"):
                continue
            out[f.name] = str(value) if isinstance(value, Path) else value
        out.update(self.extra)
        return out

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"event": self.kind, "time": timestamp(self.at)}
        out.update({k: v for k, v in ((k, getattr(self, k)) for k in WHERE) if v is not None})
        out.update(self.data)
        return out


@dataclass(frozen=True, kw_only=True)
class OtherEvent(RenderEvent):
    """An event of a kind this module does not know yet (kept, so nothing is lost on the way)."""

    name: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", self.name)

    @property
    def data(self) -> dict[str, Any]:
        return dict(self.extra)


# -- the film ---------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class FilmPlanned(RenderEvent):
    """The render starts: ``shots`` selected, ``todo`` of them still to render, on ``servers``."""

    kind: str = field(default="plan", init=False)
    shots: int = 0
    todo: int = 0
    servers: list[str] = field(default_factory=list)
    posts: int | None = field(default=None, metadata=OMIT_NONE)  # post clips to make (``render.posts``); absent when none


@dataclass(frozen=True, kw_only=True)
class FilmStitching(RenderEvent):
    kind: str = field(default="stitching", init=False)
    shots: int = 0


@dataclass(frozen=True, kw_only=True)
class FilmStitched(RenderEvent):
    """The film was written to ``output`` (``seconds`` long)."""

    kind: str = field(default="stitched", init=False)
    output: Path | None = None
    seconds: float = 0.0


@dataclass(frozen=True, kw_only=True)
class FilmKept(RenderEvent):
    """Same clips, same cuts: the film on disk is already this one."""

    kind: str = field(default="stitch_kept", init=False)
    output: Path | None = None
    seconds: float = 0.0


@dataclass(frozen=True, kw_only=True)
class RenderWarning(RenderEvent):
    kind: str = field(default="warning", init=False)
    message: str = ""


# -- the servers ------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class ServerFound(RenderEvent):
    """A server passed the checks before the render: its ComfyUI version, GPU and features."""

    kind: str = field(default="server", init=False)
    version: str | None = None
    device: str | None = None
    features: str | None = None


@dataclass(frozen=True, kw_only=True)
class ServerUnreachable(RenderEvent):
    """A server has not answered for ``seconds``: with ``moves``, its shots go to the other servers
    after ``limit`` seconds (the grace); else the render waits for it up to ``limit`` (``--timeout``)."""

    kind: str = field(default="server_unreachable", init=False)
    seconds: float = 0.0
    limit: float = 0.0
    moves: bool = False


@dataclass(frozen=True, kw_only=True)
class ServerDown(RenderEvent):
    """Given up on for this run: its shots move to the other servers."""

    kind: str = field(default="server_down", init=False)
    seconds: float = 0.0


@dataclass(frozen=True, kw_only=True)
class ServerBack(RenderEvent):
    kind: str = field(default="server_back", init=False)
    seconds: float = 0.0


@dataclass(frozen=True, kw_only=True)
class SocketLost(RenderEvent):
    """The event socket dropped: reconnecting, following the shots by polling meanwhile."""

    kind: str = field(default="socket_lost", init=False)
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class SocketBack(RenderEvent):
    kind: str = field(default="socket_back", init=False)


# -- one shot ---------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class ShotClip(RenderEvent):
    """A shot whose clip is on disk: ``clip`` is relative to the film folder."""

    clip: str = ""


@dataclass(frozen=True, kw_only=True)
class ShotSkipped(ShotClip):
    """Done in an earlier run: kept, not rendered again."""

    kind: str = field(default="skipped", init=False)


@dataclass(frozen=True, kw_only=True)
class _Made(ShotClip):
    """A prompt's clip, made and verified: ``seconds`` on the GPU, per node label in ``node_seconds``."""

    seconds: float = 0.0
    node_seconds: dict[str, float] = field(default_factory=dict)
    frames: int = 0


@dataclass(frozen=True, kw_only=True)
class ShotDone(_Made):
    """Rendered and verified."""

    kind: str = field(default="done", init=False)


@dataclass(frozen=True, kw_only=True)
class PostDone(_Made):
    """The shot's post clip (``render.posts``) is made and verified (``frames`` at the post stage's rate)."""

    kind: str = field(default="post_done", init=False)


@dataclass(frozen=True, kw_only=True)
class _Failure(RenderEvent):
    """``error``: ``node``, ``class`` and ``message`` (as the ledger keeps it)."""

    error: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class PostFailed(_Failure):
    """The shot rendered, but its post step failed (its clip stays; a rerun runs only the post step)."""

    kind: str = field(default="post_failed", init=False)


@dataclass(frozen=True, kw_only=True)
class _Posted(RenderEvent):
    """The server has the prompt (``found``: it was found there after an unsure submission)."""

    prompt_id: str | None = None
    attempt: int = 0
    found: bool | None = field(default=None, metadata=OMIT_NONE)


@dataclass(frozen=True, kw_only=True)
class PostQueued(_Posted):
    """The server has the shot's post prompt."""

    kind: str = field(default="post_submitted", init=False)


@dataclass(frozen=True, kw_only=True)
class PostStarted(RenderEvent):
    kind: str = field(default="post_started", init=False)


@dataclass(frozen=True, kw_only=True)
class ShotQueued(_Posted):
    """The server has the shot's prompt."""

    kind: str = field(default="submitted", init=False)


@dataclass(frozen=True, kw_only=True)
class ShotReattached(RenderEvent):
    """An earlier run's prompt is still on its server: followed, not submitted again."""

    kind: str = field(default="reattached", init=False)
    prompt_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class ShotSubmitRetry(RenderEvent):
    kind: str = field(default="submit_retry", init=False)
    reason: str = ""
    retry_in: float = 0.0
    tries: int = 0


@dataclass(frozen=True, kw_only=True)
class ShotStarted(RenderEvent):
    kind: str = field(default="started", init=False)


@dataclass(frozen=True, kw_only=True)
class ShotCached(RenderEvent):
    """ComfyUI reused these nodes' outputs from its cache."""

    kind: str = field(default="cached", init=False)
    nodes: list[str] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class ShotNode(RenderEvent):
    """A node started; ``label`` names its part (``model load``, ``high-noise sampler``, …)."""

    kind: str = field(default="node", init=False)
    node: str | None = None
    label: str = "other"


@dataclass(frozen=True, kw_only=True)
class ShotProgress(RenderEvent):
    """Step ``value`` of ``max`` of the node ``label``."""

    kind: str = field(default="progress", init=False)
    node: str | None = None
    label: str = "other"
    value: int = 0
    max: int = 0


@dataclass(frozen=True, kw_only=True)
class ShotDownloadRetry(RenderEvent):
    kind: str = field(default="download_retry", init=False)
    reason: str = ""
    retry_in: float = 0.0


@dataclass(frozen=True, kw_only=True)
class ShotFailed(_Failure):
    kind: str = field(default="failed", init=False)


@dataclass(frozen=True, kw_only=True)
class ShotLost(RenderEvent):
    """Its server lost it (or was given up on): it is submitted again. ``server``: the old one."""

    kind: str = field(default="lost", init=False)
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class ShotCancelling(RenderEvent):
    kind: str = field(default="cancelling", init=False)
    where: str = ""


@dataclass(frozen=True, kw_only=True)
class ShotCancelled(RenderEvent):
    kind: str = field(default="cancelled", init=False)
    how: str = ""
