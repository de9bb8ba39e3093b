"""What the shot machine holds between steps: the ``Phase`` enum, a ``Shot`` and the ``Rules``.

Apart from the machine itself (``wanclip.render.shot``) so that its two halves (``tracking``,
``cancelling``) and the film coordinator can name these types without importing the machine:
``StepState`` declares everything a step has and does, which the halves use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from wanclip.ledger import ShotRecord


class Phase(str, Enum):
    """Where a shot is in memory; refines the ledger's ``status``. A ``str`` enum: equal to its value,
    so ``phase == "queued"`` and JSON keep working."""

    IDLE = "idle"
    SUBMITTING = "submitting"  # a Submit is out: posted, or about to be
    UNCONFIRMED = "unconfirmed"  # the POST failed oddly: the server may have it
    WAITING = "waiting"  # the server lacks it: posted again after a backoff
    QUEUED = "queued"
    RUNNING = "running"
    COLLECTING = "collecting"  # finished on the server: history read and download
    CANCELLING = "cancelling"  # asked to stop, not yet confirmed
    KEPT = "kept"  # finished on the server, its clip not saved here (no room): the next run fetches it
    DONE = "done"
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value


# Phases in which the server has (or may have) the prompt.
ON_SERVER = (Phase.SUBMITTING, Phase.UNCONFIRMED, Phase.QUEUED, Phase.RUNNING, Phase.COLLECTING,
             Phase.CANCELLING)
SETTLED = (Phase.DONE, Phase.FAILED)


@dataclass(frozen=True)
class Rules:
    shot_timeout: float = 1800.0  # seconds a running shot may go without any event
    history_timeout: float = 30.0
    submit_tries: int = 5  # POSTs of one prompt that may fail before the shot fails
    backoff: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 15.0)


@dataclass
class Shot:
    record: ShotRecord
    labels: dict[str, str]  # node id -> what a person reads ("high-noise sampler", ...)
    phase: Phase = Phase.IDLE
    last_event: float = 0.0
    node: str | None = None
    node_started: float = 0.0
    outputs: dict = field(default_factory=dict)
    tries: int = 0  # failed POSTs of the current prompt
    retry_at: float | None = None
    download_since: float | None = None  # the first failed download of the clip, retried since
    interrupt_sent: bool = False
    server_seconds: dict = field(default_factory=dict)  # node -> progress_state "seconds" (newer ComfyUI)
    loading: bool = False  # a node reported activity "loading" (newer ComfyUI): a real model load

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def confirmed(self) -> bool:
        """The server has (or had) the prompt: ``/queue`` + ``/history`` can speak for it."""
        return self.phase in (Phase.QUEUED, Phase.RUNNING, Phase.COLLECTING, Phase.CANCELLING)


class StepState:
    """One step of the machine: the shot being changed, its record, the time, the rules and the
    effects so far, plus the helpers every half of the machine uses (``shot._Step`` defines them)."""

    shot: Shot
    rec: ShotRecord
    now: float
    rules: Rules
    out: list

    def emit(self, kind: str, **data) -> None:
        raise NotImplementedError

    def save(self) -> None:
        raise NotImplementedError

    def _finish(self, entry: dict | None, wait: float | None = None) -> None:
        raise NotImplementedError

    def _unassign(self, status: str) -> None:
        raise NotImplementedError

    def _started(self, timestamp: int | None) -> None:
        raise NotImplementedError

    def _close_node(self) -> None:
        raise NotImplementedError
