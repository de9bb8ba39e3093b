"""Ctrl-C and SIGTERM during a render: stop only our prompts, and say truthfully what is left.

Submissions not yet posted are withdrawn (those shots simply become pending again); answers already
in count; then, per server, our queued prompts are removed before our running one is interrupted
(or the server would start the next of ours the moment the running one stops). ComfyUI honours an
interrupt only at its next check, so the server is asked again until it confirms, for at most
``RenderOptions.cancel_wait`` seconds; a second Ctrl-C stops waiting. Whatever the server did not
confirm keeps its prompt id in the ledger, and the message names it: the next run re-attaches.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from wanclip.errors import Interrupted, ServerError
from wanclip.render import shot as m
from wanclip.signals import exit_code_for

if TYPE_CHECKING:
    from wanclip.render.loop import Render


def stop_our_prompts(render: Render, exc: BaseException) -> Interrupted:
    """Cancel what ``render`` has on its servers; the ``Interrupted`` error to raise (exit 130/143)."""
    if render.pool is None:
        return Interrupted("interrupted before anything was submitted", "run the same command again",
                           exit_code=exit_code_for(exc))
    render.sync = True  # from here on, effects run on this thread
    try:
        for effect in render.pool.quiesce():  # never posted: those shots are simply pending again
            render.feed(effect.shot, m.NotSent())
        render.step()  # answers already here (a submission that went through) count
        _ask_to_stop(render)
        deadline = render.clock() + render.options.cancel_wait
        while _cancelling(render) and render.clock() < deadline:
            time.sleep(0.2)
            _ask_to_stop(render)
    except KeyboardInterrupt:
        pass  # a second Ctrl-C: stop waiting, keep what is not confirmed
    finally:
        render.ledger.save()
    return Interrupted(_message(render), "run the same command again to resume", exit_code=exit_code_for(exc))


def _cancelling(render: Render) -> list[m.Shot]:
    return [s for s in render.shots.values() if s.phase == "cancelling"]


def _ask_to_stop(render: Render) -> None:
    for url, server in render.pool.servers.items():
        ours = [s for s in render.shots.values() if s.record.server == url
                and s.phase in ("queued", "running", "waiting", "cancelling")]
        if not ours or server.dead:
            continue
        try:
            states = render.pool.states(url, [s.record.prompt_id for s in ours])
        except ServerError as error:
            render.emit("warning", server=url, message=f"could not ask {url} to stop our prompts: {error.message}")
            continue
        # queued ones first, or the server would start the next of ours when the running one stops
        for shot in sorted(ours, key=lambda s: states[s.record.prompt_id][0] != "pending"):
            state, entry = states[shot.record.prompt_id]
            event = m.ServerSays(state, entry) if shot.phase == "cancelling" else m.Cancel(state, entry)
            render.feed(shot.name, event)


def _message(render: Render) -> str:
    left = [s for s in render.shots.values() if s.phase in m.ON_SERVER]
    text = f"interrupted; the ledger is saved in {render.ledger.path}"
    if not left:
        return text + "; none of our prompts is left on the server"
    where = ", ".join(f"{s.name} ({'asked to stop' if s.phase == 'cancelling' else s.record.status})"
                      f" on {s.record.server}" for s in left)
    return (f"{text}; still on the server: {where}: the next run re-attaches to "
            f"{'it' if len(left) == 1 else 'them'} (keeping a finished clip) instead of rendering again")
