"""Events for our prompt id can come before the reply to its POST (ComfyUI starts it at once; a
loaded client reads the socket first). They are the shot's: none may be dropped.

Under load this dropped the first nodes' `executing`: the samplers were missing from node_seconds
and `test_whole_film_renders_clips_ledger_and_film` failed."""

from __future__ import annotations

from wanclip.comfy.events import parse
from wanclip.ledger import ShotRecord
from wanclip.render import shot as m

RULES = m.Rules(shot_timeout=60.0, history_timeout=30.0, submit_tries=3, backoff=(1.0, 2.0, 4.0))
LABELS = {"81": "high-noise sampler", "82": "low-noise sampler", "90": "combine"}


def event(kind: str, **data) -> object:
    import json

    return parse(json.dumps({"type": kind, "data": {"prompt_id": "p-1", **data}}))


def test_events_before_the_post_reply_are_the_shots():
    shot = m.Shot(ShotRecord(index=1, name="one", graph_sha256="g", seed=1, frames=5, width=64, height=64,
                             fps=16.0), dict(LABELS))
    effects: list = []
    for at, ev in [(0.0, m.Assign("http://gpu:8188", "p-1")), (0.1, event("execution_start", timestamp=5)),
                   (0.2, event("executing", node="81")), (0.5, event("executing", node="82")),
                   (0.9, m.Submitted()), (1.0, event("executing", node="90"))]:
        shot, out = m.step(shot, ev, at, RULES)
        effects += out
    kinds = [e.kind for e in effects if isinstance(e, m.Emit)]
    assert kinds.count("submitted") == 1 and kinds.index("submitted") < kinds.index("started")
    assert shot.record.status == "running" and shot.record.execution_start_ms == 5
    assert shot.record.node_seconds == {"high-noise sampler": 0.3, "low-noise sampler": 0.5}
