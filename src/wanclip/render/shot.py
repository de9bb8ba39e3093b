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
    ExecutionInterrupted,
    history_error,
    history_timestamps,
)
from wanclip.ledger import ShotRecord
from wanclip.render.cancelling import Cancelling
from wanclip.render.messages import (  # noqa: F401 - the machine's vocabulary, re-exported as machine.X
    Assign,
    Blocked,
    Cancel,
    Delete,
    Download,
    Downloaded,
    DownloadFailed,
    Emit,
    FetchHistory,
    HistoryMissing,
    HistoryRead,
    Interrupt,
    Lookup,
    Moved,
    NotSent,
    Refuse,
    SaveLedger,
    ServerSays,
    Submit,
    SubmitRejected,
    Submitted,
    SubmitUnsure,
    Tick,
)
from wanclip.render.tracking import SHOT_EVENTS, Following, _interrupted, _server_node_seconds


@dataclass(frozen=True)
class Rules:
    shot_timeout: float = 1800.0  # seconds a running shot may go without any event
    history_timeout: float = 30.0
    submit_tries: int = 5  # POSTs of one prompt that may fail before the shot fails
    backoff: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 15.0)


# -- the shot ----------------------------------------------------------------------------------------

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


class _Step(Following, Cancelling):
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
        rec.start_sha256 = ev.start_sha256 if rec.continues else None
        rec.posted_sha256 = None  # known once this attempt's graph is posted
        rec.node_seconds, rec.execution_start_ms, rec.execution_success_ms = {}, None, None
        self.shot.phase, self.shot.tries, self.shot.outputs, self.shot.last_event = "submitting", 0, {}, self.now
        self.shot.interrupt_sent = False
        self.save()  # before posting: the id is ours, so a crash here can only mean "lost", never "twice"
        self.out.append(Submit(rec.name, ev.server, ev.prompt_id))

    def on_Blocked(self, ev: Blocked) -> None:
        if self.shot.phase == "idle":
            self._fail({"node": None, "class": None, "message": ev.message})

    def on_NotSent(self, ev: NotSent) -> None:
        if self.shot.phase == "submitting":
            self._unassign("pending")
            self.shot.phase = "idle"
            self.save()

    def on_Submitted(self, ev: Submitted) -> None:
        if self.shot.phase in ("submitting", "unconfirmed"):
            self.shot.phase, self.shot.last_event = "queued", self.now
            self.rec.error, self.rec.posted_sha256 = None, ev.posted_sha256 or self.rec.posted_sha256
            self.emit("submitted", prompt_id=self.rec.prompt_id, attempt=self.rec.attempts)

    def on_SubmitRejected(self, ev: SubmitRejected) -> None:
        if self.shot.phase not in ("submitting", "unconfirmed"):
            return
        rec = self.rec
        if ev.first:
            self._unassign("pending")
            self.shot.phase = "idle"
            self.save()
            self.out.append(Refuse(rec.name, ev.message, ev.node_errors, ev.error, server=ev.server))
            return
        self._fail({"node": None, "class": None, "message": ev.message, "node_errors": ev.node_errors})
        rec.prompt_id = None

    def on_SubmitUnsure(self, ev: SubmitUnsure) -> None:
        if self.shot.phase != "submitting":
            return
        self.shot.tries += 1
        self.shot.phase = "unconfirmed"  # never post again blindly: ask the server first
        self.rec.posted_sha256 = ev.posted_sha256
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
        rec.last_frame = ev.last_frame
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

    # -- helpers ---------------------------------------------------------------------------------
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


def _error_dict(failure) -> dict:
    if failure is None:
        return {"node": None, "class": None, "message": "the server reported an error"}
    if isinstance(failure, ExecutionInterrupted):
        return _interrupted(failure)
    return {"node": failure.node_id, "class": failure.node_type, "type": failure.exception_type,
            "message": failure.exception_message}
