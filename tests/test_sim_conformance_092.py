"""The simulator's 0.9 profile against recordings of a real ComfyUI 0.9.2 (tests/data copies).

Like test_sim_conformance.py for 0.3.64: every recorded request is replayed in the recorded order
(so the classic cache holds what it held then), and replies, websocket transcripts, history
entries and /api/jobs answers are compared message by message: types, keys, nodes, states and
progress counts (throttled here); not ids, timestamps or file names.
"""

from __future__ import annotations

import json

import pytest
import websocket

from conftest import SimClient
from helpers import wait_until
from test_sim_conformance import key_tree, normalise_errors, shape, statuses, without_status

pytestmark = pytest.mark.parametrize("sim_profile", ["0.9"], indirect=True)

# The recording server's model files (its /models/* and object_info lists).
MODELS_092 = {
    "diffusion_models": ["wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors", "wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors"],
    "text_encoders": ["umt5_xxl_fp8_e4m3fn_scaled.safetensors"],
    "vae": ["wan2.2_vae.safetensors", "wan_2.1_vae.safetensors"],
    "loras": ["wan2.2_t2v_lightx2v_4steps_lora_v1.1_high_noise.safetensors",
              "wan2.2_t2v_lightx2v_4steps_lora_v1.1_low_noise.safetensors"],
}

# Recorded order (history numbers 0-5); the repost re-sends run3's body under run3's finished id.
CHAIN = ["run1_vhs_cold", "run2_vhs_warm_newseed_newtext", "run3_vhs_identical_resubmit", "repost_finished_id",
         "run4_core_createvideo_savevideo", "exec_error_wan22_vae"]
VALERR = ["valerr_lora_not_in_list", "valerr_lora_empty_name", "valerr_missing_required_input"]


def load(samples, name):
    return json.loads((samples / name).read_text(encoding="utf-8"))


def recorded(transcript: list) -> list[dict]:
    return [e["msg"] for e in transcript if "msg" in e]


@pytest.fixture
def rec(sim_profile):
    sim_profile.engine.set_models(MODELS_092)
    return sim_profile


@pytest.fixture
def client(rec) -> SimClient:
    return SimClient(rec)


def replay_chain(client, samples) -> dict[str, dict]:
    """Runs CHAIN like the recorder did; returns name -> {resp, msgs, prompt_id}."""
    runs: dict[str, dict] = {}
    for name in CHAIN:
        body = load(samples, f"{name}_request_prompt.json")
        extra = {"prompt_id": runs["run3_vhs_identical_resubmit"]["prompt_id"]} if name == "repost_finished_id" else {}
        resp, msgs = client.run(body["prompt"], client_id=f"client-{name}", **extra)
        pid = resp.json().get("prompt_id")
        runs[name] = {"resp": resp, "msgs": msgs, "prompt_id": pid,  # read when the recorder read them
                      "history": client.get(f"/history/{pid}").json()[pid], "job": client.get(f"/api/jobs/{pid}").json()}
    return runs


def assert_history_matches(samples, name, mine):
    real = next(iter(load(samples, f"{name}_history_entry.json").values()))
    assert sorted(mine) == sorted(real), name
    assert mine["prompt"][0] == real["prompt"][0], name  # the same numbering, repost included
    assert mine["prompt"][2] == real["prompt"][2], name
    assert sorted(mine["prompt"][3]) == sorted(real["prompt"][3]) == ["client_id", "create_time"], name
    assert mine["prompt"][4] == real["prompt"][4], name
    assert key_tree(mine["outputs"]) == key_tree(real["outputs"]), name
    assert mine["meta"] == real["meta"], name
    assert (mine["status"]["status_str"], mine["status"]["completed"]) == \
        (real["status"]["status_str"], real["status"]["completed"]), name
    assert [shape({"type": t, "data": d}) for t, d in mine["status"]["messages"]] == \
        [shape({"type": t, "data": d}) for t, d in real["status"]["messages"]], name


def job_shape(job: dict) -> dict:
    """A job without ids, times and file names; outputs and messages by structure."""
    out = {k: key_tree(v) for k, v in job.items() if k not in ("status", "priority", "execution_error", "execution_status")}
    out.update(status=job["status"], priority=job["priority"])
    if "execution_error" in job:  # the sim's traceback is shorter than torch's
        out["execution_error"] = sorted(job["execution_error"])
    if "execution_status" in job:
        status = job["execution_status"]
        out["execution_status"] = (status["status_str"], status["completed"],
                                   [shape({"type": t, "data": d}) for t, d in status["messages"]])
    return out


def test_recorded_session_replays_with_the_same_transcripts_history_and_jobs(client, samples_092):
    runs = replay_chain(client, samples_092)

    for name in CHAIN:
        resp, msgs = runs[name]["resp"], runs[name]["msgs"]
        real = load(samples_092, f"{name}_post_prompt_response.json")
        assert resp.status_code == real["http_status"] == 200, name
        assert key_tree(resp.json()) == key_tree(real["body"]), name
        assert resp.json()["number"] == real["body"]["number"], name
        real_msgs = recorded(load(samples_092, f"{name}_ws_transcript.json"))
        assert [shape(m) for m in msgs] == [shape(m) for m in real_msgs], name
        assert_history_matches(samples_092, name, runs[name]["history"])
        job = runs[name]["job"]
        real_job = load(samples_092, f"{name}_jobs.json")["after" if name != "repost_finished_id" else "right_after_post"]
        assert job_shape(job) == job_shape(real_job["body"]), name


def test_progress_is_throttled_first_and_last_only_for_quick_frames(client, samples_092):
    runs = replay_chain(client, samples_092)

    vhs = [(m["data"]["value"], m["data"]["max"]) for m in runs["run1_vhs_cold"]["msgs"]
           if m["type"] == "progress" and m["data"]["node"] == "90"]
    assert vhs == [(1, 5), (5, 5)]  # 0.3.64 sent 1..5 of 5


def test_a_reposted_finished_id_runs_again_and_replaces_its_history_entry_in_place(client, samples_092):
    runs = replay_chain(client, samples_092)
    ids = [runs[n]["prompt_id"] for n in ("run1_vhs_cold", "run2_vhs_warm_newseed_newtext", "run3_vhs_identical_resubmit")]

    assert runs["repost_finished_id"]["prompt_id"] == ids[2]
    assert [e["prompt_id"] for e in client.get("/sim/log").json()].count(ids[2]) == 2  # it ran twice
    everything = client.get("/history").json()
    real = load(samples_092, "repost_finished_id_history_all_max3.json")
    assert list(everything)[:3] == ids and len(real) == 3
    assert [e["prompt"][0] for e in list(everything.values())[:3]] == [e["prompt"][0] for e in real.values()] == [0, 1, 3]


@pytest.mark.parametrize("name", VALERR)
def test_validation_errors_match_the_real_replies(client, samples_092, name):
    resp, msgs = client.run(load(samples_092, f"{name}_request_prompt.json")["prompt"])
    real = load(samples_092, f"{name}_post_prompt_response.json")

    assert resp.status_code == real["http_status"] == 400
    assert normalise_errors(resp.json()) == normalise_errors(real["body"])
    assert [shape(m) for m in msgs] == [shape(m) for m in recorded(load(samples_092, f"{name}_ws_transcript.json"))]


def test_reconnect_with_the_same_client_id_gets_the_running_node_then_the_rest(rec, client, samples_092):
    replay_chain(client, samples_092)
    real = load(samples_092, "reconnect_ws_transcript.json")
    body = load(samples_092, "reconnect_request_prompt.json")
    cid = real["client_id"]
    rec.engine.config.step_seconds = 2.0  # ~0.1 s per step of this tiny clip: room for the reconnect
    try:
        ws1 = client.connect(cid)
        first = [json.loads(ws1.recv())]
        pid = client.post("/prompt", {"prompt": body["prompt"], "client_id": cid}).json()["prompt_id"]
        while not (first[-1]["type"] == "executing" and first[-1]["data"].get("node") == "81"):
            first.append(json.loads(ws1.recv()))
        ws1.close()
        ws2 = client.connect(cid)
        second = client.until_done(ws2, pid)
        ws2.close()
    finally:
        rec.engine.config.step_seconds = 0.005

    assert [shape(m) for m in first] == [shape(m) for m in recorded(real["ws1"])]
    assert [shape(m) for m in second] == [shape(m) for m in recorded(real["ws2 (own clock)"])]
    assert "credential_key" not in second[0]["data"]
    assert second[1] == {"type": "executing", "data": {"node": "81"}}


def test_a_second_socket_with_the_same_client_id_takes_the_events(rec, client, samples_092):
    real = load(samples_092, "reconnect_second_socket_ws_transcript.json")
    body = load(samples_092, "reconnect_request_prompt.json")
    client.run(body["prompt"], client_id="warm")  # the recording's cache: everything but sampling
    prompt = json.loads(json.dumps(body["prompt"]))
    prompt["81"]["inputs"]["noise_seed"] = 4242
    cid = real["client_id"]
    rec.engine.config.step_seconds = 2.0
    try:
        ws_a = client.connect(cid)
        got_a = [json.loads(ws_a.recv())]
        pid = client.post("/prompt", {"prompt": prompt, "client_id": cid}).json()["prompt_id"]
        while not (got_a[-1]["type"] == "executing" and got_a[-1]["data"].get("node") == "81"):
            got_a.append(json.loads(ws_a.recv()))
        ws_b = client.connect(cid)
        got_b = client.until_done(ws_b, pid)
        ws_a.settimeout(0.2)
        with pytest.raises(websocket.WebSocketTimeoutException):
            got_a.append(ws_a.recv())
        ws_a.close()
        ws_b.close()
    finally:
        rec.engine.config.step_seconds = 0.005

    assert [shape(m) for m in got_a] == [shape(m) for m in recorded(real["wsA (left open)"])]
    assert [shape(m) for m in got_b] == [shape(m) for m in recorded(real["wsB (own clock)"])]


def test_interrupt_session_matches_the_recording(rec, client, samples_092):
    """Case 7 and 8: re-POSTs of a pending and a running id are queued again; delete removes one
    copy per call; /interrupt {B} is a no-op; the duplicate of A runs under the same id."""
    real = load(samples_092, "interrupt_samples.json")
    body = load(samples_092, "interrupt_request_prompt_A.json")
    client.run(load(samples_092, "reconnect_request_prompt.json")["prompt"], client_id="warm")
    done = len(rec.log())
    rec.faults.stall_prompt(done + 1, "81").stall_prompt(done + 2, "87")  # where the real interrupts landed
    prompt_b = json.loads(json.dumps(body["prompt"]))
    prompt_b["81"]["inputs"]["noise_seed"] = 7

    ws = client.connect(body["client_id"])
    msgs = [json.loads(ws.recv())]
    a = client.post("/prompt", {"prompt": body["prompt"], "client_id": body["client_id"]}).json()["prompt_id"]
    # as in the recording, A is taken off the queue before B arrives (its status broadcast comes first)
    wait_until(lambda: (rec.engine.current() or (None,))[0] == a)
    b = client.post("/prompt", {"prompt": prompt_b, "client_id": body["client_id"]}).json()["prompt_id"]
    wait_until(lambda: rec.engine.current() == (a, "81"))
    got = {"B pending": client.get(f"/api/jobs/{b}").json(), "A running": client.get(f"/api/jobs/{a}").json(),
           "list": client.get("/api/jobs", params={"limit": 5}).json()}
    reposts = [client.post("/prompt", {"prompt": p, "client_id": body["client_id"], "prompt_id": i})
               for p, i in ((prompt_b, b), (body["prompt"], a))]
    queues = [client.get("/queue").json()]
    assert client.post("/interrupt", {"prompt_id": b}).status_code == 200
    for _ in range(2):
        client.post("/queue", {"delete": [b]})
        queues.append(client.get("/queue").json())
    got["B deleted"] = client.get(f"/api/jobs/{b}")
    client.post("/interrupt", {"prompt_id": a})
    msgs += client.until_done(ws, a)
    got["A after 1st"] = client.get(f"/api/jobs/{a}").json()
    wait_until(lambda: rec.engine.current() == (a, "87"))
    got["A duplicate running"] = client.get(f"/api/jobs/{a}").json()
    client.post("/interrupt")
    msgs += client.until_done(ws, a)
    ws.close()
    got["A final"] = client.get(f"/api/jobs/{a}").json()

    assert [r.status_code for r in reposts] == [200, 200]
    assert [r.json()["prompt_id"] for r in reposts] == [b, a]
    lengths = [(len(q["queue_running"]), len(q["queue_pending"])) for q in queues]
    real_lengths = [(len(real[k]["body"]["queue_running"]), len(real[k]["body"]["queue_pending"])) for k in
                    ("GET /queue (after re-POSTs)", "GET /queue (after 1st delete)", "GET /queue (after 2nd delete)")]
    assert lengths == real_lengths == [(1, 3), (1, 2), (1, 1)]
    assert (got["B deleted"].status_code, got["B deleted"].json()) == (404, {"error": "Job not found"})
    for mine, key in (("B pending", "GET /api/jobs/B (pending)"), ("A running", "GET /api/jobs/A (running)"),
                      ("A after 1st", "GET /api/jobs/A (after 1st interrupt)"),
                      ("A duplicate running", "GET /api/jobs/A (duplicate running)"), ("A final", "GET /api/jobs/A (final)")):
        assert job_shape(got[mine]) | {"priority": 0} == job_shape(real[key]["body"]) | {"priority": 0}, mine
    assert got["A duplicate running"]["priority"] == got["A after 1st"]["priority"]  # history first
    assert got["A final"]["priority"] == reposts[1].json()["number"]
    assert [j["status"] for j in got["list"]["jobs"][:2]] == ["pending", "in_progress"]
    expected = recorded(load(samples_092, "interrupt_ws_transcript.json"))
    assert without_status(msgs) == without_status(expected)
    assert statuses(msgs) == statuses(expected)


def test_misc_endpoints_have_the_real_shapes(rec, client, samples_092, tiny_workflow):
    real = load(samples_092, "misc_endpoints.json")

    def same(method, path, key, **kwargs):
        resp = client.get(path) if method == "GET" else client.post(path, kwargs.pop("json", None), **kwargs)
        want = real[key]
        assert resp.status_code == want["http_status"], key
        if "_raw" in want["body"]:
            assert resp.text == want["body"]["_raw"], key
        else:
            assert resp.json() == want["body"], key

    for path in ("/features", "/api/features"):
        same("GET", path, f"GET {path}")
    for path in ("/queue", "/prompt", "/models", "/models/loras", "/models/vae", "/models/unet", "/node_replacements",
                 "/api/v2/health", "/api/jobs?limit=0", "/api/jobs?status=bogus", "/api/jobs?sort_by=bogus"):
        same("GET", path, f"GET {path}")
    same("GET", "/view?filename=nope.mp4", "GET /view?filename=nope.mp4")
    same("GET", "/object_info/NoSuchNode", "GET /object_info/NoSuchNode")
    assert client.get("/api/jobs/f4ad2bc5-835a-44e8-818e-1c0f1936292f").json() == {"error": "Job not found"}
    assert client.get("/history/eb0bceab-7f32-4ce4-b292-fcf87086f0f6").json() == {}
    same("POST", "/api/jobs/f4ad2bc5-835a-44e8-818e-1c0f1936292f/cancel", "POST /api/jobs/<unknown id>/cancel")
    same("POST", "/api/jobs/cancel", "POST /api/jobs/cancel", json={"job_ids": []})
    same("POST", "/prompt", "POST /prompt malformed JSON body", data=b"{not json")
    same("POST", "/prompt", "POST /prompt without prompt", json={})
    same("POST", "/prompt", "POST /prompt UI-format workflow (top-level id/nodes)",
         json={"prompt": {"id": "x", "nodes": [], "links": []}})
    same("POST", "/queue", "POST /queue empty body", data=b"")
    same("POST", "/interrupt", "POST /interrupt empty body", data=b"")
    same("POST", "/interrupt", "POST /interrupt {prompt_id: unknown}", json={"prompt_id": "nope"})
    for pid in ("shot-03-readable", "B941EF80-F3A1-4E6B-A4CE-8B491CD90E62"):  # no invalid_prompt_id yet
        resp = client.post("/prompt", {"prompt": tiny_workflow(), "prompt_id": pid})
        assert (resp.status_code, resp.json()["prompt_id"]) == (200, pid)


def test_object_info_matches_the_recorded_classes(rec, client, samples_092):
    real = load(samples_092, "misc_endpoints.json")
    for cls in ("KSamplerAdvanced", "SaveVideo", "CreateVideo", "VHS_VideoCombine", "UNETLoader", "LoraLoaderModelOnly"):
        mine = client.get(f"/api/object_info/{cls}").json()
        assert mine == real[f"GET /object_info/{cls}"]["body"], cls  # the models are the recording's too
    info = client.get("/object_info").json()
    assert sorted(info["EmptyHunyuanLatentVideo"]) == sorted(
        ["input", "input_order", "output", "output_is_list", "output_name", "output_tooltips", "output_matchtypes", "name",
         "display_name", "description", "python_module", "category", "output_node", "deprecated", "experimental",
         "api_node", "price_badge"])


def test_system_stats_and_the_feature_flags_reply(rec, client, samples_092):
    real = load(samples_092, "system_stats.json")
    mine = client.get("/system_stats").json()
    assert sorted(mine["system"]) == sorted(real["system"])
    assert sorted(mine["devices"][0]) == sorted(real["devices"][0])
    assert (mine["system"]["comfyui_version"], mine["system"]["os"]) == ("0.9.2", "linux")

    flags = load(samples_092, "ws_feature_flags.json")
    ws = client.connect("client-ff")
    first = json.loads(ws.recv())
    ws.send(json.dumps(flags["client sent"]))
    reply = json.loads(ws.recv())
    ws.close()
    assert key_tree(first) == key_tree(flags["first frame"])
    assert reply == flags["reply"]
