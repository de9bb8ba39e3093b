"""One shot's life on a ComfyUI server, as a pure state machine: ``step(shot, event, now, rules)``.

No I/O and no clock reads: the caller passes what happened (a websocket event, the answer to a
submission, what ``/queue`` + ``/history`` say, a download's result, a tick) and the time, and gets
back the new ``Shot`` (the input is never changed) and a list of effects to carry out, as data
(``Submit``, ``FetchHistory``, ``Download``, ``Delete``, ``Interrupt``, ``Lookup``, ``SaveLedger``,
``Emit``, ``Refuse``). The recorded transcripts of a real ComfyUI drive it directly in the tests.

Phases (in memory) refine the ledger's ``status``::

    idle ──Assign──▶ submitting ──Submitted──▶ queued ──start──▶ running ──executing null──▶ collecting ──▶ done
                      │  ▲  └─SubmitUnsure─▶ unconfirmed ──server has it──▶ queued/running/collecting
                      │  └──────── retry ◀── waiting ◀──server lacks it (bounded, with backoff)
                      └─SubmitRejected──▶ failed (or Refuse: the first submission of the run, exit 2)
    queued/running ──server lost it──▶ idle (status "lost", submitted again)   ──Cancel──▶ cancelling

A prompt keeps its id until the server confirms it is gone (deleted, interrupted, or finished), so
a shot is never rendered twice and never forgotten on a server.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace

from wanclip.comfy.events import (
    Event,
    Executed,
    Executing,
    ExecutionCached,
    ExecutionError,
    ExecutionInterrupted,
    ExecutionStart,
    ExecutionSuccess,
    Progress,
    ProgressState,
    history_error,
    history_timestamps,
)
from wanclip.ledger import ShotRecord

# -- what the machine is told ----------------------------------------------------------------------


@dataclass(frozen=True)
class Assign:
    """Submit the shot to ``server`` under ``prompt_id`` (the id is ours, chosen by the caller)."""

    server: str
    prompt_id: str


@dataclass(frozen=True)
class Submitted:
    """POST /prompt answered 200 (or 409 "already exists": it is there)."""


@dataclass(frozen=True)
class SubmitRejected:
    """POST /prompt answered 400: validation refused it, nothing ran. ``first``: nothing of this run
    was accepted yet (then the whole render is refused, exit 2)."""

    message: str
    node_errors: dict = field(default_factory=dict)
    error: dict = field(default_factory=dict)  # ComfyUI's top-level error (type, message, details)
    first: bool = False


@dataclass(frozen=True)
class SubmitUnsure:
    """POST /prompt failed with a 5xx, a timeout or a dropped connection: it may be queued or not."""

    message: str


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


@dataclass(frozen=True)
class DownloadFailed:
    message: str
    retry: bool = False  # the server did not answer (restarting?): the file is still there, try later


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


@dataclass(frozen=True)
class Rules:
    shot_timeout: float = 1800.0  # seconds a running shot may go without any event
    history_timeout: float = 30.0
    submit_tries: int = 5  # POSTs of one prompt that may fail before the shot fails
    backoff: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 15.0)


# -- the shot ----------------------------------------------------------------------------------------

SHOT_EVENTS = (ExecutionStart, Executing, Progress, ProgressState, ExecutionCached, Executed, ExecutionSuccess,
               ExecutionError, ExecutionInterrupted)
ON_SERVER = ("submitting", "unconfirmed", "queued", "running", "collecting", "cancelling")


@dataclass
class Shot:
    record: ShotRecord
    labels: dict[str, str]  # node id -> what a person reads ("high-noise sampler", ...)
    phase: str = "idle"
    last_event: float = 0.0
    node: str | None = None
    node_started: float = 0.0
    outputs: dict = field(default_factory=dict)
    tries: int = 0  # failed POSTs of the current prompt
    retry_at: float | None = None
    interrupt_sent: bool = False
    server_seconds: dict = field(default_factory=dict)  # node -> progress_state "seconds" (newer ComfyUI)
    loading: bool = False  # a node reported activity "loading" (newer ComfyUI): a real model load

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def confirmed(self) -> bool:
        """The server has (or had) the prompt: ``/queue`` + ``/history`` can speak for it."""
        return self.phase in ("queued", "running", "collecting", "cancelling")


def attached(record: ShotRecord, labels: dict[str, str], now: float) -> Shot:
    """A shot read from the ledger: on a server already (re-attach) or waiting to be submitted."""
    on_server = record.status in ("queued", "running") and record.prompt_id and record.server
    phase = "queued" if on_server else record.status if record.status in ("done", "failed") else "idle"
    return Shot(record, labels, phase=phase, last_event=now)


def step(shot: Shot, event, now: float, rules: Rules = Rules()) -> tuple[Shot, list]:
    """The pure transition: the new shot and the effects, for one event at time ``now``."""
    new = copy.copy(shot)
    new.record = replace(shot.record, node_seconds=dict(shot.record.node_seconds))
    new.outputs = dict(shot.outputs)
    new.server_seconds = dict(shot.server_seconds)
    effects: list = []
    _Step(new, now, rules, effects).apply(event)
    return new, effects


class _Step:
    def __init__(self, shot: Shot, now: float, rules: Rules, effects: list):
        self.shot, self.rec, self.now, self.rules, self.out = shot, shot.record, now, rules, effects

    def emit(self, kind: str, **data) -> None:
        self.out.append(Emit(kind, data))

    def save(self) -> None:
        self.out.append(SaveLedger())

    def apply(self, event) -> None:
        handler = getattr(self, "on_" + type(event).__name__, None)
        if isinstance(event, Event) and not isinstance(event, SHOT_EVENTS):
            return  # socket bookkeeping (Disconnected, Status ...) is the pool's business
        if handler is not None:
            handler(event)

    # -- submitting ------------------------------------------------------------------------------
    def on_Assign(self, ev: Assign) -> None:
        if self.shot.phase != "idle":
            return
        rec = self.rec
        rec.prompt_id, rec.server, rec.status = ev.prompt_id, ev.server, "queued"
        rec.error, rec.attempts, rec.cancelled = None, rec.attempts + 1, False
        rec.node_seconds, rec.execution_start_ms, rec.execution_success_ms = {}, None, None
        self.shot.phase, self.shot.tries, self.shot.outputs, self.shot.last_event = "submitting", 0, {}, self.now
        self.shot.interrupt_sent = False
        self.save()  # before posting: the id is ours, so a crash here can only mean "lost", never "twice"
        self.out.append(Submit(rec.name, ev.server, ev.prompt_id))

    def on_NotSent(self, ev: NotSent) -> None:
        if self.shot.phase == "submitting":
            self._unassign("pending")
            self.shot.phase = "idle"
            self.save()

    def on_Submitted(self, ev: Submitted) -> None:
        if self.shot.phase in ("submitting", "unconfirmed"):
            self.shot.phase, self.shot.last_event = "queued", self.now
            self.rec.error = None
            self.emit("submitted", prompt_id=self.rec.prompt_id, attempt=self.rec.attempts)

    def on_SubmitRejected(self, ev: SubmitRejected) -> None:
        if self.shot.phase not in ("submitting", "unconfirmed"):
            return
        rec = self.rec
        if ev.first:
            self._unassign("pending")
            self.shot.phase = "idle"
            self.save()
            self.out.append(Refuse(rec.name, ev.message, ev.node_errors, ev.error))
            return
        self._fail({"node": None, "class": None, "message": ev.message, "node_errors": ev.node_errors})
        rec.prompt_id = None

    def on_SubmitUnsure(self, ev: SubmitUnsure) -> None:
        if self.shot.phase != "submitting":
            return
        self.shot.tries += 1
        self.shot.phase = "unconfirmed"  # never post again blindly: ask the server first
        self.rec.error = {"node": None, "class": None, "message": ev.message}
        self.out.append(Lookup(self.rec.server))

    def _retry_or_fail(self, first: bool) -> None:
        """The server does not have a prompt we failed to post: post it again later, or give up."""
        message = (self.rec.error or {}).get("message", "the server did not accept the prompt")
        if self.shot.tries >= self.rules.submit_tries:
            text = f"ComfyUI did not accept the prompt after {self.shot.tries} tries; its last answer: {message}"
            if first:  # nothing of this run got in: refuse the render before any GPU work
                self._unassign("pending")
                self.shot.phase = "idle"
                self.save()
                self.out.append(Refuse(self.rec.name, text, validation=False))
                return
            self._fail({"node": None, "class": None, "message": text})
            self.rec.prompt_id = None
            return
        delay = self.rules.backoff[min(self.shot.tries - 1, len(self.rules.backoff) - 1)]
        self.shot.phase, self.shot.retry_at = "waiting", self.now + delay
        self.emit("submit_retry", reason=message, retry_in=delay, tries=self.shot.tries)

    # -- what the server says ----------------------------------------------------------------------
    def on_ServerSays(self, ev: ServerSays) -> None:
        phase = self.shot.phase
        if phase == "cancelling":
            self._cancel_answer(ev)
        elif phase == "unconfirmed":
            if ev.state == "missing":
                self._retry_or_fail(ev.first)
                return
            self.rec.error = None
            self.shot.phase = "queued"
            self.emit("submitted", prompt_id=self.rec.prompt_id, attempt=self.rec.attempts, found=True)
            self.on_ServerSays(ev)
        elif phase in ("queued", "running"):
            if self.rec.cancelled and ev.state in ("done", "missing"):
                self._cancel_answer(ev)  # a stop asked by an earlier run: gone or interrupted means submit again
                return
            if ev.state == "running":
                self._started(None)
            elif ev.state == "done":
                self._finish(ev.entry)
            elif ev.state == "missing" and self.shot.outputs:
                self._finish(None)  # it finished, then the server lost its history: the file is still there
            elif ev.state == "missing":
                self._lose("the server no longer knows the prompt (restarted?)")

    def on_Moved(self, ev: Moved) -> None:
        if self.shot.phase in (*ON_SERVER, "waiting") and self.shot.phase != "collecting":
            self._lose(ev.reason)

    # -- websocket events ------------------------------------------------------------------------
    def _live(self) -> bool:
        if self.shot.phase == "unconfirmed":  # an event for it: the server has it after all
            self.rec.error, self.shot.phase = None, "queued"
            self.emit("submitted", prompt_id=self.rec.prompt_id, attempt=self.rec.attempts, found=True)
        if self.shot.phase not in ("queued", "running"):
            return False
        self.shot.last_event = self.now
        return True

    def on_ExecutionStart(self, ev: ExecutionStart) -> None:
        if self._live():
            self._started(ev.timestamp)

    def on_ExecutionCached(self, ev: ExecutionCached) -> None:
        if self._live():
            self.emit("cached", nodes=list(ev.nodes))

    def on_Executing(self, ev: Executing) -> None:
        if not self._live():
            return
        if ev.node is None:
            self._finish(None)
            return
        self._started(None)
        self._close_node()
        node = ev.display_node or ev.node  # "54:73" inside a subgraph: the graph's id is display_node
        self.shot.node, self.shot.node_started, self.shot.loading = node, self.now, False
        self.emit("node", node=node, label=self.shot.labels.get(node, "other"))

    def on_ProgressState(self, ev: ProgressState) -> None:
        """Newer servers say what a node spends its time on and, when it finishes, for how long."""
        if not self._live():
            return
        for node in ev.nodes:
            if node.seconds:
                self.shot.server_seconds[node.node] = dict(node.seconds)
            if node.activity == "loading" and node.state == "running" and not self.shot.loading:
                self.shot.loading = True
                self.emit("node", node=node.node, label="model load")

    def on_Progress(self, ev: Progress) -> None:
        if self._live():
            self.emit("progress", node=ev.node, label=self.shot.labels.get(ev.node or "", "other"),
                      value=ev.value, max=ev.max)

    def on_Executed(self, ev: Executed) -> None:
        if self._live() and ev.node is not None:
            self.shot.outputs[ev.node] = ev.output

    def on_ExecutionSuccess(self, ev: ExecutionSuccess) -> None:
        if self._live():
            self.rec.execution_success_ms = ev.timestamp

    def on_ExecutionError(self, ev: ExecutionError) -> None:
        if self._live():
            self.rec.error = {"node": ev.node_id, "class": ev.node_type, "type": ev.exception_type,
                              "message": ev.exception_message}

    def on_ExecutionInterrupted(self, ev: ExecutionInterrupted) -> None:
        if self._live():
            self.rec.error = _interrupted(ev)

    # -- collecting --------------------------------------------------------------------------------
    def on_HistoryRead(self, ev: HistoryRead) -> None:
        if self.shot.phase == "collecting":
            self.shot.phase = "running"
            self._finish(ev.entry)

    def on_HistoryMissing(self, ev: HistoryMissing) -> None:
        if self.shot.phase != "collecting":
            return
        if self.rec.error:  # the socket said how it failed; no history is needed for that
            self._fail(self.rec.error)
            return
        if self.shot.outputs:  # a restart ate the history right after the prompt finished
            self.out.append(Download(self.rec.name, self.rec.server, dict(self.shot.outputs)))
            return
        self.shot.phase = "running"  # the next look at /queue + /history decides
        self.out.append(Lookup(self.rec.server))

    def on_Downloaded(self, ev: Downloaded) -> None:
        if self.shot.phase not in ("collecting", "cancelling"):
            return
        rec = self.rec
        rec.status, rec.clip, rec.clip_sha256, rec.error, rec.cancelled = "done", ev.clip, ev.sha256, None, False
        self.shot.phase = "done"
        self.save()
        seconds = ((rec.execution_success_ms or 0) - (rec.execution_start_ms or 0)) / 1000
        self.emit("done", clip=rec.clip, seconds=round(max(seconds, 0.0), 3), node_seconds=dict(rec.node_seconds),
                  frames=ev.frames)

    def on_DownloadFailed(self, ev: DownloadFailed) -> None:
        if self.shot.phase not in ("collecting", "cancelling"):
            return
        if ev.retry and self.shot.phase == "collecting":
            self.shot.tries += 1
            delay = self.rules.backoff[min(self.shot.tries - 1, len(self.rules.backoff) - 1)]
            self.shot.retry_at = self.now + delay
            self.emit("download_retry", reason=ev.message, retry_in=delay)
            return
        self._fail({"node": None, "class": None, "message": ev.message})

    # -- time ----------------------------------------------------------------------------------------
    def on_Tick(self, ev: Tick) -> None:
        shot = self.shot
        if shot.phase == "waiting" and shot.retry_at is not None and self.now >= shot.retry_at:
            shot.phase, shot.retry_at = "submitting", None
            self.out.append(Submit(self.rec.name, self.rec.server, self.rec.prompt_id))
        elif shot.phase == "collecting" and shot.retry_at is not None and self.now >= shot.retry_at:
            shot.retry_at = None
            self.out.append(Download(self.rec.name, self.rec.server, dict(shot.outputs)))
        elif shot.phase == "running" and self.now - shot.last_event > self.rules.shot_timeout:
            self.out.append(Interrupt(self.rec.name, self.rec.server, self.rec.prompt_id))
            node = shot.node
            self._fail({"node": node, "class": None, "message": f"no progress for {self.rules.shot_timeout:.0f} s"})

    # -- Ctrl-C / SIGTERM ------------------------------------------------------------------------------
    def on_Cancel(self, ev: Cancel) -> None:
        phase = self.shot.phase
        if phase == "waiting":  # the server does not have it: nothing to stop
            self._unassign("pending")
            self.shot.phase = "idle"
            self.save()
            return
        if phase not in ("queued", "running", "cancelling"):
            return  # submitting / unconfirmed / collecting keep their id: the next run looks it up
        self.shot.phase, self.rec.cancelled = "cancelling", True
        self.save()
        self.emit("cancelling", where=ev.where)
        self._cancel_answer(ServerSays(ev.where, ev.entry))

    def _cancel_answer(self, ev: ServerSays) -> None:
        rec = self.rec
        if ev.state == "pending":
            self.out.append(Delete(rec.name, rec.server, rec.prompt_id))
        elif ev.state == "running" and not self.shot.interrupt_sent:
            self.shot.interrupt_sent = True
            self.out.append(Interrupt(rec.name, rec.server, rec.prompt_id))
        elif ev.state == "missing":
            self._unassign("pending")
            self.shot.phase = "idle"
            self.save()
            self.emit("cancelled", how="removed from the queue")
        elif ev.state == "done" and ev.entry is not None:
            failure = history_error(ev.entry)
            status = (ev.entry.get("status") or {}).get("status_str")
            if failure is None and status != "error":  # it finished before the stop: keep the clip
                self.shot.phase = "collecting"
                self.shot.outputs = dict(ev.entry.get("outputs") or self.shot.outputs)
                self.out.append(Download(rec.name, rec.server, dict(self.shot.outputs)))
                return
            self._unassign("pending")
            self.shot.phase = "idle"
            self.save()
            self.emit("cancelled", how="interrupted")

    # -- helpers ---------------------------------------------------------------------------------
    def _started(self, timestamp: int | None) -> None:
        if self.rec.status != "running":
            self.rec.status, self.shot.phase = "running", "running"
            self.rec.execution_start_ms = self.rec.execution_start_ms or timestamp
            self.save()
            self.emit("started")
        elif timestamp and not self.rec.execution_start_ms:
            self.rec.execution_start_ms = timestamp
        self.shot.phase = "running"

    def _close_node(self) -> None:
        if self.shot.node is not None:
            label = self.shot.labels.get(self.shot.node, "other")
            spent = self.now - self.shot.node_started
            self.rec.node_seconds[label] = round(self.rec.node_seconds.get(label, 0.0) + spent, 3)
            self.shot.node = None

    def _finish(self, entry: dict | None, wait: float | None = None) -> None:
        self._close_node()
        rec = self.rec
        if entry is None:
            # With the outputs already seen in `executed` events, a history lost to a restart right
            # after the prompt finished costs a short wait, not a re-render.
            if wait is None:
                wait = min(self.rules.history_timeout, 2.0) if self.shot.outputs else self.rules.history_timeout
            self.shot.phase = "collecting"
            self.out.append(FetchHistory(rec.name, rec.server, rec.prompt_id, wait, dict(self.shot.outputs)))
            return
        if self.shot.server_seconds:
            rec.node_seconds = _server_node_seconds(self.shot.server_seconds, self.shot.labels)
        start, success = history_timestamps(entry)
        rec.execution_start_ms = rec.execution_start_ms or start
        rec.execution_success_ms = rec.execution_success_ms or success
        failure = history_error(entry)
        if failure is not None or rec.error or (entry.get("status") or {}).get("status_str") == "error":
            self._fail(rec.error or _error_dict(failure))
            return
        self.shot.phase, self.shot.tries = "collecting", 0
        self.shot.outputs = dict(entry.get("outputs") or self.shot.outputs)
        self.out.append(Download(rec.name, rec.server, dict(self.shot.outputs)))

    def _fail(self, error: dict) -> None:
        self.rec.status, self.rec.error = "failed", error
        self.shot.phase = "failed"
        self.save()
        self.emit("failed", error=error)

    def _lose(self, why: str) -> None:
        old = self.rec.server
        self._unassign("lost")
        self.shot.phase = "idle"
        self.save()
        self.emit("lost", reason=why, server=old)

    def _unassign(self, status: str) -> None:
        self.rec.status, self.rec.prompt_id, self.rec.server, self.rec.cancelled = status, None, None, False
        self.shot.node, self.shot.outputs, self.shot.retry_at = None, {}, None


def _server_node_seconds(server_seconds: dict, labels: dict[str, str]) -> dict[str, float]:
    """``node_seconds`` from the server's own per-node timings: each node's total under its label,
    but the time it reported as "loading" under "model load" (where a cold load really goes)."""
    out: dict[str, float] = {}
    for node, seconds in server_seconds.items():
        loading = float(seconds.get("loading", 0.0))
        label = labels.get(node, "other")
        out[label] = out.get(label, 0.0) + max(float(seconds.get("total", 0.0)) - loading, 0.0)
        if loading:
            out["model load"] = out.get("model load", 0.0) + loading
    return {label: round(value, 3) for label, value in out.items()}


def _interrupted(ev: ExecutionInterrupted) -> dict:
    return {"node": ev.node_id, "class": ev.node_type, "type": "interrupted",
            "message": "the prompt was interrupted on the server"}


def _error_dict(failure) -> dict:
    if failure is None:
        return {"node": None, "class": None, "message": "the server reported an error"}
    if isinstance(failure, ExecutionInterrupted):
        return _interrupted(failure)
    return {"node": failure.node_id, "class": failure.node_type, "type": failure.exception_type,
            "message": failure.exception_message}
