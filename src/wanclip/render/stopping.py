"""Ctrl-C and SIGTERM during a render: stop only our prompts, and say truthfully what is left. Pure.

The film coordinator runs the sequence, step by step and by ``now`` (never a sleep): submissions
not yet posted are withdrawn (those shots simply become pending again) and answers already on the
wire count; then, per server, our queued prompts are removed before our running one is
interrupted (or the server would start the next of ours the moment the running one stops).
ComfyUI honours an interrupt only at its next check, so the server is asked again until it
confirms, for at most ``cancel_wait`` seconds; a second signal stops waiting. Whatever the server
did not confirm keeps its prompt id in the ledger, and the message names it: the next run
re-attaches.

A full disk (``NoSpace``) runs the same sequence with ``keep_running``: nothing more is posted and
our queued prompts are removed, but a prompt the server is already running is left to finish
(interrupting it would throw its GPU time away): its clip waits on the server, and the next run,
after room was made, re-attaches and fetches it.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from pathlib import Path

from wanclip.render.messages import Cancel, ServerSays
from wanclip.render.state import Phase, Shot

STOP_POLL = 0.2  # seconds between asks while a stop waits for the server to confirm

# Phases whose prompt the stop asks the server about (waiting: to drop its retry).
ASKED = (Phase.QUEUED, Phase.RUNNING, Phase.WAITING, Phase.CANCELLING, Phase.UNCONFIRMED)
# Phases the stop waits on: asked about, a download of a clip finished before the stop, or a
# POST whose answer has not arrived.
UNRESOLVED = (*ASKED, Phase.COLLECTING, Phase.SUBMITTING)
EXIT_CODES: dict[int, int] = {signal.SIGINT: 130, signal.SIGTERM: 143}


@dataclass
class StopState:
    signum: int
    withdrawn: bool = False  # the pool answered Quiesce: nothing more will be posted
    deadline: float | None = None  # when waiting for the server ends (set once withdrawn)
    next_ask: float = 0.0
    silent: set[str] = field(default_factory=set)  # servers that did not answer an ask
    # Servers asked since the stop. Only their answers count: a look-up sent before the stop may
    # not know a shot queued since, and acting on it would interrupt our running prompt before
    # that queued one is deleted (the server would then start it).
    asking: set[str] = field(default_factory=set)
    over: bool = False
    keep_running: bool = False  # a full disk: leave a running prompt to finish (``left``), remove the rest
    left: set[str] = field(default_factory=set)  # shots whose prompt was found running and left to finish

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.signum, 130)


def asked(shots: list[Shot], url: str) -> list[Shot]:
    """Our shots the server at ``url`` should be asked about."""
    return [s for s in shots if s.record.server == url and s.phase in ASKED]


def running_left(shots: list[Shot], states: dict) -> list[str]:
    """The shots a full-disk stop leaves to finish: the server says their prompt is running (and
    no stop of it was asked already)."""
    return [s.name for s in shots if s.phase not in (Phase.CANCELLING, Phase.UNCONFIRMED)
            and (states.get(s.record.prompt_id) or ("",))[0] == "running"]


def answers(shots: list[Shot], states: dict) -> list[tuple[str, object]]:
    """``(shot, machine event)`` for what a server said during the stop: queued prompts first, or
    the server would start the next of ours when the running one stops."""
    known = [s for s in shots if s.record.prompt_id in states]
    known.sort(key=lambda s: states[s.record.prompt_id][0] != "pending")
    out: list[tuple[str, object]] = []
    for shot in known:
        state, entry = states[shot.record.prompt_id]
        if shot.phase in (Phase.CANCELLING, Phase.UNCONFIRMED):
            out.append((shot.name, ServerSays(state, entry)))  # confirms a stop, or finds the prompt
        else:
            out.append((shot.name, Cancel(state, entry)))
    return out


def message(shots: list[Shot], ledger_path: Path) -> str:
    """What the person reads: the ledger, and exactly which of our prompts may be on a server."""
    left = [s for s in shots if s.phase in UNRESOLVED and s.phase != Phase.WAITING]
    text = f"interrupted; the ledger is saved in {ledger_path}"
    if not left:
        return text + "; none of our prompts is left on the server"
    where = ", ".join(f"{s.name} ({how(s)}) on {s.record.server}" for s in left)
    return (f"{text}; still on the server: {where}: the next run re-attaches to "
            f"{'it' if len(left) == 1 else 'them'} (keeping a finished clip) instead of rendering again")


def how(shot: Shot) -> str:
    if shot.phase == Phase.CANCELLING:
        return "asked to stop"
    if shot.phase in (Phase.UNCONFIRMED, Phase.SUBMITTING):
        return "maybe: its submission was not confirmed"
    return shot.record.status
