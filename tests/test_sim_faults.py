"""Faults on demand: what a client must survive, injected in-process or with --faults."""

from __future__ import annotations

import json
import time

import websocket
from typer.testing import CliRunner

from wanclip.cli.app import app
from wanclip.sim import parse_faults


def wait_until(check, tries: int = 500):
    for _ in range(tries):
        if check():
            return
        time.sleep(0.01)
    raise AssertionError("condition never became true")


def read_until_closed(ws) -> list[str]:
    """Message types until the server closes the socket (a close frame reads as '')."""
    got = []
    try:
        while text := ws.recv():
            got.append(json.loads(text)["type"])
    except websocket.WebSocketConnectionClosedException:
        pass
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


def test_restart_during_a_prompt_loses_queue_history_and_the_running_prompt(sim, sim_client, tiny_workflow):
    sim_client.run(tiny_workflow(seed=1))
    sim.faults.restart_during(2)
    ws = sim_client.connect("c1")
    ws.recv()
    second = sim_client.post("/prompt", {"prompt": tiny_workflow(seed=2), "client_id": "c1"}).json()
    assert "execution_start" in read_until_closed(ws)

    assert sim_client.get("/history").json() == {}
    assert sim_client.get(f"/history/{second['prompt_id']}").json() == {}
    assert sim_client.get("/queue").json() == {"queue_running": [], "queue_pending": []}
    assert [e["status"] for e in sim.log()] == ["success", "lost"]
    assert sim_client.post("/prompt", {"prompt": tiny_workflow()}).json()["number"] == 0


def test_restart_on_call_drops_pending_prompts(sim, sim_client, tiny_workflow):
    sim.faults.stall_prompt(1)
    for seed in (1, 2):
        sim_client.post("/prompt", {"prompt": tiny_workflow(seed=seed)})
    sim.restart()

    assert sim_client.get("/queue").json() == {"queue_running": [], "queue_pending": []}
    wait_until(lambda: sim.log()[0]["status"] == "lost")


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
