"""The simulator's 0.33 profile against recordings of a real ComfyUI 0.33.0 (tests/data copies).

Like test_sim_conformance_092.py for 0.9: the recorded sessions are replayed in the recorded order
(so the cache holds what it held then: a re-posted id three times, a cancel, an identical graph
under a new id), and the websocket transcripts, POST answers, history entries and
/api/jobs answers are compared message by message: types, keys, nodes, states and progress counts;
not ids, timestamps or file names. Statuses (queue_remaining) are compared apart: when a second
POST lands among a running prompt's messages is a matter of timing.
"""

from __future__ import annotations

import json
import uuid

import pytest

from conftest import SimClient
from helpers import wait_until
from test_sim_conformance import key_tree, shape, statuses, without_status
from test_sim_conformance_092 import job_shape

pytestmark = pytest.mark.parametrize("sim_profile", ["0.33"], indirect=True)


def lines(samples, name: str) -> list[dict]:
    return [json.loads(line) for line in (samples / name).read_text(encoding="utf-8").splitlines() if line.strip()]


def received(samples, name: str) -> list[dict]:
    """A transcript's frames from the server, less the feature_flags reply (compared on its own)."""
    return [e["data"] for e in lines(samples, name) if e["kind"] == "recv" and e["data"]["type"] != "feature_flags"]


def http(samples) -> list[dict]:
    return lines(samples, "http.jsonl")


def answer(samples, method: str, path: str, sent=None) -> dict:
    return next(e for e in http(samples) if (e["method"], e["path"], e["sent"]) == (method, path, sent))


def graph_of(samples, prompt_id: str) -> dict:
    """The graph the recorder posted (http.jsonl keeps "<graph>"; its history entry has it)."""
    body = answer(samples, "GET", f"/history/{prompt_id}")["body"]
    return body[prompt_id]["prompt"][2]


def ids(samples) -> dict[str, str]:
    """The recorder's prompt ids, in the order it posted them."""
    posted = [e["sent"]["prompt_id"] for e in http(samples) if e["method"] == "POST" and e["path"] == "/prompt"
              and e["status"] == 200]
    dup, cancel_a, cancel_b, cache_1, cache_2 = list(dict.fromkeys(posted))
    return {"dup": dup, "cancel_a": cancel_a, "cancel_b": cancel_b, "cache_1": cache_1, "cache_2": cache_2}


@pytest.fixture
def rec(sim_profile, samples_033):
    """The recording server's model files (its UNETLoader list; the graphs' other loaders)."""
    unet = json.loads((samples_033 / "object_info_UNETLoader.json").read_text(encoding="utf-8"))
    graph = graph_of(samples_033, ids(samples_033)["dup"])
    files = {"text_encoders": set(), "vae": set(), "loras": set()}
    for node in graph.values():
        for key, folder in (("clip_name", "text_encoders"), ("vae_name", "vae"), ("lora_name", "loras")):
            if key in node["inputs"]:
                files[folder].add(node["inputs"][key])
    sim_profile.engine.set_models({"diffusion_models": unet["UNETLoader"]["input"]["required"]["unet_name"][0],
                                   **{k: sorted(v) for k, v in files.items()}})
    return sim_profile


@pytest.fixture
def client(rec) -> SimClient:
    return SimClient(rec)


def connect(client, client_id: str):
    """As the recorder did: connect, say feature_flags {}, read the first status and the reply."""
    ws = client.connect(client_id)
    ws.send(json.dumps({"type": "feature_flags", "data": {}}))
    first, reply = json.loads(ws.recv()), json.loads(ws.recv())
    return ws, first, reply


def slow(rec, step_seconds: float = 2.0):
    """Sampling slow enough (about 0.1 s a step of these tiny clips) for a second POST to land while
    the first prompt runs, as it did on the real CPU server."""
    class Slow:
        def __enter__(self):
            rec.engine.config.step_seconds = step_seconds

        def __exit__(self, *exc):
            rec.engine.config.step_seconds = 0.005

    return Slow()


def dup_session(rec, client, samples) -> dict:
    """A prompt id posted, posted again while it runs, and a third time after both runs."""
    graph = graph_of(samples, ids(samples)["dup"])
    pid = str(uuid.uuid4())
    ws, first, reply = connect(client, "probe-dup")
    body = {"client_id": "probe-dup", "prompt_id": pid, "extra_data": {"preview_method": "none"}, "prompt": graph}
    with slow(rec):
        posts = [client.post("/prompt", body)]
        wait_until(lambda: (rec.engine.current() or (None,))[0] == pid)
        posts.append(client.post("/prompt", body))
        queue = client.get("/queue").json()
        msgs = [first] + client.until_done(ws, pid)
    msgs += client.until_done(ws, pid)
    posts.append(client.post("/prompt", body))
    msgs += client.until_done(ws, pid)
    ws.close()
    return {"pid": pid, "msgs": msgs, "reply": reply, "posts": posts, "queue": queue,
            "job": client.get(f"/api/jobs/{pid}").json(), "history": client.get(f"/history/{pid}").json()[pid]}


def test_a_reposted_id_runs_again_each_time_as_recorded(rec, client, samples_033):
    """No 409: a re-post while it runs is queued behind it, a re-post after it finished runs again
    (fully cached); three executions of one id, each sending what the real one sent."""
    got = dup_session(rec, client, samples_033)
    real = received(samples_033, "ws-dup.jsonl")
    assert without_status(got["msgs"]) == without_status(real)
    assert statuses(got["msgs"])[0] == statuses(real)[0] == 0  # the first frame
    assert sorted(set(statuses(got["msgs"]))) == sorted(set(statuses(real)))
    assert [p.status_code for p in got["posts"]] == [200, 200, 200]
    assert [p.json()["prompt_id"] for p in got["posts"]] == [got["pid"]] * 3
    numbers = [p.json()["number"] for p in got["posts"]]
    assert numbers == sorted(numbers) and len(set(numbers)) == 3
    real_queue = [e for e in http(samples_033) if e["path"] == "/queue"][-1]["body"]  # after the re-post
    assert [len(got["queue"][k]) for k in ("queue_running", "queue_pending")] == \
        [len(real_queue[k]) for k in ("queue_running", "queue_pending")] == [1, 1]
    assert [e["prompt_id"] for e in rec.log()] == [got["pid"]] * 3
    real_job = answer(samples_033, "GET", f"/api/jobs/{ids(samples_033)['dup']}")["body"]
    assert job_shape(got["job"]) | {"priority": 0} == job_shape(real_job) | {"priority": 0}
    assert got["job"]["priority"] == numbers[-1] and real_job["priority"] == 4  # the history entry, replaced by the last run
    real_history = answer(samples_033, "GET", f"/history/{ids(samples_033)['dup']}")["body"][ids(samples_033)["dup"]]
    assert sorted(got["history"]) == sorted(real_history)
    assert got["history"]["prompt"][2] == real_history["prompt"][2]
    assert key_tree(got["history"]["outputs"]) == key_tree(real_history["outputs"])
    assert [shape({"type": t, "data": d}) for t, d in got["history"]["status"]["messages"]] == \
        [shape({"type": t, "data": d}) for t, d in real_history["status"]["messages"]]


def test_the_first_frames_and_the_feature_flags_reply(rec, client, samples_033):
    got = dup_session(rec, client, samples_033)
    [real_reply] = [e["data"] for e in lines(samples_033, "ws-dup.jsonl")
                    if e["kind"] == "recv" and e["data"]["type"] == "feature_flags"]
    assert got["reply"] == real_reply
    first = got["msgs"][0]
    assert key_tree(first) == key_tree(received(samples_033, "ws-dup.jsonl")[0])
    assert "credential_key" not in first["data"]  # no credential handshake
    for name in ("ws-reconnect.jsonl", "ws-dual-a.jsonl", "ws-dual-b.jsonl"):
        real = received(samples_033, name)
        ws = client.connect(f"probe-{name}")
        mine = json.loads(ws.recv())
        ws.close()
        assert shape(mine) == shape(real[0]) and key_tree(mine) == key_tree(real[0]), name


def cancel_session(rec, client, samples) -> dict:
    """A runs, B waits; B is cancelled (twice), then A while it decodes (where the real one landed)."""
    real_a = ids(samples)["cancel_a"]
    graph = answer(samples, "GET", f"/api/jobs/{real_a}")["body"]["workflow"]["prompt"]
    other = json.loads(json.dumps(graph))
    other["81"]["inputs"]["noise_seed"] += 1  # B never runs: its graph was not recorded
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    ws, first, _ = connect(client, "probe-cancel")
    rec.faults.stall_prompt(len(rec.log()) + 1, "87")
    posts = [client.post("/prompt", {"client_id": "probe-cancel", "prompt_id": pid, "prompt": g})
             for pid, g in ((a, graph), (b, other))]
    cancels = [client.post(f"/api/jobs/{b}/cancel"), client.post(f"/api/jobs/{b}/cancel")]
    wait_until(lambda: rec.engine.current() == (a, "87"))
    cancels.append(client.post(f"/api/jobs/{a}/cancel"))
    msgs = [first] + client.until_done(ws, a)
    ws.close()
    return {"msgs": msgs, "posts": posts, "cancels": cancels, "a": client.get(f"/api/jobs/{a}").json(),
            "b": client.get(f"/api/jobs/{b}")}


def cache_session(rec, client, samples) -> dict:
    """A graph new in two nodes, then the same graph under a new id: fully cached, the old file replayed."""
    ws, first, _ = connect(client, "probe-cache")
    msgs, pids = [first], []
    for name in ("cache_1", "cache_2"):
        pid = str(uuid.uuid4())
        resp = client.post("/prompt", {"client_id": "probe-cache", "prompt_id": pid,
                                       "prompt": graph_of(samples, ids(samples)[name])})
        assert resp.status_code == 200
        msgs += client.until_done(ws, pid)
        pids.append(pid)
    ws.close()
    return {"msgs": msgs, "history": [client.get(f"/history/{p}").json()[p] for p in pids]}


def test_the_jobs_cancel_routes_as_recorded(rec, client, samples_033):
    dup_session(rec, client, samples_033)
    got = cancel_session(rec, client, samples_033)
    summary = json.loads((samples_033 / "summary-cancel.json").read_text(encoding="utf-8"))
    assert [(c.status_code, c.json()) for c in got["cancels"]] == [
        tuple(summary[k]) for k in ("cancel pending", "cancel pending again", "cancel running")]
    real_a = answer(samples_033, "GET", f"/api/jobs/{ids(samples_033)['cancel_a']}")["body"]
    assert job_shape(got["a"]) | {"priority": 0} == job_shape(real_a) | {"priority": 0}
    real_b = answer(samples_033, "GET", f"/api/jobs/{ids(samples_033)['cancel_b']}")
    assert (got["b"].status_code, got["b"].json()) == (real_b["status"], real_b["body"]) == (404, {"error": "Job not found"})
    real = received(samples_033, "ws-cancel.jsonl")
    assert without_status(got["msgs"]) == without_status(real)
    # the jobs list: each status's items carry the keys the real list's do
    real_list = json.loads((samples_033 / "api_jobs_final.json").read_text(encoding="utf-8"))
    mine = client.get("/api/jobs").json()
    assert sorted(mine) == sorted(real_list) and sorted(mine["pagination"]) == sorted(real_list["pagination"])
    keys = {(j["status"], tuple(sorted(j))) for j in mine["jobs"]}
    assert keys == {(j["status"], tuple(sorted(j))) for j in real_list["jobs"]}


def test_an_identical_graph_under_a_new_id_replays_the_old_file(rec, client, samples_033):
    """The cache is the classic one, whatever DIFF.md concluded: the first graph finds cached only the
    nine nodes the prompt just before it (the cancelled one) shared, not its latent node, which the
    same graph ran two prompts earlier (a RAM-pressure cache would have kept it); the second,
    identical graph finds all fifteen, and its output names the first one's file."""
    dup_session(rec, client, samples_033)
    cancel_session(rec, client, samples_033)
    got = cache_session(rec, client, samples_033)
    real = received(samples_033, "ws-cache.jsonl")
    assert without_status(got["msgs"]) == without_status(real)
    assert statuses(got["msgs"]) == statuses(real)
    first, second = got["history"]
    assert second["outputs"] == first["outputs"]
    summary = json.loads((samples_033 / "summary-cache.json").read_text(encoding="utf-8"))["cache replay"]
    assert summary["first_outputs"] == summary["second_outputs"]
    assert key_tree(first["outputs"]) == key_tree(summary["first_outputs"])
    for pid, mine in zip((ids(samples_033)["cache_1"], ids(samples_033)["cache_2"]), got["history"], strict=True):
        real_entry = answer(samples_033, "GET", f"/history/{pid}")["body"][pid]
        assert sorted(mine) == sorted(real_entry) and mine["prompt"][2] == real_entry["prompt"][2]
        assert [shape({"type": t, "data": d}) for t, d in mine["status"]["messages"]] == \
            [shape({"type": t, "data": d}) for t, d in real_entry["status"]["messages"]]


def test_the_routes_answer_as_recorded(rec, client, samples_033):
    """Every probe of http.jsonl that needs no prompt, and misc.jsonl's error answers."""
    for path in ("/features", "/api/features", "/api/jobs?limit=3", "/queue", "/history?max_items=2"):
        real = answer(samples_033, "GET", path)
        resp = client.get(path)
        assert (resp.status_code, resp.json()) == (real["status"], real["body"]), path
    unknown = next(e for e in http(samples_033) if e["method"] == "GET" and e["status"] == 404)
    resp = client.get(f"/api/jobs/{uuid.uuid4()}")
    assert (resp.status_code, resp.json()) == (unknown["status"], unknown["body"])
    for sent in ({}, {"job_ids": ["not-a-uuid"]}):
        real = answer(samples_033, "POST", "/api/jobs/cancel", sent)
        resp = client.post("/api/jobs/cancel", sent)
        assert (resp.status_code, resp.json()) == (real["status"], real["body"]), sent
    real = next(e for e in http(samples_033) if e["method"] == "POST" and e["path"].endswith("/cancel")
                and e["path"] != "/api/jobs/cancel")
    resp = client.post(f"/api/jobs/{uuid.uuid4()}/cancel")
    assert (resp.status_code, resp.json()) == (real["status"], real["body"]) == (200, {"cancelled": False})
    # a readable id: 400 invalid_prompt_id (and nothing queued)
    real = next(e for e in http(samples_033) if e["path"] == "/prompt" and e["status"] == 400)
    graph = graph_of(samples_033, ids(samples_033)["dup"])
    resp = client.post("/prompt", {"prompt_id": real["sent"]["prompt_id"], "prompt": graph})
    assert (resp.status_code, resp.json()) == (real["status"], real["body"])
    # node replacements: the same shape (the real server's built-in rules; the sim registers none)
    real = answer(samples_033, "GET", "/node_replacements")["body"]
    rule = next(iter(real.values()))[0]
    rec.engine.register_node_replacement("WanVAEDecodeOld", "VAEDecode", {"latent": "samples"})
    mine = client.get("/node_replacements").json()["WanVAEDecodeOld"][0]
    assert sorted(mine) == sorted(rule) or set(mine) <= set(rule)

    misc = {e["tag"]: e for e in lines(samples_033, "misc.jsonl")}
    for tag in ("GET /no-such-route", "POST /no-such-route", "DELETE /no-such-route"):
        method, path = tag.split(" ")
        resp = client.get(path) if method == "GET" else __import__("requests").request(method, client.url + path)
        assert (resp.status_code, resp.text) == (misc[tag]["status"], misc[tag]["body"]), tag
    resp = client.post("/prompt", data=b"{not json")
    assert (resp.status_code, resp.text) == (misc["POST /prompt bad json"]["status"], misc["POST /prompt bad json"]["body"])
    resp = client.post("/prompt", {})
    assert (resp.status_code, resp.json()) == (misc["POST /prompt no prompt key"]["status"],
                                               misc["POST /prompt no prompt key"]["body"])
    assert rec.log() == []


def test_system_stats_and_the_recorded_node_schemas(rec, client, samples_033):
    real = answer(samples_033, "GET", "/api/system_stats")["body"]
    mine = client.get("/api/system_stats").json()
    assert sorted(mine["system"]) == sorted(real["system"])
    assert sorted(mine["devices"][0]) == sorted(real["devices"][0])
    assert (mine["system"]["comfyui_version"], mine["system"]["deploy_environment"]) == ("0.33.0", "local-git")
    assert key_tree(mine["system"]["comfy_package_versions"]) == key_tree(real["system"]["comfy_package_versions"])
    for cls in ("SaveVideo", "CreateVideo", "UNETLoader"):
        recorded = json.loads((samples_033 / f"object_info_{cls}.json").read_text(encoding="utf-8"))
        assert client.get(f"/api/object_info/{cls}").json() == recorded, cls
    misc = {e["tag"]: e for e in lines(samples_033, "misc.jsonl")}
    assert client.get("/object_info/VHS_VideoCombine").json() == misc["GET /object_info/VHS_VideoCombine"]["body"]
