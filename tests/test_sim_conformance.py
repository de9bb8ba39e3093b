"""The simulator against recordings of a real ComfyUI 0.3.64 running the same requests.

Each recorded request is replayed in the order it was recorded (so the cache holds what it held
then) and the reply, the websocket transcript and the history entry are compared message by
message: types, keys, nodes, states and progress counts; ids, timestamps and file names are not.
"""

from __future__ import annotations

import json

import pytest

from helpers import wait_until

# Model files on the recording server: the six real ones plus the deliberately broken test files.
RECORDING_MODELS = {
    "diffusion_models": ["wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors", "wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors"],
    "text_encoders": ["test_umt5_base_test.safetensors", "umt5_xxl_fp8_e4m3fn_scaled.safetensors"],
    "vae": ["wan2.2_vae.safetensors", "wan_2.1_vae.safetensors"],
    "loras": ["test_empty_lora.safetensors", "test_nomatch_lora.safetensors",
              "wan2.2_t2v_lightx2v_4steps_lora_v1.1_high_noise.safetensors",
              "wan2.2_t2v_lightx2v_4steps_lora_v1.1_low_noise.safetensors"],
}

# Recorded order of the successful runs, so each one finds the cache the real one found.
CHAIN = ["run7_vhs_cold_final", "run8_vhs_warm_final", "run3_vhs_identical_resubmit",
         "run4_core_createvideo_savevideo", "lora_nomatch", "lora_empty", "exec_error_wan22_vae",
         "te_umt5_base_sized"]


def load(samples, name):
    return json.loads((samples / name).read_text(encoding="utf-8"))


def key_tree(value):
    """The structure of a value without its content: dict keys and list element shapes."""
    if isinstance(value, dict):
        return {k: key_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [key_tree(v) for v in value]
    return type(value).__name__ if not isinstance(value, (int, float)) or isinstance(value, bool) else "number"


def shape(msg: dict) -> dict:
    """What must match between a real and a simulated websocket message."""
    kind, data = msg["type"], msg["data"]
    out = {"type": kind, "keys": sorted(data)}
    if kind == "status":
        out["remaining"] = data["status"]["exec_info"]["queue_remaining"]
    elif kind == "executing":
        out["node"] = data["node"]
    elif kind == "progress":
        out.update(node=data["node"], value=data["value"], max=data["max"])
    elif kind == "progress_state":
        out["nodes"] = [(n, e["state"], e["value"], e["max"], sorted(e)) for n, e in data["nodes"].items()]
    elif kind == "execution_cached":
        out["nodes"] = data["nodes"]
    elif kind == "executed":
        out.update(node=data["node"], output=key_tree(data["output"]))
    elif kind in ("execution_error", "execution_interrupted"):
        out.update(node=data["node_id"], node_type=data["node_type"], executed=sorted(data["executed"]))
    return out


def recorded(samples, name):
    return [m["msg"] for m in load(samples, f"{name}_ws_transcript.json")]


def replay(sim_client, samples, name):
    body = load(samples, f"{name}_request_prompt.json")
    return sim_client.run(body["prompt"], client_id="client-replay")


@pytest.fixture
def recording_sim(sim):
    sim.engine.set_models(RECORDING_MODELS)
    return sim


def test_cold_run_matches_run1_message_for_message(recording_sim, sim_client, samples):
    resp, msgs = replay(sim_client, samples, "run1_vhs_cold")

    assert resp.status_code == 200
    assert key_tree(resp.json()) == key_tree(load(samples, "run1_vhs_cold_post_prompt_response.json")["body"])
    assert [shape(m) for m in msgs] == [shape(m) for m in recorded(samples, "run1_vhs_cold")]


def test_recorded_session_replays_with_the_same_transcripts(recording_sim, sim_client, samples):
    for name in CHAIN:
        resp, msgs = replay(sim_client, samples, name)
        real = load(samples, f"{name}_post_prompt_response.json")

        assert resp.status_code == real["http_status"], name
        assert key_tree(resp.json()) == key_tree(real["body"]), name
        assert [shape(m) for m in msgs] == [shape(m) for m in recorded(samples, name)], name
        assert_history_matches(sim_client, samples, name, resp.json()["prompt_id"])


def assert_history_matches(sim_client, samples, name, prompt_id):
    mine = sim_client.get(f"/history/{prompt_id}").json()[prompt_id]
    real = next(iter(load(samples, f"{name}_history_entry.json").values()))
    assert sorted(mine) == sorted(real), name
    assert mine["prompt"][2] == real["prompt"][2], name  # the validated (coerced) prompt
    assert mine["prompt"][4] == real["prompt"][4], name
    assert key_tree(mine["outputs"]) == key_tree(real["outputs"]), name
    assert mine["meta"] == real["meta"], name
    for key in ("status_str", "completed"):
        assert mine["status"][key] == real["status"][key], name
    assert [shape({"type": t, "data": d}) for t, d in mine["status"]["messages"]] == \
        [shape({"type": t, "data": d}) for t, d in real["status"]["messages"]], name


def test_vae_mismatch_fails_at_vae_decode_with_the_real_error_text(recording_sim, sim_client, samples):
    for name in CHAIN[:-1]:
        resp, msgs = replay(sim_client, samples, name)
    real = next(m for m in recorded(samples, "exec_error_wan22_vae") if m["type"] == "execution_error")["data"]
    mine = next(m for m in msgs if m["type"] == "execution_error")["data"]

    assert sorted(mine) == sorted(real)
    assert mine["exception_message"] == real["exception_message"]
    assert mine["exception_type"] == "RuntimeError"
    assert sorted(mine["current_inputs"]) == sorted(real["current_inputs"])
    assert sorted(mine["current_outputs"]) == sorted(real["current_outputs"])


@pytest.mark.parametrize("name", ["valerr_missing_text", "valerr_seed_raw", "valerr_vae_not_present"])
def test_validation_errors_match_the_real_replies(sim, sim_client, samples, name):
    resp, msgs = replay(sim_client, samples, name)
    real = load(samples, f"{name}_post_prompt_response.json")

    assert resp.status_code == real["http_status"] == 400
    body = resp.json()
    assert normalise_errors(body) == normalise_errors(real["body"])
    assert [shape(m) for m in msgs] == [shape(m) for m in recorded(samples, name)]


def normalise_errors(body: dict) -> dict:
    """Real ComfyUI walks inputs in set order, so error order within a node is arbitrary."""
    body = json.loads(json.dumps(body))
    body["error"]["details"] = sorted(body["error"]["details"].split("\n"))
    for node in body["node_errors"].values():
        node["errors"].sort(key=lambda e: e["details"])
    return body


def test_interrupt_session_matches_the_recording(recording_sim, sim_client, samples):
    real = load(samples, "interrupt_samples.json")
    first = real["GET /queue (running + pending)"]["body"]["queue_running"][0][2]
    sim_client.run(load(samples, "run8_vhs_warm_final_request_prompt.json")["prompt"], client_id="warm")
    recording_sim.faults.stall_prompt(2, "11")  # the real interrupt landed as sampler 11 started

    ws = sim_client.connect("client-int")
    msgs = [json.loads(ws.recv())]
    a = sim_client.post("/prompt", {"prompt": first, "client_id": "client-int"})
    # A is running before B comes, as in the recording: under load the worker could still have A
    # pending and /queue said [0 running, 2 pending]
    wait_until(lambda: (recording_sim.engine.current() or (None,))[0] == a.json()["prompt_id"])
    second = json.loads(json.dumps(first))
    second["11"]["inputs"]["noise_seed"] = 100
    b = sim_client.post("/prompt", {"prompt": second, "client_id": "client-int"})
    queue = sim_client.get("/queue").json()
    deleted = sim_client.post("/queue", {"delete": [b.json()["prompt_id"]]})
    after = sim_client.get("/queue").json()
    wait_for_node(sim_client, "11")
    interrupted = sim_client.post("/interrupt", {"prompt_id": a.json()["prompt_id"]})
    msgs += sim_client.until_done(ws, a.json()["prompt_id"])
    ws.close()

    assert (a.status_code, b.status_code, deleted.status_code, interrupted.status_code) == (200, 200, 200, 200)
    assert (deleted.content, interrupted.content) == (b"", b"")
    assert [len(queue["queue_running"]), len(queue["queue_pending"])] == [1, 1]
    assert [len(after["queue_running"]), len(after["queue_pending"])] == [1, 0]
    expected = recorded(samples, "interrupt")
    assert without_status(msgs) == without_status(expected)
    assert statuses(msgs) == statuses(expected)
    entry = sim_client.get(f"/history/{a.json()['prompt_id']}").json()[a.json()["prompt_id"]]
    real_entry = next(iter(real["GET /history/03c21366-cdcb-40b0-ab74-06c5329a1103"].values()))
    assert (entry["status"]["status_str"], entry["outputs"], entry["meta"]) == ("error", {}, {})
    assert [shape({"type": t, "data": d}) for t, d in entry["status"]["messages"]] == \
        [shape({"type": t, "data": d}) for t, d in real_entry["status"]["messages"]]


def wait_for_node(sim_client, node):
    wait_until(lambda: (sim_client.handle.engine.current() or (None, None))[1] == node,
               message=lambda: f"node {node} never started")


def without_status(msgs):
    return [shape(m) for m in msgs if m["type"] != "status"]


def statuses(msgs):
    return [m["data"]["status"]["exec_info"]["queue_remaining"] for m in msgs if m["type"] == "status"]


def test_misc_endpoints_have_the_real_shapes(sim, sim_client, samples):
    real = load(samples, "misc_endpoints.json")
    # The recording server had the text-to-video experts only; the sim's default adds the I2V pair.
    sim.engine.set_models(dict(sim.engine.catalog.models, diffusion_models=real["GET /models/diffusion_models"]["body"]))

    assert sim_client.get("/queue").json() == real["GET /queue (idle)"]["body"]
    assert sim_client.get("/models").json() == real["GET /models"]["body"]
    assert sim_client.get("/models/diffusion_models").json() == real["GET /models/diffusion_models"]["body"]
    assert sim_client.get("/view", params={"filename": "nope.mp4"}).status_code == 404
    assert sim_client.get("/history/unknown").json() == {}
    assert sim_client.get("/embeddings").json() == []
    assert key_tree(sim_client.get("/features").json()) == key_tree(real["GET /features"]["body"])
    stats = load(samples, "system_stats.json")
    assert key_tree(sim_client.get("/system_stats").json())["system"].keys() == key_tree(stats)["system"].keys()


def test_object_info_is_the_recorded_schema_with_our_models(sim, sim_client, samples):
    real = load(samples, "object_info_all.json")
    info = sim_client.get("/object_info").json()

    for cls, mine in info.items():
        assert sorted(mine) == sorted(real[cls]), cls
        assert mine["input_order"] == real[cls]["input_order"], cls
    assert info["VAELoader"]["input"]["required"]["vae_name"][0] == ["wan_2.1_vae.safetensors", "pixel_space"]
    assert sim_client.get("/api/object_info/KSamplerAdvanced").json() == {"KSamplerAdvanced": info["KSamplerAdvanced"]}
    assert sim_client.get("/object_info/NoSuchNode").json() == {}
