"""A user's session against the simulator: renders, files, routing, queue, bad input, models."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import imageio_ffmpeg
import pytest
import requests

from wanclip.sim import serve_in_thread
from wanclip.sim.nodes import sampler_steps, step_scale


def probe(path) -> tuple[int, str]:
    """(frame count, the ffmpeg stream line) of a video file."""
    frames, _ = imageio_ffmpeg.count_frames_and_secs(str(path))
    err = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-i", str(path)], capture_output=True, text=True).stderr
    return frames, next(line for line in err.splitlines() if "Video:" in line)


def test_vhs_workflow_writes_a_playable_h264_clip_under_gifs(sim, sim_client, tiny_workflow):
    resp, msgs = sim_client.run(tiny_workflow(seed=7))

    entry = sim_client.get(f"/history/{resp.json()['prompt_id']}").json()[resp.json()["prompt_id"]]
    gif = entry["outputs"]["90"]["gifs"][0]
    assert sorted(gif) == ["filename", "format", "frame_rate", "fullpath", "subfolder", "type", "workflow"]
    assert (gif["filename"], gif["subfolder"], gif["workflow"], gif["frame_rate"]) == ("shot_00001.mp4", "wanclip", "shot_00001.png", 16.0)
    assert (sim.output_dir / "wanclip" / "shot_00001.png").is_file()
    frames, stream = probe(sim.output_dir / "wanclip" / "shot_00001.mp4")
    assert frames == 5
    assert "h264" in stream and "yuv420p" in stream and "64x64" in stream and "16 fps" in stream


def test_core_workflow_saves_under_images_with_a_trailing_underscore(sim, sim_client, tiny_workflow):
    resp, _ = sim_client.run(tiny_workflow(core=True))

    out = sim_client.get(f"/history/{resp.json()['prompt_id']}").json()[resp.json()["prompt_id"]]["outputs"]
    assert out == {"80": {"images": [{"filename": "shot_00001_.mp4", "subfolder": "wanclip", "type": "output"}], "animated": [True]}}
    assert probe(sim.output_dir / "wanclip" / "shot_00001_.mp4")[0] == 5


def test_full_size_clip_has_81_frames_at_832x480(sim, sim_client, tiny_workflow):
    graph = tiny_workflow(length=81)
    graph["74"]["inputs"].update(width=832, height=480)
    sim_client.run(graph)

    frames, stream = probe(sim.output_dir / "wanclip" / "shot_00001.mp4")
    assert frames == 81 and "832x480" in stream


def test_counter_increments_and_a_new_seed_changes_the_picture(sim, sim_client, tiny_workflow):
    sim_client.run(tiny_workflow(seed=1))
    sim_client.run(tiny_workflow(seed=2))

    names = sorted(p.name for p in (sim.output_dir / "wanclip").iterdir())
    assert names == ["shot_00001.mp4", "shot_00001.png", "shot_00002.mp4", "shot_00002.png"]
    first, second = ((sim.output_dir / "wanclip" / n).read_bytes() for n in ("shot_00001.png", "shot_00002.png"))
    assert first != second


def test_identical_resubmission_executes_nothing_and_points_at_the_old_file(sim, sim_client, tiny_workflow):
    sim_client.run(tiny_workflow())
    resp, msgs = sim_client.run(tiny_workflow())

    assert [m["type"] for m in msgs if m["type"] == "executing" and m["data"]["node"]] == []
    executed = next(m for m in msgs if m["type"] == "executed")
    assert executed["data"]["output"]["gifs"][0]["filename"] == "shot_00001.mp4"
    assert not (sim.output_dir / "wanclip" / "shot_00002.mp4").exists()


def test_history_is_empty_while_pending_and_written_before_the_final_executing(sim, sim_client, tiny_workflow):
    sim.faults.stall_prompt(1)
    ws = sim_client.connect("c1")
    ws.recv()
    pid = sim_client.post("/prompt", {"prompt": tiny_workflow(), "client_id": "c1"}).json()["prompt_id"]
    assert sim_client.get(f"/history/{pid}").json() == {}
    assert sim_client.get("/prompt").json() == {"exec_info": {"queue_remaining": 1}}
    sim_client.post("/interrupt", {})
    msgs = sim_client.until_done(ws, pid)
    # The moment `executing null` arrives, history must already hold the entry.
    assert sim_client.get(f"/history/{pid}").json()[pid]["status"]["status_str"] == "error"
    assert msgs[-3]["type"] == "execution_interrupted"
    ws.close()


def test_events_go_only_to_the_submitting_client(sim, sim_client, tiny_workflow):
    other = sim_client.connect("bystander")
    other.recv()
    sim_client.run(tiny_workflow(), client_id="owner")
    other.settimeout(0.3)
    seen = []
    try:
        while True:
            seen.append(json.loads(other.recv())["type"])
    except Exception:  # noqa: BLE001 - the read timeout ends the listen
        pass
    other.close()
    assert set(seen) == {"status"}


def test_without_client_id_only_progress_is_broadcast(sim, sim_client, tiny_workflow):
    ws = sim_client.connect("listener")
    ws.recv()
    pid = sim_client.post("/prompt", {"prompt": tiny_workflow()}).json()["prompt_id"]
    kinds = set()
    while not sim_client.get(f"/history/{pid}").json() or len(kinds) < 3:
        kinds.add(json.loads(ws.recv())["type"])
    ws.close()
    assert kinds == {"status", "progress", "progress_state"}


def test_front_jumps_ahead_and_pending_is_the_raw_heap(sim, sim_client, tiny_workflow):
    from helpers import wait_until

    sim.faults.stall_prompt(1)
    first = sim_client.post("/prompt", {"prompt": tiny_workflow(seed=1)}).json()
    # running (stalled) before the others come: under load the worker could still have it pending
    wait_until(lambda: (sim.engine.current() or (None,))[0] == first["prompt_id"])
    ids = [first] + [sim_client.post("/prompt", {"prompt": tiny_workflow(seed=s)}).json() for s in (2, 3)]
    urgent = sim_client.post("/prompt", {"prompt": tiny_workflow(seed=4), "front": True}).json()
    pending = sim_client.get("/api/queue").json()["queue_pending"]

    assert [i["number"] for i in ids] == [0, 1, 2] and urgent["number"] == -3
    assert sorted(p[0] for p in pending) == [-3, 1, 2]
    sim_client.post("/interrupt")
    wait_until(lambda: len(sim.log()) == 4 and sim.log()[-1]["finished_ms"])
    assert [e["number"] for e in sim.log()] == [0, -3, 1, 2]
    assert [e["status"] for e in sim.log()] == ["interrupted", "success", "success", "success"]


@pytest.mark.parametrize("body, kind", [
    (b"{not json", "invalid_json"),
    (b"{}", "no_prompt"),
    (b"[1, 2]", "no_prompt"),
    (b'{"prompt": [1, 2]}', "invalid_prompt"),
    (b'{"prompt": {"1": {"inputs": {}}}}', "invalid_prompt"),
    (b'{"prompt": {"1": {"class_type": "Nope", "inputs": {}}}}', "invalid_prompt"),
    (b'{"prompt": {"1": {"class_type": "VAELoader", "inputs": {"vae_name": "x"}}}}', "prompt_no_outputs"),
])
def test_bad_requests_get_the_error_shape_not_a_500(sim_client, body, kind):
    resp = sim_client.post("/prompt", data=body, headers={"Content-Type": "application/json"})

    assert resp.status_code == 400
    assert resp.json()["error"]["type"] == kind
    assert sorted(resp.json()["error"]) == ["details", "extra_info", "message", "type"]


def test_link_to_a_missing_node_is_an_exception_during_validation(sim_client, tiny_workflow):
    graph = tiny_workflow()
    graph["90"]["inputs"]["images"] = ["99", 0]
    resp = sim_client.post("/prompt", {"prompt": graph})

    assert resp.status_code == 400
    err = resp.json()["node_errors"]["90"]["errors"][0]
    assert (err["type"], err["details"], err["extra_info"]["exception_type"]) == ("exception_during_validation", "'99'", "KeyError")


def test_a_body_over_the_upload_limit_is_refused(tmp_path):
    handle = serve_in_thread(tmp_path / "out", max_upload_size=1024)
    try:
        resp = requests.post(handle.url + "/prompt", data=b"x" * 4096, timeout=10)
        assert resp.status_code == 413
    finally:
        handle.stop()


def test_view_serves_ranges_and_refuses_escapes(sim, sim_client, tiny_workflow):
    sim_client.run(tiny_workflow())
    params = {"filename": "shot_00001.mp4", "subfolder": "wanclip", "type": "output"}

    full = sim_client.get("/view", params=params)
    part = sim_client.get("/api/view", params=params, headers={"Range": "bytes=10-19"})
    assert full.status_code == 200 and full.headers["Content-Type"] == "video/mp4"
    assert part.status_code == 206 and part.content == full.content[10:20]
    assert sim_client.get("/view", params={**params, "filename": "../x.mp4"}).status_code == 400
    assert sim_client.get("/view", params={**params, "filename": "/etc/passwd"}).status_code == 400
    assert sim_client.get("/view", params={**params, "subfolder": "../.."}).status_code == 403
    assert sim_client.get("/view", params={**params, "filename": "missing.mp4"}).status_code == 404


def test_models_come_from_a_file_or_a_models_folder(sim, sim_client, tmp_path, tiny_workflow):
    (tmp_path / "models" / "vae").mkdir(parents=True)
    (tmp_path / "models" / "vae" / "only_this.safetensors").write_bytes(b"")
    sim.engine.set_models(tmp_path / "models")

    assert sim_client.get("/models/vae").json() == ["only_this.safetensors"]
    assert sim_client.get("/models/unet").status_code == 404
    err = sim_client.post("/prompt", {"prompt": tiny_workflow()}).json()["node_errors"]["73"]["errors"][0]
    assert err["details"] == "vae_name: 'wan_2.1_vae.safetensors' not in ['only_this.safetensors', 'pixel_space']"
    (tmp_path / "m.json").write_text(json.dumps({"vae": ["a.safetensors"]}))
    sim.engine.set_models(tmp_path / "m.json")
    assert sim_client.get("/models/vae").json() == ["a.safetensors"]


def test_non_loopback_bind_needs_an_explicit_host(tmp_path):
    with pytest.raises(ValueError, match="refusing to expose"):
        serve_in_thread(tmp_path, host="0.0.0.0")


def test_step_cost_grows_quadratically_with_latent_frames():
    assert step_scale(21) == 1.0
    assert round(step_scale(41), 2) == round((0.086 * 41 + 0.0036 * 41**2) / (0.086 * 21 + 0.0036 * 21**2), 2)
    assert round(step_scale(121), 1) == 18.6  # measured 64.7 s vs 3.4 s per step (gpu-timings.md)
    split = {"steps": 4, "start_at_step": 0, "end_at_step": 2}
    assert sampler_steps(split) == 2 and sampler_steps({**split, "start_at_step": 2, "end_at_step": 10000}) == 2


def test_system_stats_and_free(sim_client):
    stats = sim_client.get("/system_stats").json()
    assert stats["system"]["comfyui_version"] == "0.3.64"
    assert sim_client.post("/free", {"unload_models": True, "free_memory": True}).status_code == 200
    assert re.match(r"cuda:0 ", stats["devices"][0]["name"])


STOP_SCRIPT = """
import json, sys, tempfile, warnings
import requests, websocket
from wanclip.sim import serve_in_thread
warnings.simplefilter("error", ResourceWarning)
with open(sys.argv[1]) as f:
    graph = json.load(f)
graph["74"]["inputs"].update(width=64, height=64, length=5)
for version in ("0.3.64", "0.9", "0.38"):
    with tempfile.TemporaryDirectory() as tmp:
        h = serve_in_thread(tmp + "/output", load_seconds=0.01, step_seconds=0.5, comfy_version=version)
        ws = websocket.create_connection(h.ws_url + "?clientId=c1", timeout=10)  # left open on purpose
        ws.recv()
        requests.post(h.url + "/prompt", json={"prompt": graph, "client_id": "c1"}, timeout=10)
        h.stop()  # mid-prompt, a socket still open
        h.stop()  # and twice
        ws.shutdown()
print("stopped")
"""


def test_stop_is_clean_mid_prompt_with_a_socket_open(tmp_path):
    """No 'Task was destroyed but it is pending', no ResourceWarning, for every profile."""
    from conftest import ROOT

    result = subprocess.run([sys.executable, "-X", "dev", "-c", STOP_SCRIPT,
                             str(ROOT / "workflows" / "wan22_t2v_lightx2v_4step.json")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "stopped"
    assert "destroyed" not in result.stderr and "Warning" not in result.stderr, result.stderr
