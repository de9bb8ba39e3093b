"""The shot machine's answer to Ctrl-C and SIGTERM: stop only our prompt, and keep its id until
the server confirms it is gone.

ComfyUI honours an interrupt only at its next check, and a delete can race the prompt starting, so
"asked to stop" and "stopped" are different states: a shot in ``cancelling`` keeps its prompt id
(and ``cancelled`` in the ledger) until ``/queue`` + ``/history`` (or the jobs API) say the prompt
was removed, interrupted, or finished (then its clip is kept). Pure, like the rest of the machine.
"""

from __future__ import annotations

from wanclip.comfy.events import history_error
from wanclip.render.messages import Cancel, Delete, Download, Interrupt, ServerSays
from wanclip.render.state import Phase, StepState


class Cancelling(StepState):
    """The cancel half of ``shot._Step`` (``StepState`` declares what it uses)."""

    def on_cancel(self, ev: Cancel) -> None:
        phase = self.shot.phase
        if phase == Phase.WAITING:  # the server does not have it: nothing to stop
            self._unassign("pending")
            self.shot.phase = Phase.IDLE
            self.save()
            return
        if phase not in (Phase.QUEUED, Phase.RUNNING, Phase.CANCELLING):
            return  # submitting / unconfirmed / collecting keep their id: the next run looks it up
        self.shot.phase, self.rec.cancelled = Phase.CANCELLING, True
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
            self.shot.phase = Phase.IDLE
            self.save()
            self.emit("cancelled", how="removed from the queue")
        elif ev.state == "done" and ev.entry is not None:
            failure = history_error(ev.entry)
            status = (ev.entry.get("status") or {}).get("status_str")
            if failure is None and status != "error":  # it finished before the stop: keep the clip
                self.shot.phase = Phase.COLLECTING
                self.shot.outputs = dict(ev.entry.get("outputs") or self.shot.outputs)
                self.out.append(Download(rec.name, rec.server, dict(self.shot.outputs)))
                return
            self._unassign("pending")
            self.shot.phase = Phase.IDLE
            self.save()
            self.emit("cancelled", how="interrupted")
