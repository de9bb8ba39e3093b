"""The simulator's 0.38 profile: ComfyUI 0.38.1 as comfyui-drift.md read it in the code.

No recording of 0.38 exists, so these check the behaviour the notes describe, not a transcript.
"""

from __future__ import annotations

import json
import uuid

import pytest
import websocket

from helpers import wait_until

pytestmark = pytest.mark.parametrize("sim_profile", ["0.38"], indirect=True)


def test_a_known_prompt_id_gets_409_whether_finished_pending_or_running(sim_profile, profile_client, tiny_workflow):
    done = str(uuid.uuid4())
    profile_client.run(tiny_workflow(), prompt_id=done)
    again = profile_client.post("/prompt", {"prompt": tiny_workflow(), "prompt_id": done})
    assert (again.status_code, again.json()) == (409, {"error": "prompt_id already exists"})

    sim_profile.faults.stall_prompt(2)
    running, pending = str(uuid.uuid4()), str(uuid.uuid4())
    for pid in (running, pending):
        assert profile_client.post("/prompt", {"prompt": tiny_workflow(seed=9), "prompt_id": pid}).status_code == 200
    wait_until(lambda: (sim_profile.engine.current() or ("",))[0] == running)
    codes = [profile_client.post("/prompt", {"prompt": tiny_workflow(), "prompt_id": p}).status_code for p in (running, pending)]
    assert codes == [409, 409]
    assert len(profile_client.get("/queue").json()["queue_pending"]) == 1  # nothing was queued twice
    profile_client.post("/interrupt")


@pytest.mark.parametrize("bad", ["shot-03-readable", "B941EF80-F3A1-4E6B-A4CE-8B491CD90E62", 42])
def test_a_non_canonical_prompt_id_is_refused_with_invalid_prompt_id(profile_client, tiny_workflow, bad):
    resp = profile_client.post("/prompt", {"prompt": tiny_workflow(), "prompt_id": bad})

    assert resp.status_code == 400
    assert resp.json()["error"]["type"] == "invalid_prompt_id"
    assert resp.json()["error"]["message"] == "prompt_id must be a valid UUID"
    assert resp.json()["node_errors"] == {}


def test_a_null_prompt_id_gets_a_minted_one(profile_client, tiny_workflow):
    resp = profile_client.post("/prompt", {"prompt": tiny_workflow(), "prompt_id": None})
    assert resp.status_code == 200 and str(uuid.UUID(resp.json()["prompt_id"])) == resp.json()["prompt_id"]


def test_unknown_class_is_missing_node_type(profile_client):
    resp = profile_client.post("/prompt", {"prompt": {"1": {"class_type": "Nope", "inputs": {}}}})
    assert resp.status_code == 400
    assert resp.json()["error"]["type"] == "missing_node_type"
    assert resp.json()["error"]["extra_info"]["class_type"] == "Nope"


# ---- websocket credentials ------------------------------------------------------------------


def test_first_status_carries_a_credential_key(profile_client):
    ws = profile_client.connect("c1")
    first = json.loads(ws.recv())
    ws.close()
    assert first["type"] == "status" and first["data"]["sid"] == "c1"
    assert len(first["data"]["credential_key"]) >= 32


def test_a_second_socket_for_a_known_client_id_needs_the_key(profile_client):
    ws1 = profile_client.connect("c1")
    key = json.loads(ws1.recv())["data"]["credential_key"]

    thief = profile_client.connect("c1")
    thief.send(json.dumps({"type": "feature_flags", "data": {}}))  # not credential_auth first
    opcode, frame = thief.recv_data_frame(control_frame=True)
    assert (opcode, int.from_bytes(frame.data[:2], "big")) == (websocket.ABNF.OPCODE_CLOSE, 1008)
    thief.shutdown()

    ws2 = profile_client.connect("c1")
    ws2.send(json.dumps({"type": "credential_auth", "data": {"credential_key": key}}))
    status = json.loads(ws2.recv())
    assert status["type"] == "status" and status["data"]["credential_key"] == key
    ws2.close()
    ws1.close()


def test_a_wrong_key_is_closed_with_1008(profile_client):
    ws1 = profile_client.connect("c1")
    ws1.recv()
    ws2 = profile_client.connect("c1")
    ws2.send(json.dumps({"type": "credential_auth", "data": {"credential_key": "wrong"}}))
    opcode, frame = ws2.recv_data_frame(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE
    assert int.from_bytes(frame.data[:2], "big") == 1008
    assert frame.data[2:] == b"Invalid client credentials"
    ws2.shutdown()
    ws1.close()


def test_after_a_clean_close_a_reconnect_needs_no_key_but_a_stale_socket_does(sim_profile, profile_client):
    ws = profile_client.connect("c1")
    old = json.loads(ws.recv())["data"]["credential_key"]
    ws.close()
    wait_until(lambda: "c1" not in sim_profile._server.sockets)
    ws = profile_client.connect("c1")
    assert json.loads(ws.recv())["data"]["credential_key"] != old  # a fresh session, a fresh key

    sim_profile.faults.stale_ws(5)  # the server has not noticed this one die
    ws.close()
    late = profile_client.connect("c1")
    late.send(json.dumps({"type": "feature_flags", "data": {}}))
    opcode, frame = late.recv_data_frame(control_frame=True)
    late.shutdown()
    assert opcode == websocket.ABNF.OPCODE_CLOSE and int.from_bytes(frame.data[:2], "big") == 1008


# ---- cache, progress_state, subgraph ids ------------------------------------------------------


def test_ram_pressure_cache_replays_an_old_prompt_even_after_another_one(sim_profile, profile_client, tiny_workflow):
    profile_client.run(tiny_workflow(seed=1))
    profile_client.run(tiny_workflow(seed=2))
    resp, msgs = profile_client.run(tiny_workflow(seed=1))

    cached = next(m for m in msgs if m["type"] == "execution_cached")["data"]["nodes"]
    assert sorted(cached) == sorted(tiny_workflow())
    assert [m for m in msgs if m["type"] == "executing" and m["data"]["node"]] == []
    executed = next(m for m in msgs if m["type"] == "executed")["data"]["output"]
    assert executed["gifs"][0]["filename"] == "shot_00001.mp4"  # seed 1's file, not a new render


def test_progress_state_has_activity_while_running_and_seconds_when_done(profile_client, tiny_workflow):
    _, msgs = profile_client.run(tiny_workflow())
    states = [m["data"]["nodes"] for m in msgs if m["type"] == "progress_state"]

    activities = {(n, e["activity"]) for s in states for n, e in s.items() if "activity" in e}
    assert ("75", "loading") in activities and ("81", "sampling") in activities
    final = states[-1]
    assert all(e["state"] == "finished" for e in final.values())
    assert final["75"]["seconds"]["total"] >= final["75"]["seconds"]["loading"] > 0
    assert "activity" not in final["75"]


def test_subgraph_execution_ids_are_reported_with_their_display_and_real_ids(profile_client, tiny_workflow):
    graph = tiny_workflow()
    renamed = {("54:" + k if k == "81" else k): v for k, v in graph.items()}
    for node in renamed.values():
        for key, value in node["inputs"].items():
            if isinstance(value, list) and value[0] == "81":
                node["inputs"][key] = ["54:81", value[1]]
    _, msgs = profile_client.run(renamed)

    executing = next(m["data"] for m in msgs if m["type"] == "executing" and m["data"]["node"] == "54:81")
    assert executing["display_node"] == "54:81"
    state = next(m["data"]["nodes"]["54:81"] for m in msgs if m["type"] == "progress_state" and "54:81" in m["data"]["nodes"])
    assert (state["display_node_id"], state["real_node_id"]) == ("54:81", "54:81")


# ---- SaveVideo's DynamicCombo ---------------------------------------------------------------


def test_save_video_format_is_a_dynamic_combo_with_the_old_codec_hidden(profile_client):
    info = profile_client.get("/object_info/SaveVideo").json()["SaveVideo"]

    kind, spec = info["input"]["required"]["format"]
    assert kind == "COMFY_DYNAMICCOMBO_V3"
    assert [o["key"] for o in spec["options"]] == ["auto", "mp4", "mkv", "webm"]
    codec = spec["options"][1]["inputs"]["required"]["codec"]
    assert [o["key"] for o in codec[1]["options"]] == ["auto", "h264", "av1"]
    assert info["input"]["optional"]["codec"][1]["hidden"] is True
    assert (info["output"], info["category"]) == (["VIDEO"], "video")


def test_old_and_new_save_video_graphs_both_render(sim_profile, profile_client, tiny_workflow):
    old = tiny_workflow(core=True)
    resp, _ = profile_client.run(old)
    assert resp.status_code == 200
    new = tiny_workflow(core=True, seed=5)
    new["80"]["inputs"] = {k: v for k, v in new["80"]["inputs"].items() if k != "codec"}
    new["80"]["inputs"].update({"format": "mp4", "format.codec": "h264", "format.codec.encoding": "auto"})
    resp, msgs = profile_client.run(new)
    assert resp.status_code == 200
    assert next(m for m in msgs if m["type"] == "executed")["data"]["output"]["images"][0]["filename"] == "shot_00002_.mp4"

    bad = tiny_workflow(core=True, seed=6)
    bad["80"]["inputs"].update({"format": "mp4", "format.codec": "vp9"})
    err = profile_client.post("/prompt", {"prompt": bad}).json()["node_errors"]["80"]["errors"][0]
    assert (err["type"], err["details"]) == ("value_not_in_list", "format.codec: 'vp9' not in ['auto', 'h264', 'av1']")


def test_long_model_lists_are_not_echoed_back(sim_profile, profile_client, tiny_workflow):
    sim_profile.engine.set_models({"loras": [f"lora_{i:02}.safetensors" for i in range(30)]})
    errors = profile_client.post("/prompt", {"prompt": tiny_workflow()}).json()["node_errors"]["83"]["errors"]
    lora = next(e for e in errors if e["extra_info"].get("input_name") == "lora_name")
    assert lora["details"].endswith("not in (list of length 30)")
    assert lora["extra_info"]["input_config"] is None


# ---- jobs API with cancel -------------------------------------------------------------------


def test_jobs_cancel_interrupts_running_and_dequeues_pending(sim_profile, profile_client, tiny_workflow):
    sim_profile.faults.stall_prompt(1)
    running = profile_client.post("/prompt", {"prompt": tiny_workflow(seed=1)}).json()["prompt_id"]
    pending = profile_client.post("/prompt", {"prompt": tiny_workflow(seed=2)}).json()["prompt_id"]
    wait_until(lambda: (sim_profile.engine.current() or ("",))[0] == running)
    assert profile_client.get(f"/api/jobs/{pending}").json()["status"] == "pending"
    assert profile_client.get(f"/api/jobs/{running}").json()["previewable_outputs_count"] == 0

    assert profile_client.post(f"/api/jobs/{pending}/cancel").json() == {"cancelled": True}
    assert profile_client.get(f"/api/jobs/{pending}").status_code == 404
    assert profile_client.post(f"/api/jobs/{running}/cancel").json() == {"cancelled": True}
    wait_until(lambda: profile_client.get(f"/api/jobs/{running}").json()["status"] == "cancelled")
    job = profile_client.get(f"/api/jobs/{running}").json()
    assert (job["completion_status"], job["has_errors"], job["execution_error_count"], job["execution_errors"]) == \
        ("cancelled", False, 0, [])
    assert profile_client.post(f"/api/jobs/{running}/cancel").json() == {"cancelled": False}  # idempotent
    assert profile_client.post(f"/api/jobs/{uuid.uuid4()}/cancel").json() == {"cancelled": False}


def test_batch_cancel_and_its_malformed_ids(sim_profile, profile_client, tiny_workflow):
    sim_profile.faults.stall_prompt(1)
    ids = [profile_client.post("/prompt", {"prompt": tiny_workflow(seed=s)}).json()["prompt_id"] for s in (1, 2, 3)]
    wait_until(lambda: (sim_profile.engine.current() or ("",))[0] == ids[0])

    bad = profile_client.post("/api/jobs/cancel", {"job_ids": ["not-a-uuid"]})
    assert bad.status_code == 400 and "error" in bad.json()
    resp = profile_client.post("/api/jobs/cancel", {"job_ids": ids + [str(uuid.uuid4())]})
    assert resp.json() == {"cancelled": ids}
    wait_until(lambda: profile_client.get("/queue").json() == {"queue_running": [], "queue_pending": []})
    listed = profile_client.get("/api/jobs", params={"ids": ",".join(ids)}).json()
    assert listed["jobs"] and {j["status"] for j in listed["jobs"]} == {"cancelled"}  # nothing rendered
    assert ids[0] in [j["id"] for j in listed["jobs"]]


def test_a_failed_job_counts_its_errors(sim_profile, profile_client, tiny_workflow):
    sim_profile.faults.fail_prompt(1, "VAEDecode")
    resp, _ = profile_client.run(tiny_workflow())
    job = profile_client.get(f"/api/jobs/{resp.json()['prompt_id']}").json()
    assert (job["status"], job["completion_status"], job["has_errors"], job["execution_error_count"]) == \
        ("failed", "error", True, 1)
    assert job["execution_errors"][0]["node_type"] == "VAEDecode"


# ---- other routes ---------------------------------------------------------------------------


def test_node_replacements_are_listed_and_applied_before_validation(sim_profile, profile_client, tiny_workflow):
    assert profile_client.get("/node_replacements").json() == {}
    sim_profile.engine.register_node_replacement("WanVAEDecodeOld", "VAEDecode", {"latent": "samples"})
    graph = tiny_workflow()
    graph["87"]["class_type"] = "WanVAEDecodeOld"
    graph["87"]["inputs"]["latent"] = graph["87"]["inputs"].pop("samples")

    assert "WanVAEDecodeOld" in profile_client.get("/api/node_replacements").json()
    resp, _ = profile_client.run(graph)
    assert resp.status_code == 200


def test_features_system_stats_and_api_prefix(profile_client):
    features = profile_client.get("/api/features").json()
    assert features["comfy_api_credentials"]["websocket_auth_message"] == "credential_auth"
    assert {"supports_model_type_tags", "node_replacements", "assets", "max_upload_size"} <= set(features)
    system = profile_client.get("/api/system_stats").json()["system"]
    assert system["comfyui_version"] == "0.38.1"
    assert {"comfy_package_versions", "deploy_environment", "installed_templates_version"} <= set(system)
    assert profile_client.get("/api/queue").json() == {"queue_running": [], "queue_pending": []}
    assert profile_client.post("/api/nope").status_code == 405
