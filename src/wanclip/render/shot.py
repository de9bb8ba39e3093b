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
import time
from dataclasses import replace

from wanclip.comfy.events import (
    Executed,
    Executing,
    ExecutionCached,
    ExecutionError,
    ExecutionInterrupted,
    ExecutionStart,
    ExecutionSuccess,
    Progress,
    ProgressState,
    VideoSaved,
    history_error,
    history_timestamps,
)
from wanclip.comfy.v2_jobs import JobKnown, outputs_of
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
from wanclip.render.state import ON_SERVER, SETTLED, Phase, Rules, Shot  # noqa: F401 - re-exported
from wanclip.render.tracking import Following, _interrupted, _server_node_seconds


def attached(record: ShotRecord, labels: dict[str, str], now: float) -> Shot:
    """A shot read from the ledger: on a server already (re-attach) or waiting to be submitted."""
    on_server = record.status in ("queued", "running") and record.prompt_id and record.server
    phase = Phase.QUEUED if on_server else Phase(record.status) if record.status in ("done", "failed") else Phase.IDLE
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

    def apply(self, event: object) -> None:
        """Hand ``event`` to its handler; anything else (socket bookkeeping such as ``Status`` or
        ``Disconnected``) is the pool's business and changes nothing here."""
        match event:
            case Assign():
                self.on_assign(event)
            case Blocked():
                self.on_blocked(event)
            case NotSent():
                self.on_not_sent(event)
            case Submitted():
                self.on_submitted(event)
            case SubmitRejected():
                self.on_submit_rejected(event)
            case SubmitUnsure():
                self.on_submit_unsure(event)
            case ServerSays():
                self.on_server_says(event)
            case Moved():
                self.on_moved(event)
            case HistoryRead():
                self.on_history_read(event)
            case HistoryMissing():
                self.on_history_missing(event)
            case Downloaded():
                self.on_downloaded(event)
            case DownloadFailed():
                self.on_download_failed(event)
            case Tick():
                self.on_tick(event)
            case Cancel():
                self.on_cancel(event)
            case _:
                self.follow(event)

    def follow(self, event: object) -> None:
        """A websocket event of this shot's prompt (``tracking``)."""
        match event:
            case ExecutionStart():
                self.on_execution_start(event)
            case ExecutionCached():
                self.on_execution_cached(event)
            case Executing():
                self.on_executing(event)
            case ProgressState():
                self.on_progress_state(event)
            case Progress():
                self.on_progress(event)
            case Executed():
                self.on_executed(event)
            case ExecutionSuccess():
                self.on_execution_success(event)
            case ExecutionError():
                self.on_execution_error(event)
            case ExecutionInterrupted():
                self.on_execution_interrupted(event)
            case VideoSaved():
                self.on_video_saved(event)
            case JobKnown():
                self.on_submitted(Submitted(job_id=event.job_id, backend="v2"))

    # -- submitting ------------------------------------------------------------------------------
    def on_assign(self, ev: Assign) -> None:
        if self.shot.phase != Phase.IDLE:
            return
        rec = self.rec
        rec.prompt_id, rec.server, rec.status = ev.prompt_id, ev.server, "queued"
        rec.error, rec.attempts, rec.cancelled = None, rec.attempts + 1, False
        rec.start_sha256 = ev.start_sha256 if rec.continues else None
        rec.posted_sha256 = None  # known once this attempt's graph is posted
        rec.job_id, rec.submit_state, rec.output_refs, rec.backend = None, "sent", None, None
        rec.node_seconds, rec.execution_start_ms, rec.execution_success_ms = {}, None, None
        self.shot.phase, self.shot.tries, self.shot.outputs, self.shot.last_event = Phase.SUBMITTING, 0, {}, self.now
        self.shot.interrupt_sent = False
        self.save()  # before posting: the id is ours, so a crash here can only mean "lost", never "twice"
        self.out.append(Submit(rec.name, ev.server, ev.prompt_id))

    def on_blocked(self, ev: Blocked) -> None:
        if self.shot.phase == Phase.IDLE:
            self._fail({"node": None, "class": None, "message": ev.message})

    def on_not_sent(self, ev: NotSent) -> None:
        if self.shot.phase == Phase.SUBMITTING:
            self._unassign("pending")
            self.shot.phase = Phase.IDLE
            self.save()

    def on_submitted(self, ev: Submitted) -> None:
        if ev.job_id and self.rec.job_id != ev.job_id and self.shot.phase not in SETTLED:
            # the server's own id (Comfy API v2): saved right after the 201, a rerun re-attaches by it
            self.rec.job_id, self.rec.backend, self.rec.submit_state = ev.job_id, ev.backend, "confirmed"
            self.save()
        if self.shot.phase in (Phase.SUBMITTING, Phase.UNCONFIRMED):
            self.shot.phase, self.shot.last_event = Phase.QUEUED, self.now
            self.rec.error, self.rec.posted_sha256 = None, ev.posted_sha256 or self.rec.posted_sha256
            self.rec.submit_state = "confirmed"
            self.emit("submitted", prompt_id=self.rec.prompt_id, attempt=self.rec.attempts)
        elif ev.posted_sha256 and self.rec.posted_sha256 is None and self.rec.prompt_id:
            # its events came first (a loaded client reads the socket before the POST's reply): the
            # shot is queued or running already, and the hash of what was posted still belongs here
            self.rec.posted_sha256 = ev.posted_sha256
            self.save()

    def on_submit_rejected(self, ev: SubmitRejected) -> None:
        if self.shot.phase not in (Phase.SUBMITTING, Phase.UNCONFIRMED):
            return
        rec = self.rec
        if ev.first:
            self._unassign("pending")
            self.shot.phase = Phase.IDLE
            self.save()
            self.out.append(Refuse(rec.name, ev.message, ev.node_errors, ev.error, server=ev.server))
            return
        self._fail({"node": None, "class": None, "message": ev.message, "node_errors": ev.node_errors})
        rec.prompt_id = None

    def on_submit_unsure(self, ev: SubmitUnsure) -> None:
        if self.shot.phase != Phase.SUBMITTING:
            return
        self.shot.tries += 1
        self.shot.phase = Phase.UNCONFIRMED  # never post again blindly: ask the server first
        self.rec.submit_state = "unsure" if self.rec.submit_state else None
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
                self.shot.phase = Phase.IDLE
                self.save()
                self.out.append(Refuse(self.rec.name, text, validation=False))
                return
            self._fail({"node": None, "class": None, "message": text})
            self.rec.prompt_id = None
            return
        delay = self.rules.backoff[min(self.shot.tries - 1, len(self.rules.backoff) - 1)]
        self.shot.phase, self.shot.retry_at = Phase.WAITING, self.now + delay
        self.emit("submit_retry", reason=message, retry_in=delay, tries=self.shot.tries)

    # -- what the server says ----------------------------------------------------------------------
    def on_server_says(self, ev: ServerSays) -> None:
        phase = self.shot.phase
        if phase == Phase.CANCELLING:
            self._cancel_answer(ev)
        elif phase == Phase.UNCONFIRMED:
            if ev.state == "missing":
                self._retry_or_fail(ev.first)
                return
            self.rec.error = None
            self.shot.phase = Phase.QUEUED
            self.emit("submitted", prompt_id=self.rec.prompt_id, attempt=self.rec.attempts, found=True)
            self.on_server_says(ev)
        elif phase in (Phase.QUEUED, Phase.RUNNING):
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

    def on_moved(self, ev: Moved) -> None:
        if self.shot.phase in (*ON_SERVER, Phase.WAITING) and self.shot.phase != Phase.COLLECTING:
            self._lose(ev.reason)

    # -- collecting --------------------------------------------------------------------------------
    def on_history_read(self, ev: HistoryRead) -> None:
        if self.shot.phase == Phase.COLLECTING:
            self.shot.phase = Phase.RUNNING
            self._finish(ev.entry)

    def on_history_missing(self, ev: HistoryMissing) -> None:
        if self.shot.phase != Phase.COLLECTING:
            return
        if self.rec.error:  # the socket said how it failed; no history is needed for that
            self._fail(self.rec.error)
            return
        if self.shot.outputs:  # a restart ate the history right after the prompt finished
            self.out.append(Download(self.rec.name, self.rec.server, dict(self.shot.outputs)))
            return
        self.shot.phase = Phase.RUNNING  # the next look at /queue + /history decides
        self.out.append(Lookup(self.rec.server))

    def on_downloaded(self, ev: Downloaded) -> None:
        if self.shot.phase not in (Phase.COLLECTING, Phase.CANCELLING):
            return
        rec = self.rec
        rec.status, rec.clip, rec.clip_sha256, rec.error, rec.cancelled = "done", ev.clip, ev.sha256, None, False
        rec.last_frame = ev.last_frame
        finished = rec.execution_success_ms / 1000 if rec.execution_success_ms else time.time()  # the server's clock
        rec.rendered_at, rec.edited_sha256 = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(finished)), None
        self.shot.phase = Phase.DONE
        self.save()
        seconds = ((rec.execution_success_ms or 0) - (rec.execution_start_ms or 0)) / 1000
        self.emit("done", clip=rec.clip, seconds=round(max(seconds, 0.0), 3), node_seconds=dict(rec.node_seconds),
                  frames=ev.frames)

    def on_download_failed(self, ev: DownloadFailed) -> None:
        if self.shot.phase not in (Phase.COLLECTING, Phase.CANCELLING):
            return
        if ev.no_space:  # the clip is safe on the server: the ledger keeps its prompt id, a rerun fetches it
            self.shot.phase, self.shot.retry_at = Phase.KEPT, None
            self.emit("warning", message=f"{self.rec.name} finished on the server, but there is no room here for "
                      f"its clip ({ev.message}): the next run fetches it")
            return
        if ev.retry and self.shot.phase == Phase.COLLECTING:
            since = self.shot.download_since = self.shot.download_since if self.shot.download_since is not None \
                else self.now
            if self.now - since > self.rules.shot_timeout:  # a server that answers all but the clip: not for ever
                self._fail({"node": None, "class": None, "message": f"the clip could not be downloaded for "
                            f"{self.now - since:.0f} s ({ev.message}); it stays on {self.rec.server} until that "
                            "server restarts: run again to render it"})
                return
            self.shot.tries += 1
            delay = self.rules.backoff[min(self.shot.tries - 1, len(self.rules.backoff) - 1)]
            self.shot.retry_at = self.now + delay
            self.emit("download_retry", reason=ev.message, retry_in=delay)
            return
        self._fail({"node": None, "class": None, "message": ev.message})

    # -- time ----------------------------------------------------------------------------------------
    def on_tick(self, ev: Tick) -> None:
        shot = self.shot
        if shot.phase == Phase.WAITING and shot.retry_at is not None and self.now >= shot.retry_at:
            shot.phase, shot.retry_at = Phase.SUBMITTING, None
            self.out.append(Submit(self.rec.name, self.rec.server, self.rec.prompt_id))
        elif shot.phase == Phase.COLLECTING and shot.retry_at is not None and self.now >= shot.retry_at:
            shot.retry_at = None
            self.out.append(Download(self.rec.name, self.rec.server, dict(shot.outputs)))
        elif shot.phase == Phase.RUNNING and self.now - shot.last_event > self.rules.shot_timeout:
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
            self.shot.phase = Phase.COLLECTING
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
        self.shot.phase, self.shot.tries = Phase.COLLECTING, 0
        self.shot.outputs = dict(entry.get("outputs") or self.shot.outputs)
        if rec.job_id:  # a v2 job's output refs: kept, an output URL may outlive the job
            rec.output_refs = outputs_of(self.shot.outputs) or None
            self.save()
        self.out.append(Download(rec.name, rec.server, dict(self.shot.outputs)))

    def _fail(self, error: dict) -> None:
        self.rec.status, self.rec.error = "failed", error
        self.shot.phase = Phase.FAILED
        self.save()
        self.emit("failed", error=error)

    def _lose(self, why: str) -> None:
        old = self.rec.server
        self._unassign("lost")
        self.shot.phase = Phase.IDLE
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
