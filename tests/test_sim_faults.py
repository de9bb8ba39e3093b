"""Faults on demand: what a client must survive, injected in-process or with --faults."""

from __future__ import annotations

import json
import socket
import time
import uuid

import pytest
import requests
import websocket
from typer.testing import CliRunner

from helpers import wait_until
from wanclip.cli.app import app
from wanclip.sim import parse_faults


def read_until_closed(ws) -> list[str]:
    """Message types until the server closes the socket (a close frame reads as '')."""
    got = []
    try:
        while text := ws.recv():
            got.append(json.loads(text)["type"])
    except websocket.WebSocketConnectionClosedException:
        pass
    ws.shutdown()  # close() skips the socket once the server has closed the connection
    return got


def test_fail_prompt_n_at_a_chosen_node(sim, sim_client, tiny_workflow):
    sim.faults.fail_prompt(2, "VAEDecode", "CUDA out of memory")
    sim_client.run(tiny_workflow(seed=1))
    resp, msgs = sim_client.run(tiny_workflow(seed=2))

    error = next(m["data"] for m in msgs if m["type"] == "execution_error")
    assert (error["node_id"], error["node_type"], error["exception_message"]) == ("87", "VAEDecode", "CUDA out of memory\n")
    assert [e["status"] for e in sim.log()] == ["success", "error"]


def test_websockets_close_after_n_messages(sim, sim_client, tiny_workflow):
    sim.faults.close_ws_after(3)
    ws = sim_client.connect("c1")
    sim_client.post("/prompt", {"prompt": tiny_workflow(), "client_id": "c1"})
    assert read_until_closed(ws) == ["status", "status", "status"]
    ws.close()


def test_restart_during_a_prompt_loses_queue_history_and_the_running_prompt(sim, sim_client, tiny_workflow):
    sim_client.run(tiny_workflow(seed=1))
    sim.faults.restart_during(2)
    ws = sim_client.connect("c1")
    ws.recv()
    second = sim_client.post("/prompt", {"prompt": tiny_workflow(seed=2), "client_id": "c1"}).json()
    assert "execution_start" in read_until_closed(ws)
    ws.close()

    assert sim_client.get("/history").json() == {}
    assert sim_client.get(f"/history/{second['prompt_id']}").json() == {}
    assert sim_client.get("/queue").json() == {"queue_running": [], "queue_pending": []}
    assert [e["status"] for e in sim.log()] == ["success", "lost"]
    assert sim_client.post("/prompt", {"prompt": tiny_workflow()}).json()["number"] == 0


def test_restart_on_call_drops_pending_prompts(sim, sim_client, tiny_workflow):
    sim.faults.stall_prompt(1)
    first, _ = [sim_client.post("/prompt", {"prompt": tiny_workflow(seed=seed)}).json()["prompt_id"]
                for seed in (1, 2)]
    # the first is running (stalled) before the restart: under load the worker had not picked it up
    # yet, nothing was running, and the log had no "lost" entry to read
    wait_until(lambda: (sim.engine.current() or (None,))[0] == first)
    sim.restart()

    assert sim_client.get("/queue").json() == {"queue_running": [], "queue_pending": []}
    wait_until(lambda: [(e["prompt_id"], e["status"]) for e in sim.log()] == [(first, "lost")])


def test_routes_can_answer_500_a_few_times_or_late(sim, sim_client):
    sim.faults.fail_route("/history", times=2).delay_route("/queue", 0.01)

    codes = [sim_client.get("/api/history/x").status_code for _ in range(3)]
    assert codes == [500, 500, 200]
    assert sim_client.get("/queue").status_code == 200


def test_stalled_prompt_waits_until_interrupted(sim, sim_client, tiny_workflow):
    sim.faults.stall_prompt(1, "KSamplerAdvanced")
    pid = sim_client.post("/prompt", {"prompt": tiny_workflow()}).json()["prompt_id"]
    wait_until(lambda: sim.engine.current() == (pid, "81"))
    sim_client.post("/interrupt", {"prompt_id": "not-running"})
    time.sleep(0.05)
    assert sim_client.get(f"/history/{pid}").json() == {}
    sim_client.post("/interrupt", {"prompt_id": pid})
    wait_until(lambda: sim_client.get(f"/history/{pid}").json())
    assert sim_client.get("/sim/log").json()[0]["status"] == "interrupted"


def test_log_lists_every_executed_prompt_once(sim, sim_client, tiny_workflow):
    ids = [sim_client.run(tiny_workflow(seed=s), client_id=f"c{s}")[0].json()["prompt_id"] for s in (1, 2)]

    log = sim_client.get("/sim/log").json()
    assert [e["prompt_id"] for e in log] == ids
    assert [e["client_id"] for e in log] == ["c1", "c2"]
    assert sorted(log[0]) == ["client_id", "finished_ms", "number", "prompt_id", "started_ms", "status"]


def test_fault_spec_parses_every_kind():
    f = parse_faults("fail:2@VAEDecode=boom, stall:3, restart:4, ws_close:10, delay:/history=0.5, http500:/prompt*2")

    assert (f.fail[2].node, f.fail[2].message, f.stall[3].node) == ("VAEDecode", "boom", None)
    assert (f.restart_at, f.ws_close_after, f.delays, f.errors) == ({4}, 10, {"/history": 0.5}, {"/prompt": 2})


def test_bad_fault_spec_is_an_error_for_people():
    result = CliRunner().invoke(app, ["sim", "--faults", "explode:1"])

    assert result.exit_code != 0
    assert "bad fault 'explode:1'" in result.output


# ---- issue #9 hooks ---------------------------------------------------------------------------



def test_send_raw_sends_a_malformed_frame_after_n_messages(sim, sim_client, tiny_workflow):
    frame = '{"type":"progress","data":{"value":"12%"}}'
    sim.faults.send_raw(frame, after_messages=2)
    ws = sim_client.connect("c1")
    ws.recv()
    sim_client.post("/prompt", {"prompt": tiny_workflow(), "client_id": "c1"})
    texts = [ws.recv() for _ in range(3)]
    ws.close()
    assert json.loads(texts[0])["type"] == "status"
    assert texts[1] == frame  # right after the 2nd message
    assert parse_faults(f"send_raw:2={frame},ws_close:9").raw_frames == [(2, frame)]


def test_down_for_refuses_connections_then_comes_back_empty_on_the_same_port(sim, sim_client, tiny_workflow):
    sim_client.run(tiny_workflow(seed=1))
    sim.faults.down_for(0.5, during=2)
    ws = sim_client.connect("c1")
    ws.recv()
    sim_client.post("/prompt", {"prompt": tiny_workflow(seed=2), "client_id": "c1"})
    with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError, OSError)):
        while True:
            ws.recv()
    ws.close()
    wait_until(lambda: not sim.is_up)
    with pytest.raises(requests.ConnectionError):
        requests.get(sim.url + "/queue", timeout=2)
    with pytest.raises(OSError):
        socket.create_connection((sim.host, sim.port), timeout=1).close()
    wait_until(lambda: sim.is_up, tries=300)
    assert sim_client.get("/history").json() == {}
    assert sim_client.get("/queue").json() == {"queue_running": [], "queue_pending": []}
    assert [e["status"] for e in sim.log()] == ["success", "lost"]
    assert sim_client.run(tiny_workflow(seed=3))[0].status_code == 200
    assert parse_faults("down_for:2=1.5").down == {2: 1.5}


def test_slow_interrupt_lands_only_after_the_delay(sim, sim_client, tiny_workflow):
    sim.faults.stall_prompt(1).slow_interrupt(0.3)
    pid = sim_client.post("/prompt", {"prompt": tiny_workflow()}).json()["prompt_id"]
    wait_until(lambda: sim.engine.current() == (pid, "81"))
    start = time.monotonic()
    sim_client.post("/interrupt", {"prompt_id": pid})
    wait_until(lambda: sim_client.get(f"/history/{pid}").json())
    # a lower bound only (the delay is the sim's own wait): a loaded machine can only make it longer;
    # "still running 0.15 s in" was a race with the 0.3 s delay under load
    assert time.monotonic() - start >= 0.3
    assert sim.log()[0]["status"] == "interrupted"
    assert parse_faults("slow_interrupt:2.5").interrupt_delay == 2.5


def test_endless_view_never_ends(sim, sim_client, tiny_workflow):
    sim_client.run(tiny_workflow())
    sim.faults.endless_view()
    params = {"filename": "shot_00001.mp4", "subfolder": "wanclip", "type": "output"}
    with requests.get(sim.url + "/view", params=params, stream=True, timeout=10) as resp:
        assert resp.status_code == 200 and "Content-Length" not in resp.headers
        got = 0
        for chunk in resp.iter_content(65536):
            got += len(chunk)
            if got > 4 * 1024 * 1024:
                break
    assert got > 4 * 1024 * 1024
    assert parse_faults("endless_view").view_endless


def test_wrong_view_size_short_looks_complete_and_long_breaks(sim, sim_client, tiny_workflow):
    sim_client.run(tiny_workflow())
    params = {"filename": "shot_00001.mp4", "subfolder": "wanclip", "type": "output"}
    real = sim_client.get("/view", params=params).content
    sim.faults.wrong_view_size(100)
    short = sim_client.get("/view", params=params)
    assert (short.headers["Content-Length"], short.content) == ("100", real[:100])
    sim.faults.wrong_view_size(len(real) + 1000)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        sim_client.get("/view", params=params)
    assert parse_faults("wrong_view_size:7").view_size == 7


@pytest.mark.parametrize("method, route, body", [
    ("post", "/prompt", None), ("get", "/queue", None), ("post", "/interrupt", {}), ("get", "/history", None),
    ("get", "/api/history/x", None), ("post", "/api/prompt", None),
])
def test_http500_on_each_route(sim, sim_client, tiny_workflow, method, route, body):
    sim.faults.fail_route(route.removeprefix("/api"), times=1)
    payload = {"prompt": tiny_workflow()} if route.endswith("/prompt") else body
    first = getattr(sim_client, method)(route, payload) if method == "post" else sim_client.get(route)
    second = getattr(sim_client, method)(route, payload) if method == "post" else sim_client.get(route)
    assert (first.status_code, second.status_code) == (500, 200)


def test_a_500_on_post_prompt_queued_nothing(sim, sim_client, tiny_workflow):
    sim.faults.fail_route("/prompt", times=1)
    assert sim_client.post("/prompt", {"prompt": tiny_workflow()}).status_code == 500
    # the queue is FIFO: once a later prompt has run, a queued refused one would have run before it
    after = sim_client.post("/prompt", {"prompt": tiny_workflow(seed=7)}).json()["prompt_id"]
    wait_until(lambda: sim_client.get(f"/history/{after}").json())
    assert [e["prompt_id"] for e in sim.log()] == [after] and list(sim_client.get("/history").json()) == [after]


def test_a_502_after_post_prompt_queued_it_anyway(sim, sim_client, tiny_workflow):
    sim.faults.bad_gateway_after("/prompt", times=1)
    pid = str(uuid.uuid4())
    resp = sim_client.post("/prompt", {"prompt": tiny_workflow(), "prompt_id": pid})
    assert resp.status_code == 502 and "Bad Gateway" in resp.text
    wait_until(lambda: sim_client.get(f"/history/{pid}").json())
    assert [e["prompt_id"] for e in sim.log()] == [pid]
    assert parse_faults("http502_after:/prompt*2").lost_answers == {"/prompt": 2}


@pytest.mark.parametrize("sim_profile", ["0.9", "0.38"], indirect=True)
def test_http500_on_the_jobs_api(sim_profile, profile_client):
    sim_profile.faults.fail_route("/api/jobs", times=2)
    codes = [profile_client.get(p).status_code for p in ("/api/jobs", "/api/jobs/x", "/api/jobs/x")]
    assert codes == [500, 500, 404]
