"""The Comfy API v2 client's pure parts: requests as values, answers and errors parsed, the job's
status changes as the render's events (no server)."""

from __future__ import annotations

from wanclip.comfy import v2
from wanclip.comfy.events import Executing, ExecutionError, ExecutionStart, ExecutionSuccess
from wanclip.comfy.v2_jobs import Watch, entry_of, outputs_of, state_of
from wanclip.errors import PromptRejected, ServerError


def job(status: str, **extra) -> v2.Job:
    return v2.parse_job({"id": "j-1", "status": status, **extra})


def test_a_submission_carries_the_attempt_as_idempotency_key_and_label():
    req = v2.submit_request({"1": {"class_type": "X", "inputs": {}}}, "attempt-1", v2.label_for("attempt-1"))
    assert (req.method, req.path) == ("POST", "/api/v2/jobs")
    assert req.headers == {"Idempotency-Key": "attempt-1"}
    assert req.json["metadata"] == "wanclip:attempt-1" and "1" in req.json["workflow"]
    assert "metadata" not in v2.submit_request({}, "k").json  # Comfy Cloud refuses labels


def test_errors_of_the_spec_and_of_comfyui_parse_into_one_shape():
    spec = v2.parse_error(429, {"Retry-After": "7"}, {"error": {"code": "queue_full", "message": "full",
                                                               "details": {"limit": 100}}})
    assert (spec.status, spec.code, spec.message, spec.details, spec.retry_after) == (429, "queue_full", "full",
                                                                                       {"limit": 100}, 7.0)
    comfy = v2.parse_error(400, {}, {"error": {"type": "prompt_outputs_failed_validation", "message": "bad"},
                                     "node_errors": {"4": {"errors": []}}})
    assert comfy.details["node_errors"] == {"4": {"errors": []}}
    assert v2.parse_error(502, {}, None).code == "http_502"
    assert v2.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert v2.parse_retry_after("soon") is None


def test_errors_are_translated_at_the_boundary_and_a_refused_key_names_the_variable(monkeypatch):
    monkeypatch.setenv("COMFY_API_KEY", "sk-do-not-print")
    refused = v2.wanclip_error(v2.V2Refused(401, "unauthorized", "bad key", method="GET", path="/api/v2/jobs/x"), "u")
    assert isinstance(refused, ServerError) and "COMFY_API_KEY" in refused.hint and v2.is_auth_error(refused)
    assert "sk-do-not-print" not in str(refused)
    rejected = v2.wanclip_error(v2.V2Refused(422, "invalid_workflow", "no", {"node_errors": {"4": {}}}), "u")
    assert isinstance(rejected, PromptRejected) and rejected.node_errors == {"4": {}}
    assert v2.wanclip_error(v2.V2Refused(429, "rate_limited", "slow down"), "u").transient
    assert v2.wanclip_error(v2.V2NoAnswer("ConnectionError"), "u").transient
    assert not v2.wanclip_error(v2.V2Refused(402, "insufficient_credits", "pay"), "u").transient


def test_the_key_is_a_bearer_header_only_and_an_explicit_header_wins(monkeypatch):
    monkeypatch.setenv("COMFY_API_KEY", "sk-secret")
    client = v2.V2Client("http://127.0.0.1:1/")
    assert client.session.headers["Authorization"] == "Bearer sk-secret" and "sk-secret" not in client.url
    other = v2.V2Client("http://127.0.0.1:1", headers={"authorization": "Bearer other"})
    assert other.session.headers["Authorization"] == "Bearer other"  # one Authorization: the key is not sent
    monkeypatch.delenv("COMFY_API_KEY")
    assert not v2.V2Client("http://127.0.0.1:1").has_key
    assert v2.V2Client("https://cloud.comfy.org").is_cloud


def test_status_changes_become_the_native_events_named_by_the_attempt():
    watch = Watch()
    assert watch.seen("a", job("queued")) == []
    assert watch.seen("a", job("running")) == [ExecutionStart("a")]
    assert watch.seen("a", job("running")) == []
    assert watch.seen("a", job("succeeded")) == [ExecutionSuccess("a"), Executing("a", None)]
    failed = Watch().seen("b", job("failed", error={"code": "node_execution_error", "message": "OOM",
                                                    "node_id": "3", "class_type": "KSampler"}))
    assert failed[0] == ExecutionStart("b") and failed[1] == ExecutionError("b", "3", "KSampler",
                                                                            "node_execution_error", "OOM")
    assert Watch().seen("c", job("expired")) == []  # forgotten, not run: the look-up says "missing"


def test_a_job_as_the_state_and_history_entry_the_render_reads():
    out = {"id": "o1", "name": "a.mp4", "url": "http://x/api/v2/assets/o1/content", "content_type": "video/mp4"}
    done = job("succeeded", outputs=[out])
    state, entry = state_of(done)
    assert state == "done" and outputs_of(entry["outputs"])[0]["url"] == out["url"]
    assert entry["status"]["status_str"] == "success"
    assert state_of(job("queued")) == ("pending", None) and state_of(job("canceling"))[0] == "running"
    assert state_of(job("expired")) == ("missing", None) and state_of(None) == ("missing", None)
    failed = entry_of(job("failed", error={"message": "OOM"}))
    assert failed["status"]["messages"][0][0] == "execution_error"
    assert job("queued", metadata="wanclip:att").attempt == "att" and job("queued", metadata="x").attempt is None


def test_server_sent_events_parse_and_progress_becomes_the_node_and_step_lines():
    from wanclip.comfy.events import Progress
    from wanclip.comfy.v2_jobs import progress_events

    lines = [": heartbeat", "", "event: status", 'data: {"status": "running"}', "", "event: progress",
             'data: {"current_node": "81", "step": 2,', 'data: "steps": 4}', "", "event: progress", "data: [1]", ""]
    assert list(v2.parse_sse(lines)) == [("status", {"status": "running"}),
                                         ("progress", {"current_node": "81", "step": 2, "steps": 4})]
    events, node = progress_events("a", {"current_node": "81", "step": 2, "steps": 4}, None)
    assert events == [Executing("a", "81"), Progress("a", "81", 2, 4)] and node == "81"
    assert progress_events("a", {"current_node": "81", "step": 3, "steps": 4}, "81")[0] == [Progress("a", "81", 3, 4)]
    assert progress_events("a", {"current_node": None, "step": None}, "81") == ([], "81")  # never Executing(None)


def test_a_connection_refused_is_a_post_never_sent_and_a_reset_one_that_may_have_been():
    """A refused connection proves nothing reached the surface (no job can exist); anything after the
    connection was made may have been acted on (its 201 after a restart proves nothing)."""
    import socket

    import pytest

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nothing listens there once closed
    with pytest.raises(v2.V2NoAnswer) as refused:
        v2.V2Client(f"http://127.0.0.1:{port}", key="").call(v2.health_request())
    assert refused.value.sent is False
    assert v2.V2NoAnswer("ConnectionError", "POST", "/api/v2/jobs").sent is True
