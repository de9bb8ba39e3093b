"""The seam between the render and one kind of server: what the pool may ask of a server.

The pool (``wanclip.render.pool``) talks to servers only through ``Backend``; today's ComfyUI
client is its first implementation (``wanclip.render.comfyui.ComfyBackend``), and a second kind
(the Comfy API v2: server-chosen job ids, an Idempotency-Key, SSE events) plugs in here without
touching the shot machine or the film's policy.

The contract, for every implementation:

- Methods raise only ``wanclip.errors`` (a third-party error is translated inside the backend):
  ``PromptRejected`` when the server refuses a graph, ``ServerError`` (``transient`` when a retry
  may work) when it cannot be reached or answers wrongly, ``ClipError`` when a clip is not what was
  asked for. ``wanclip.render.effects`` turns those, once and for every backend, into the events the
  shot machine understands.
- A submission is named by the client's ``attempt`` id (a uuid the ledger holds *before* the POST).
  ``states`` answers per attempt id, so a submission whose answer was lost is found again by the id
  the client made; a backend whose server picks its own job ids keeps the mapping itself.
- Every call may block on the network; the pool calls them off its main loop.
"""

from __future__ import annotations

import queue
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from wanclip.checks.preflight import ServerInfo
    from wanclip.comfy.outputs import Clip

# Where a prompt is, as ``states`` answers it: "pending", "running", "done" or "missing" (never seen,
# or forgotten), with the server's history entry (its outputs, its status) once it is done.
State = tuple[str, "dict | None"]


@dataclass(frozen=True)
class Traits:
    """What a server can do that changes the graph it is sent (``planning.workflow.posted_graph``)."""

    async_output: bool = False  # wanclip's node pack: clips are encoded off the GPU's path
    post: object | None = None  # planning.postgraph.PostNodes: what it has for the post stage (asked when a film has one)


@dataclass(frozen=True)
class Wanted:
    """The clip a shot must come back as: where it goes and what it must measure."""

    stem: Path  # film_dir/clips/NN_name (the extension comes from the server's file)
    frames: int
    width: int
    height: int
    fps: float


class EventSource(Protocol):
    """A running feed of the server's events into the pool's sink, as ``(url, event)``."""

    @property
    def connected(self) -> bool: ...

    def stop(self) -> None: ...


class Backend(Protocol):
    @property
    def url(self) -> str: ...

    def probe(self, graphs: list[dict]) -> ServerInfo:
        """What the server is and speaks, and which of ``graphs`` it cannot run (``unfit``);
        ``PreflightError`` when it cannot be asked. Nothing is rendered."""

    def traits(self) -> Traits:
        """What the server has that changes the posted graph; never fatal (asked after ``probe``)."""

    def open_events(self, sink: queue.Queue) -> EventSource:
        """Start feeding events into ``sink`` before anything is submitted (a server may replay
        none); ``PreflightError`` when the feed cannot be opened."""

    def upload(self, picture: Path) -> str | dict:
        """Put a picture where the server's graph can load it; what its LoadImage takes: the name
        to load it by (a v2 surface: a ``core/ASSET`` reference it resolves)."""

    def submit(self, graph: dict, attempt: str, front: bool = False) -> str | None:
        """Post ``graph`` under the client's ``attempt`` id (``front``: ahead of what is queued,
        where the server can); the server's own job id where it picks one (the ledger keeps it)."""

    def states(self, attempts: list[str]) -> dict[str, State]:
        """Where each attempt is (``State``): how a submission whose answer was lost is found."""

    def history(self, attempt: str, wait: float) -> dict:
        """The finished attempt's record (its ``outputs``), waiting up to ``wait`` s for it."""

    def download(self, outputs: dict, wanted: Wanted) -> Clip:
        """The clip of ``outputs`` on disk at ``wanted.stem``, verified against ``wanted``."""

    def cancel(self, attempt: str, running: bool) -> None:
        """Stop the attempt: remove it from the queue, or interrupt it when ``running``."""

    def close(self) -> None: ...
