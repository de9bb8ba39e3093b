"""The shot state machine alone: recorded real-ComfyUI transcripts and synthetic sequences drive it.

No server, no threads, no clock: each test feeds events with explicit times and checks the new
record and the effects asked for.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wanclip.comfy.events import parse
from wanclip.ledger import ShotRecord
from wanclip.render import shot as m
from wanclip.render.tracking import node_labels

DATA = Path(__file__).parent / "data"
SERVER = "http://gpu:8188"
RULES = m.Rules(shot_timeout=60.0, history_timeout=30.0, submit_tries=3, backoff=(1.0, 2.0, 4.0))


def recorded(version: str, name: str) -> tuple[str, list, dict, dict]:
    """(prompt id, parsed events, history entry, submitted graph) of one recorded run."""
    folder = DATA / ("comfyui-samples" if version == "0.3.64" else f"comfyui-samples-{version}")
    history = json.loads((folder / f"{name}_history_entry.json").read_text())
    pid, entry = next(iter(history.items()))
    frames = json.loads((folder / f"{name}_ws_transcript.json").read_text())
    events = [e for e in (parse(json.dumps(f["msg"])) for f in frames) if e is not None]
    graph = json.loads((folder / f"{name}_request_prompt.json").read_text())["prompt"]
    return pid, events, entry, graph


def record(**kw) -> ShotRecord:
    base = dict(index=1, name="one", graph_sha256="g", seed=1, frames=5, width=64, height=64, fps=16.0)
    return ShotRecord(**{**base, **kw})


class Driver:
    """Feeds one shot, keeping every effect; ``kinds()`` names the effects and emitted events."""

    def __init__(self, shot: m.Shot):
        self.shot, self.effects, self.now = shot, [], 0.0

    def feed(self, event, at: float | None = None) -> list:
        self.now = self.now if at is None else at
        self.shot, effects = m.step(self.shot, event, self.now, RULES)
        self.effects += effects
        return effects

    def kinds(self, effects=None) -> list[str]:
        return [e.kind if isinstance(e, m.Emit) else type(e).__name__ for e in (self.effects if effects is None else effects)]


def submitted(labels=None, pid="p-1") -> Driver:
    d = Driver(m.Shot(record(), labels or {}))
    d.feed(m.Assign(SERVER, pid), at=0.0)
    d.feed(m.Submitted(), at=0.1)
    return d


@pytest.mark.parametrize("version,name", [("0.3.64", "run2_vhs_warm_newseed"), ("0.3.64", "run7_vhs_cold_final"),
                                          ("0.9.2", "run1_vhs_cold"), ("0.9.2", "run4_core_createvideo_savevideo")])
def test_a_recorded_run_drives_the_shot_to_a_download_of_its_output(version, name):
    pid, events, entry, graph = recorded(version, name)
    d = submitted(node_labels(graph), pid)
    for i, event in enumerate(events):
        d.feed(event, at=1.0 + i)
    assert d.shot.phase == "collecting" and d.shot.record.status == "running"
    fetch = [e for e in d.effects if isinstance(e, m.FetchHistory)]
    assert len(fetch) == 1 and fetch[0].prompt_id == pid and fetch[0].seen  # outputs seen: a short wait
    assert fetch[0].wait == 2.0
    effects = d.feed(m.HistoryRead(entry))
    (download,) = [e for e in effects if isinstance(e, m.Download)]
    assert download.outputs == entry["outputs"] and download.server == SERVER
    d.feed(m.Downloaded("clips/01_one.mp4", "abc", 5))
    rec = d.shot.record
    assert (rec.status, rec.clip, rec.clip_sha256, d.shot.phase) == ("done", "clips/01_one.mp4", "abc", "done")
    assert rec.execution_success_ms >= rec.execution_start_ms > 0
    assert {"high-noise sampler", "low-noise sampler", "decode"} <= set(rec.node_seconds)
    assert d.kinds().count("SaveLedger") >= 3 and d.kinds()[-1] == "done"


@pytest.mark.parametrize("version", ["0.3.64", "0.9.2"])
def test_a_recorded_execution_error_fails_the_shot_with_node_class_and_message(version):
    pid, events, entry, graph = recorded(version, "exec_error_wan22_vae")
    d = submitted(node_labels(graph), pid)
    for event in events:
        d.feed(event)
    d.feed(m.HistoryRead(entry))
    rec = d.shot.record
    assert rec.status == "failed" and d.shot.phase == "failed"
    assert rec.error["class"] == "VAEDecode" and rec.error["message"]
    assert not [e for e in d.effects if isinstance(e, m.Download)]


def test_events_of_other_prompts_never_reach_a_shot_and_step_never_changes_its_input():
    d = submitted()
    before = d.shot
    record_before = json.dumps(before.record.__dict__, sort_keys=True, default=str)
    after, effects = m.step(before, parse('{"type":"execution_start","data":{"prompt_id":"p-1"}}'), 5.0, RULES)
    assert after.record.status == "running" and before.record.status == "queued"
    assert json.dumps(before.record.__dict__, sort_keys=True, default=str) == record_before
    assert "started" in Driver(after).kinds(effects)


def test_the_ledger_is_saved_before_the_prompt_is_posted():
    d = Driver(m.Shot(record(), {}))
    effects = d.feed(m.Assign(SERVER, "p-1"))
    assert d.kinds(effects) == ["SaveLedger", "Submit"]
    assert (d.shot.record.status, d.shot.record.prompt_id, d.shot.record.attempts) == ("queued", "p-1", 1)


def test_a_failed_post_is_looked_up_before_it_is_ever_sent_again():
    d = Driver(m.Shot(record(), {}))
    d.feed(m.Assign(SERVER, "p-1"), at=0.0)
    assert d.kinds(d.feed(m.SubmitUnsure("HTTP 502"), at=0.5)) == ["Lookup"]
    assert d.shot.phase == "unconfirmed" and d.shot.record.prompt_id == "p-1"
    # the server did queue it (the answer was lost on the way): re-attach, never post again
    effects = d.feed(m.ServerSays("pending"), at=1.0)
    assert d.shot.phase == "queued" and "Submit" not in d.kinds(effects)
    assert d.kinds(effects) == ["submitted"]


def test_a_post_the_server_never_took_is_retried_with_backoff_then_fails_the_shot():
    d = Driver(m.Shot(record(), {}))
    d.feed(m.Assign(SERVER, "p-1"), at=0.0)
    submits = 1
    for attempt in range(1, RULES.submit_tries + 1):
        d.feed(m.SubmitUnsure("HTTP 500"))
        effects = d.feed(m.ServerSays("missing"))
        if attempt == RULES.submit_tries:
            break
        assert d.kinds(effects) == ["submit_retry"] and d.shot.phase == "waiting"
        assert d.shot.record.status == "queued"  # not "lost": it never got in
        retry_at = d.shot.retry_at
        assert d.kinds(d.feed(m.Tick(), at=retry_at - 0.01)) == []
        assert d.kinds(d.feed(m.Tick(), at=retry_at)) == ["Submit"]
        submits += 1
    assert submits == RULES.submit_tries
    assert d.shot.record.status == "failed" and "after 3 tries" in d.shot.record.error["message"]
    assert "HTTP 500" in d.shot.record.error["message"] and "lost" not in d.kinds()


def test_a_post_that_never_got_in_before_anything_was_accepted_refuses_the_render():
    d = Driver(m.Shot(record(), {}))
    d.feed(m.Assign(SERVER, "p-1"))
    for _ in range(RULES.submit_tries):
        d.feed(m.SubmitUnsure("HTTP 500"))
        d.feed(m.ServerSays("missing", first=True), at=d.now + 10)
        d.feed(m.Tick(), at=d.now + 10)
    (refuse,) = [e for e in d.effects if isinstance(e, m.Refuse)]
    assert not refuse.validation and d.shot.record.status == "pending" and d.shot.record.prompt_id is None


def test_a_400_fails_one_shot_or_refuses_the_whole_render_when_nothing_was_accepted_yet():
    d = Driver(m.Shot(record(), {}))
    d.feed(m.Assign(SERVER, "p-1"))
    effects = d.feed(m.SubmitRejected("refused", {"76": {}}, first=True))
    assert d.kinds(effects) == ["SaveLedger", "Refuse"] and d.shot.record.status == "pending"
    d = Driver(m.Shot(record(), {}))
    d.feed(m.Assign(SERVER, "p-1"))
    d.feed(m.SubmitRejected("refused", {"76": {}}, first=False))
    assert d.shot.record.status == "failed" and d.shot.record.error["node_errors"] == {"76": {}}


def test_a_server_restart_loses_a_queued_prompt_and_the_shot_is_submitted_again():
    d = submitted()
    d.feed(m.ServerSays("missing"))
    assert (d.shot.phase, d.shot.record.status, d.shot.record.prompt_id) == ("idle", "lost", None)
    d.feed(m.Assign(SERVER, "p-2"))
    assert d.shot.record.attempts == 2 and d.shot.record.prompt_id == "p-2"


def test_a_prompt_that_finished_just_before_a_restart_is_collected_from_the_events_seen():
    d = submitted()
    d.feed(parse('{"type":"executed","data":{"prompt_id":"p-1","node":"90","output":{"gifs":[{"filename":"a.mp4",'
                 '"subfolder":"","type":"output"}]}}}'))
    effects = d.feed(m.ServerSays("missing"))
    (fetch,) = [e for e in effects if isinstance(e, m.FetchHistory)]
    assert fetch.wait == 2.0
    effects = d.feed(m.HistoryMissing("no history"))
    (download,) = [e for e in effects if isinstance(e, m.Download)]
    assert "90" in download.outputs and d.shot.record.status != "lost"


def test_a_silent_running_shot_times_out_is_interrupted_and_fails():
    d = submitted()
    d.feed(parse('{"type":"execution_start","data":{"prompt_id":"p-1","timestamp":1}}'), at=1.0)
    assert d.kinds(d.feed(m.Tick(), at=60.0)) == []
    effects = d.feed(m.Tick(), at=61.5)
    assert d.kinds(effects)[0] == "Interrupt" and d.shot.record.status == "failed"
    assert "no progress for 60 s" in d.shot.record.error["message"]


def test_cancel_removes_a_queued_prompt_and_forgets_its_id_only_once_the_server_confirms():
    d = submitted()
    effects = d.feed(m.Cancel("pending"))
    assert d.kinds(effects) == ["SaveLedger", "cancelling", "Delete"]
    assert d.shot.record.prompt_id == "p-1" and d.shot.record.cancelled  # not yet confirmed
    assert d.kinds(d.feed(m.ServerSays("pending"))) == ["Delete"]  # still there: ask again
    d.feed(m.ServerSays("missing"))
    assert (d.shot.record.status, d.shot.record.prompt_id, d.shot.phase) == ("pending", None, "idle")


def test_cancel_interrupts_a_running_prompt_once_and_keeps_a_clip_that_finished_anyway():
    d = submitted()
    d.feed(parse('{"type":"execution_start","data":{"prompt_id":"p-1","timestamp":1}}'))
    assert d.kinds(d.feed(m.Cancel("running")))[-1] == "Interrupt"
    assert d.kinds(d.feed(m.ServerSays("running"))) == []  # the interrupt lands at the next check
    success = {"outputs": {"90": {"gifs": [{"filename": "a.mp4"}]}}, "status": {"status_str": "success"}}
    assert d.kinds(d.feed(m.ServerSays("done", success))) == ["Download"]
    d.feed(m.Downloaded("clips/01_one.mp4", "abc", 5))
    assert d.shot.record.status == "done"


def test_cancel_of_a_running_prompt_that_the_server_interrupted_makes_it_pending():
    d = submitted()
    d.feed(m.Cancel("running"))
    interrupted = {"outputs": {}, "status": {"status_str": "error", "messages": [
        ["execution_interrupted", {"prompt_id": "p-1", "node_id": "81", "node_type": "KSamplerAdvanced"}]]}}
    d.feed(m.ServerSays("done", interrupted))
    assert (d.shot.record.status, d.shot.record.prompt_id) == ("pending", None)
    assert "cancelled" in d.kinds()


def test_a_shot_whose_server_is_given_up_on_moves_and_a_collecting_one_stays():
    d = submitted()
    d.feed(m.Moved("gone"))
    assert d.shot.record.status == "lost"
    d = submitted()
    d.feed(parse('{"type":"executing","data":{"prompt_id":"p-1","node":null}}'))
    d.feed(m.Moved("gone"))
    assert d.shot.phase == "collecting"


def test_events_for_an_unconfirmed_post_prove_the_server_has_it():
    d = Driver(m.Shot(record(), {}))
    d.feed(m.Assign(SERVER, "p-1"))
    d.feed(m.SubmitUnsure("timed out"))
    d.feed(parse('{"type":"execution_start","data":{"prompt_id":"p-1","timestamp":1}}'))
    assert d.shot.phase == "running" and d.shot.record.error is None
    assert "Submit" not in d.kinds()[2:]


def test_the_output_node_ends_at_execution_success_not_after_comfyuis_pause():
    """ComfyUI's pause after a prompt (its gc and cache flush) comes between ``execution_success``
    and ``executing None``: it is not the output node's time (the summary showed it as video encode)."""
    d = submitted({"90": "combine"}, "p-1")
    d.feed(parse(json.dumps({"type": "executing", "data": {"node": "90", "prompt_id": "p-1"}})), at=10.0)
    d.feed(parse(json.dumps({"type": "execution_success", "data": {"prompt_id": "p-1", "timestamp": 5}})), at=10.4)
    d.feed(parse(json.dumps({"type": "executing", "data": {"node": None, "prompt_id": "p-1"}})), at=12.9)
    assert d.shot.record.node_seconds == {"combine": 0.4}


def test_the_node_packs_background_encode_time_is_recorded_apart_from_the_gpus_path():
    """``wanclip.video`` says how long the background encode took (queued -> file renamed): kept as
    ``background encode``, apart from the output node's own (short) time on the GPU's path."""
    d = submitted({"90": "combine"}, "p-1")
    d.feed(parse(json.dumps({"type": "executing", "data": {"node": "90", "prompt_id": "p-1"}})), at=10.0)
    d.feed(parse(json.dumps({"type": "execution_success", "data": {"prompt_id": "p-1", "timestamp": 5}})), at=10.3)
    d.feed(parse(json.dumps({"type": "executing", "data": {"node": None, "prompt_id": "p-1"}})), at=10.4)
    video = {"prompt_id": "p-1", "node": "90", "filename": "a_00001_.mp4", "subfolder": "wanclip", "type": "output",
             "status": "done", "message": "", "frames": 81, "bytes": 10, "seconds": 1.52}
    effects = d.feed(parse(json.dumps({"type": "wanclip.video", "data": video})), at=11.9)
    assert d.shot.record.node_seconds == {"combine": 0.3, "background encode": 1.52}
    assert any(isinstance(e, m.SaveLedger) for e in effects)
    d.feed(m.HistoryRead({"outputs": {}, "status": {}}), at=12.0)
    d.feed(m.Downloaded("clips/01_one.mp4", "abc", 5), at=12.1)
    late = dict(video, seconds=9.0)  # an event for a finished shot changes nothing it already knows
    d.feed(parse(json.dumps({"type": "wanclip.video", "data": late})), at=13.0)
    assert d.shot.record.node_seconds["background encode"] == 1.52


def test_the_posted_hash_is_kept_when_the_prompts_events_came_before_the_posts_answer():
    """Under load the server's first events for a prompt are read before the POST's reply: the shot is
    queued by then, and the reply's hash of what was posted must still reach the ledger."""
    d = Driver(m.Shot(record(), {}))
    d.feed(m.Assign(SERVER, "p-1"), at=0.0)
    d.feed(parse(json.dumps({"type": "execution_start", "data": {"prompt_id": "p-1", "timestamp": 1}})), at=0.1)
    assert d.shot.phase == "running" and d.shot.record.posted_sha256 is None
    effects = d.feed(m.Submitted("abc123"), at=0.2)
    assert d.shot.record.posted_sha256 == "abc123" and any(isinstance(e, m.SaveLedger) for e in effects)
    assert d.kinds().count("submitted") == 1  # said once, by the early event
