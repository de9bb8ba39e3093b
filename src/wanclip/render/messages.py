"""What the shot machine (``wanclip.render.shot``) is told, and what it asks for: plain data.

Inputs are what happened (the answer to a submission, what the server says of a prompt, a
download's result, a tick, Ctrl-C); ComfyUI's websocket events (``wanclip.comfy.events``) are
inputs too. Effects are what the caller must do (post, read history, download, delete, interrupt,
look up, save the ledger, tell the person, refuse the render). None of them does anything itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# -- what the machine is told ----------------------------------------------------------------------


@dataclass(frozen=True)
class Assign:
    """Submit the shot to ``server`` under ``prompt_id`` (the id is ours, chosen by the caller)."""

    server: str
    prompt_id: str
    start_sha256: str | None = None  # a chain link: the predecessor's clip it starts from


@dataclass(frozen=True)
class Blocked:
    """The shot cannot be submitted at all: the shot it continues from failed."""

    message: str


@dataclass(frozen=True)
class Submitted:
    """POST /prompt answered 200 (or 409 "already exists": it is there)."""

    posted_sha256: str | None = None  # of the graph exactly as posted (the ledger keeps it)
    job_id: str | None = None  # the server's own id of the job, where the server picks it (Comfy API v2)
    backend: str | None = None  # the kind of server that took it ("v2"; None: native ComfyUI)


@dataclass(frozen=True)
class SubmitRejected:
    """POST /prompt answered 400: validation refused it, nothing ran. ``first``: nothing of this run
    was accepted yet (then the whole render is refused, exit 2)."""

    message: str
    node_errors: dict = field(default_factory=dict)
    error: dict = field(default_factory=dict)  # ComfyUI's top-level error (type, message, details)
    first: bool = False
    server: str | None = None  # the URL that refused it (printable)


@dataclass(frozen=True)
class SubmitUnsure:
    """POST /prompt failed with a 5xx, a timeout or a dropped connection: it may be queued or not."""

    message: str
    posted_sha256: str | None = None  # of the graph that may have been posted (None: nothing was)


@dataclass(frozen=True)
class ServerSays:
    """Where ``/queue`` + ``/history`` (or the jobs API) put the prompt: running, pending, done, missing.
    ``first``: nothing of this run was accepted yet (a prompt that never got in then refuses the render)."""

    state: str
    entry: dict | None = None
    first: bool = False


@dataclass(frozen=True)
class HistoryRead:
    entry: dict


@dataclass(frozen=True)
class HistoryMissing:
    message: str


@dataclass(frozen=True)
class Downloaded:
    clip: str  # relative to the film folder
    sha256: str
    frames: int
    last_frame: str | None = None  # its decoded last frame (for the shot that continues from it)


@dataclass(frozen=True)
class DownloadFailed:
    message: str
    retry: bool = False  # the server did not answer (restarting?): the file is still there, try later
    no_space: str | None = None  # the file it could not write for want of room: the render stops submitting


@dataclass(frozen=True)
class Moved:
    """The shot's server is given up on for this run: submit the shot elsewhere."""

    reason: str


@dataclass(frozen=True)
class Cancel:
    """Ctrl-C or SIGTERM. ``where``/``entry``: what ``/queue`` + ``/history`` say now (as ``ServerSays``)."""

    where: str
    entry: dict | None = None


@dataclass(frozen=True)
class NotSent:
    """The submission was withdrawn before it was posted (Ctrl-C): the server never saw it."""


@dataclass(frozen=True)
class Tick:
    pass


# -- what the machine asks for -----------------------------------------------------------------------


@dataclass(frozen=True)
class Submit:
    shot: str
    server: str
    prompt_id: str


@dataclass(frozen=True)
class FetchHistory:
    shot: str
    server: str
    prompt_id: str
    wait: float
    seen: dict = field(default_factory=dict)  # outputs already seen in `executed` events


@dataclass(frozen=True)
class Download:
    shot: str
    server: str
    outputs: dict


@dataclass(frozen=True)
class Delete:
    shot: str
    server: str
    prompt_id: str


@dataclass(frozen=True)
class Interrupt:
    shot: str
    server: str
    prompt_id: str


@dataclass(frozen=True)
class Lookup:
    """Ask the server where its prompts are (a reconcile) soon."""

    server: str


@dataclass(frozen=True)
class SaveLedger:
    pass


@dataclass(frozen=True)
class Emit:
    kind: str
    data: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Refuse:
    """Refuse the whole render (a 400 before anything of this run was accepted)."""

    shot: str
    message: str
    node_errors: dict = field(default_factory=dict)
    error: dict = field(default_factory=dict)
    validation: bool = True  # a 400 from validation; False: the server never took the prompt at all
    server: str | None = None  # the URL that refused it (printable)


# -- what the film coordinator (``wanclip.render.coordinator``) is told -------------------------------


@dataclass(frozen=True)
class Looked:
    """The answer to a look-up: ``states`` (prompt id -> (state, history entry)) or an ``error``."""

    states: dict | None = None
    error: str | None = None


@dataclass(frozen=True)
class Note:
    """Something a person should know that changes no shot (a failed delete, say)."""

    kind: str
    data: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Start:
    """The event sockets are open: re-attach to the shots the ledger has on a server."""


@dataclass(frozen=True)
class Heard:
    """What the pool heard from ``server``: a websocket event, ``Disconnected``/``Reconnected``, a
    ``Looked``, a ``Note``, or ``(shot, machine event)``, the answer to one of the shot's effects."""

    server: str
    item: object


@dataclass(frozen=True)
class Turn:
    """Time passed: what the clock says (timeouts, retries, outages, look-ups), then submit what can go."""


@dataclass(frozen=True)
class Stop:
    """SIGINT or SIGTERM (``signum``), taken between steps. A second one stops waiting for the server."""

    signum: int


@dataclass(frozen=True)
class NoSpace:
    """A write of ours found the disk full (the ledger, a clip, a last frame): ``path`` is that file.
    Nothing more is submitted, our prompts still queued are removed, a running one is left to finish."""

    message: str
    path: str


@dataclass(frozen=True)
class Withdrawn:
    """The answer to ``Quiesce``: the shots whose submission was never posted."""

    shots: tuple[str, ...] = ()


# -- what the film coordinator asks for (besides the shot machine's effects) ---------------------------


@dataclass(frozen=True)
class Tell:
    """Tell the person (a ``RenderEvent``)."""

    kind: str
    shot: str | None = None
    index: int | None = None
    server: str | None = None
    data: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Look:
    """Ask ``server`` where ``prompt_ids`` are (its answer comes back as ``Heard(server, Looked)``)."""

    server: str
    prompt_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class DropServer:
    """Give ``server`` up for this run: close its event socket."""

    server: str


@dataclass(frozen=True)
class UseStartImage:
    """A chain link starts from ``picture`` (its predecessor's last frame, fitted)."""

    shot: str
    picture: Path


@dataclass(frozen=True)
class Quiesce:
    """Stop posting: withdraw submissions not yet sent, let the one on the wire answer, then run
    effects on the loop's thread. Answered with ``Withdrawn``."""


@dataclass(frozen=True)
class GiveUp:
    """Every server was out past the limit: end the render, the ``waiting`` shots stay in the ledger."""

    waiting: tuple[str, ...]
    limit: float
