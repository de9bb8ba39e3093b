"""A v2 job's life as wanclip's render understands it (pure: no I/O, no clock).

The v2 status (``GET /api/v2/jobs/{id}``, the source of truth: queued -> running -> succeeded /
failed / expired; canceling -> canceled) is mapped onto what the render already speaks for
native ComfyUI: a ``State`` for look-ups (``state_of``), a history-like entry for the shot machine
(``entry_of``: the outputs under ``"v2"``, the failure as ComfyUI's ``status.messages``), and the
typed events a status *change* means (``Watch``), so polling drives the same shot lines as the
native event socket. Events are named by the client's attempt id, never by the server's job id.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from wanclip.comfy.events import (
    Event,
    Executing,
    ExecutionError,
    ExecutionInterrupted,
    ExecutionStart,
    ExecutionSuccess,
    Progress,
)
from wanclip.comfy.v2 import Job

ENDED = ("succeeded", "failed", "canceled")  # what ran (``expired`` is what the surface forgot)
OUTPUTS_KEY = "v2"  # entry["outputs"]["v2"]["assets"]: the job's outputs, as refs (``Output.ref``)


@dataclass(frozen=True)
class JobKnown(Event):
    """The job of attempt ``prompt_id`` was found by its label (a rerun after a crash that came before
    the 201 was saved): the ledger keeps its id from now on."""

    job_id: str = ""


def entry_of(job: Job) -> dict:
    """The job as a native history entry: outputs, and a failure in ``status.messages``."""
    # each ref names its job: an output URL the surface no longer honours is asked for again
    entry: dict = {"outputs": {OUTPUTS_KEY: {"assets": [{**o.ref(), "job": job.id} for o in job.outputs]}}}
    if job.status == "failed":
        error = job.error or {}
        data = {"node_id": error.get("node_id"), "node_type": error.get("class_type"),
                "exception_type": str(error.get("code") or "node_execution_error"),
                "exception_message": str(error.get("message") or "the job failed")}
        entry["status"] = {"status_str": "error", "messages": [["execution_error", data]]}
    elif job.status == "canceled":
        entry["status"] = {"status_str": "error", "messages": [["execution_interrupted", {}]]}
    else:
        entry["status"] = {"status_str": "success", "messages": []}
    return entry


def state_of(job: Job | None) -> tuple[str, dict | None]:
    """Where a job is, as ``render.backend.State`` (None: the surface does not know it)."""
    if job is None or job.status == "expired" and not job.outputs:
        return "missing", None  # gone (a ComfyUI restart behind the proxy): submitted again
    if job.status == "queued":
        return "pending", None
    if job.status in ("running", "canceling"):
        return "running", None
    return "done", entry_of(job)


def outputs_of(entry: dict) -> list[dict]:
    """The output refs in a job's outputs (``entry_of(job)["outputs"]``)."""
    assets = ((entry or {}).get(OUTPUTS_KEY) or {}).get("assets") if isinstance(entry, dict) else None
    return [a for a in assets or [] if isinstance(a, dict)]


@dataclass
class Watch:
    """The last status seen per attempt; ``seen`` answers the events a new status means."""

    last: dict[str, str] = field(default_factory=dict)

    def seen(self, attempt: str, job: Job) -> list[Event]:
        before = self.last.get(attempt)
        if before == job.status:
            return []
        self.last[attempt] = job.status
        out: list[Event] = []
        if job.status in ("running", "canceling", *ENDED) and before not in ("running", "canceling"):
            out.append(ExecutionStart(attempt))
        if job.status == "succeeded":
            out += [ExecutionSuccess(attempt), Executing(attempt, None)]
        elif job.status == "failed":
            error = job.error or {}
            out += [ExecutionError(attempt, error.get("node_id"), error.get("class_type"),
                                   str(error.get("code") or "node_execution_error"),
                                   str(error.get("message") or "the job failed")),
                    Executing(attempt, None)]
        elif job.status == "canceled":
            out += [ExecutionInterrupted(attempt), Executing(attempt, None)]
        return out

    def forget(self, attempt: str) -> None:
        self.last.pop(attempt, None)


def progress_events(attempt: str, data: dict, node: str | None) -> tuple[list[Event], str | None]:
    """A v2 ``progress`` event (``current_node``, ``step``/``steps``) as the native ``Executing`` (when
    the node changes; never ``None``: only the job's status ends it) and ``Progress``; the node now."""
    current = data.get("current_node")
    current = str(current) if current is not None else None
    out: list[Event] = []
    if current is not None and current != node:
        out.append(Executing(attempt, current))
        node = current
    step, steps = data.get("step"), data.get("steps")
    if current is not None and isinstance(step, int) and isinstance(steps, int) and steps > 0:
        out.append(Progress(attempt, current, step, steps))
    return out, node
