"""What each ComfyUI speaks (comfy.capabilities), what it was seen doing (comfy.observed), the jobs
API helpers (comfy.jobs), the 400 table with trimmed lists, and node replacements in preflight: on
every simulator profile, and on the real 0.33.0, 0.9.2 (and 0.3.64) answers where a recording has them."""

from __future__ import annotations

import json
import re
import uuid

import pytest
import requests

from helpers import FEATURES, ROOT, load, run_cli, wait_until, write_shots
from wanclip.checks.graph import explain_rejection
from wanclip.checks.preflight import preflight
from wanclip.comfy import jobs
from wanclip.comfy.capabilities import Capabilities, detect, object_info, prefix, rejection_server, route
from wanclip.comfy.client import ComfyClient
from wanclip.comfy.observed import Observed, handshake
from wanclip.errors import PreflightError, PromptRejected

PROFILES = ["0.3.64", "0.9", "0.33", "0.38"]


# -- detect, per simulator profile ----------------------------------------------------------------
@pytest.mark.parametrize("sim_profile", PROFILES, indirect=True)
def test_detected_capabilities_match_what_the_profile_speaks(sim_profile):
    with ComfyClient(sim_profile.url) as client:
        caps = detect(client)
    p = sim_profile.engine.profile
    assert caps.describe() == FEATURES[p.key]
    assert (caps.jobs_get, caps.jobs_list, caps.jobs_cancel) == (p.jobs_api, p.jobs_api, p.jobs_cancel)
    # no probe shows these: not known yet, whatever the version and the other routes say
    assert (caps.refuses_known_ids, caps.credential_handshake, caps.progress_state, caps.progress_activity) == \
        (None, None, None, None)
    assert (caps.node_replacements is not None) == p.node_replacements
    assert caps.version == p.version and caps.system_stats["system"]["comfyui_version"] == p.version


@pytest.mark.parametrize("sim_profile", PROFILES, indirect=True)
def test_detection_queues_cancels_and_deletes_nothing(sim_profile, profile_client, tiny_workflow):
    """The probes run while a prompt of someone else's is running and one is pending: both live on."""
    sim_profile.faults.stall_prompt(1)  # the first prompt of this test runs until interrupted
    running, pending = str(uuid.uuid4()), str(uuid.uuid4())
    for pid in (running, pending):
        assert profile_client.post("/prompt", {"prompt": tiny_workflow(seed=3), "prompt_id": pid}).status_code == 200
    wait_until(lambda: (sim_profile.engine.current() or ("",))[0] == running)
    with ComfyClient(sim_profile.url) as client:
        detect(client)
    queue = profile_client.get("/queue").json()
    assert [i[1] for i in queue["queue_running"]] == [running]
    assert [i[1] for i in queue["queue_pending"]] == [pending]
    profile_client.post("/queue", {"delete": [pending]})
    profile_client.post("/interrupt")


def test_the_prefix_helper():
    with_api, without = Capabilities("http://h", api_prefix=True), Capabilities("http://h", api_prefix=False)
    assert (prefix(with_api), prefix(without)) == ("/api", "")
    assert route(with_api, "/prompt") == "/api/prompt" and route(without, "/prompt") == "/prompt"
    assert route(with_api, "/api/jobs/x") == "/api/jobs/x" == route(without, "/api/jobs/x")


def test_a_server_without_the_api_prefix_is_detected_and_routed_without_it(sim_profile, monkeypatch):
    """A proxy that forwards only the old paths: detection falls back, and says so."""
    with ComfyClient(sim_profile.url) as client:
        real = client._request

        def no_api(method, path, **kwargs):
            return real(method, "/nowhere" + path if path.startswith("/api/") else path, **kwargs)

        monkeypatch.setattr(client, "_request", no_api)
        caps = detect(client)
    assert caps.api_prefix is False and caps.version == "0.3.64" and caps.jobs_api == "no"
    assert caps.features.get("supports_preview_metadata") is True and route(caps, "/queue") == "/queue"


# -- detect, against the real answers ----------------------------------------------------------------
class Replay:
    """A ``requests.Session`` stand-in answering from a recording of a real server's routes."""

    def __init__(self, answers):
        self.answers, self.headers, self.auth, self.asked = answers, {}, None, []

    def request(self, method, url, **kwargs):
        path = url.split("//", 1)[1].split("/", 1)[1]
        self.asked.append(f"{method} /{path}")
        status, body = self.answers(method, "/" + path, kwargs)
        response = requests.Response()
        response.status_code = status
        response._content = json.dumps(body).encode() if body is not None else b"404: Not Found"
        return response

    def close(self):
        pass


def recorded_092(samples_092):
    misc = json.loads((samples_092 / "misc_endpoints.json").read_text())
    stats = json.loads((samples_092 / "system_stats.json").read_text())
    stats = stats.get("body", stats)

    def answer(method, path, kwargs):
        plain = path[4:] if path.startswith("/api/") and not path.startswith("/api/jobs") else path
        if plain == "/system_stats":
            return 200, stats  # /api aliases: confirmed in 0.9.2 (DIFF.md, drift §1.4)
        if path.startswith("/api/jobs/") and path.endswith("/cancel") or path == "/api/jobs/cancel":
            key = "POST /api/jobs/cancel" if path == "/api/jobs/cancel" else "POST /api/jobs/<unknown id>/cancel"
        elif path.startswith("/api/jobs/"):
            key = "GET /api/jobs/f4ad2bc5-835a-44e8-818e-1c0f1936292f"  # an unknown id
        elif path == "/api/jobs":
            key = "GET /api/jobs?limit=5"
        else:
            key = f"{method} {plain}"
        entry = misc.get(key) or misc.get(f"GET {path}") or {"http_status": 404, "body": {"_raw": ""}}
        body = entry["body"]
        return entry["http_status"], None if isinstance(body, dict) and "_raw" in body else body

    return answer


def test_detect_on_the_recorded_comfyui_092(samples_092):
    replay = Replay(recorded_092(samples_092))
    with ComfyClient("http://127.0.0.1:8192", session=replay) as client:
        caps = detect(client)
    assert caps.describe() == FEATURES["0.9"]
    assert caps.features == {"supports_preview_metadata": True, "max_upload_size": 104857600,
                             "extension": {"manager": {"supports_v4": True}}}
    assert "POST /api/jobs/cancel" in replay.asked  # answered 405 in 0.9.2: no route, not "refused"
    assert not any(a.startswith("POST /prompt") or a.startswith("POST /queue") or a.startswith("POST /interrupt")
                   for a in replay.asked)


def recorded_033(samples_033):
    """The answers of the real 0.33.0 to the probes, from its http.jsonl (an unknown job id, the
    cancel route's 400 for a body without job_ids)."""
    answers = {}
    for line in (samples_033 / "http.jsonl").read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        path = entry["path"].split("?")[0]
        if entry["method"] == "GET" and path.startswith("/api/jobs/") and entry["status"] == 404:
            path = "/api/jobs/<unknown>"
        answers.setdefault((entry["method"], path, json.dumps(entry["sent"])), (entry["status"], entry["body"]))

    def answer(method, path, kwargs):
        path = "/api/jobs/<unknown>" if method == "GET" and path.startswith("/api/jobs/") else path.split("?")[0]
        return answers.get((method, path, json.dumps(kwargs.get("json"))), (404, None))

    return answer


def test_detect_on_the_recorded_comfyui_033_claims_nothing_it_did_not_see(samples_033):
    """A real 0.33.0 has the cancel routes and node_replacements, yet re-runs a re-posted id and sends
    no activity/seconds: neither is claimed from the routes or the flags."""
    replay = Replay(recorded_033(samples_033))
    with ComfyClient("http://127.0.0.1:18633", session=replay) as client:
        caps = detect(client)
    text = caps.describe()
    assert text == FEATURES["0.33"].replace("node replacements yes (0)", "node replacements yes (8)")
    assert "409 for a re-posted id not known yet" in text and "its activity/seconds not known yet" in text
    assert "refused" not in text and "activity, seconds" not in text
    assert (caps.jobs_api, caps.api_prefix, caps.replacement_for("ResizeImagesByLongerEdge")) == \
        ("yes", True, "ImageScaleToMaxDimension")
    assert caps.to_dict()["refuses_known_ids"] is None and caps.to_dict()["progress_activity"] is None


def transcript(samples_033, name: str) -> list[dict]:
    lines = (samples_033 / name).read_text(encoding="utf-8").splitlines()
    return [e["data"] for e in map(json.loads, lines) if e["kind"] == "recv"]


def test_what_the_recorded_033_sent_is_seen_as_it_was(samples_033):
    """Its messages, fed as they came: no credential_key in the first status, progress_state without
    activity/seconds through a whole prompt; a re-post answered 200."""
    observed = Observed()
    for message in transcript(samples_033, "ws-dup.jsonl"):
        observed.message(json.dumps(message))
    observed.reposted(200)
    assert observed.seen() == {"refuses_known_ids": False, "credential_handshake": False,
                               "progress_state": True, "progress_activity": False}
    caps = Capabilities("http://h", version="0.33.0").learned(observed)
    assert "409 for a re-posted id no (seen), credential handshake no (seen), progress_state yes (seen), " \
           "its activity/seconds no (seen)" in caps.describe()


def test_nothing_is_seen_before_the_messages_that_show_it(samples_033):
    observed = Observed()
    first = transcript(samples_033, "ws-dup.jsonl")
    for message in first[:3]:  # status, feature_flags, status: no prompt has run yet
        observed.message(json.dumps(message))
    assert observed.seen() == {"refuses_known_ids": None, "credential_handshake": False,
                               "progress_state": None, "progress_activity": None}
    observed.reposted(409)
    assert observed.refuses_known_ids is True


@pytest.mark.parametrize("sim_profile", ["0.9", "0.33", "0.38"], indirect=True)
def test_a_prompt_run_shows_each_profile_s_progress_state(sim_profile, profile_client, tiny_workflow):
    resp, msgs = profile_client.run(tiny_workflow())
    assert resp.status_code == 200
    observed = Observed()
    for message in msgs:
        observed.message(json.dumps(message))
    assert observed.progress_state is True
    assert observed.progress_activity is sim_profile.engine.profile.node_activity


@pytest.mark.parametrize("sim_profile", ["0.3.64", "0.33", "0.38"], indirect=True)
def test_the_handshake_is_seen_on_one_socket(sim_profile, profile_client):
    with ComfyClient(sim_profile.url) as client:
        assert handshake(client) is sim_profile.engine.profile.credentials
    assert profile_client.get("/queue").json() == {"queue_running": [], "queue_pending": []}


def test_no_handshake_is_claimed_where_no_socket_opens():
    with ComfyClient("http://127.0.0.1:9") as client:
        assert handshake(client, timeout=2) is None


def test_detect_on_the_recorded_comfyui_0364(samples):
    misc = json.loads((samples / "misc_endpoints.json").read_text())
    stats = json.loads((samples / "system_stats.json").read_text())
    stats = stats.get("body", stats)

    def answer(method, path, kwargs):  # /api/jobs and /node_replacements: absent from 0.3.64's code (404)
        plain = path[4:] if path.startswith("/api/") else path
        if plain == "/system_stats":
            return 200, stats
        entry = misc.get(f"{method} {plain}")
        return (entry["http_status"], entry["body"]) if entry else (404, None)

    with ComfyClient("http://127.0.0.1:8188", session=Replay(answer)) as client:
        assert detect(client).describe() == FEATURES["0.3.64"]


# -- jobs.job_state and jobs.cancel, per profile --------------------------------------------------------
@pytest.mark.parametrize("sim_profile", PROFILES, indirect=True)
def test_job_state_tells_running_pending_done_and_missing_apart(sim_profile, profile_client, tiny_workflow):
    with ComfyClient(sim_profile.url) as client:
        caps = detect(client)
        done = str(uuid.uuid4())
        profile_client.run(tiny_workflow(), prompt_id=done)
        state, entry = jobs.job_state(client, done, caps)
        assert state == "done" and entry["status"]["status_str"] == "success"
        assert entry["outputs"] == client.history(done)["outputs"]
        assert jobs.job_state(client, str(uuid.uuid4()), caps) == ("missing", None)
        sim_profile.faults.stall_prompt(2)
        running, pending = str(uuid.uuid4()), str(uuid.uuid4())
        for pid in (running, pending):
            profile_client.post("/prompt", {"prompt": tiny_workflow(seed=5), "prompt_id": pid})
        wait_until(lambda: (sim_profile.engine.current() or ("",))[0] == running)
        assert jobs.job_state(client, running, caps) == ("running", None)
        assert jobs.job_state(client, pending, None) == ("pending", None)  # unknown caps: jobs API, else fallback

        stopped = jobs.cancel(client, [pending, running, str(uuid.uuid4())], caps)
        assert stopped == {pending, running}
        wait_until(lambda: jobs.job_state(client, running, caps)[0] == "done")
        state, entry = jobs.job_state(client, running, caps)
        assert entry["status"]["status_str"] == "error"
        assert "execution_interrupted" in [m[0] for m in entry["status"]["messages"]]
        assert jobs.job_state(client, pending, caps) == ("missing", None)


def test_job_state_on_the_recorded_092_answers(samples_092):
    """The jobs API answers of a real 0.9.2 map to what /queue + /history said there."""
    for run, want in (("run1_vhs_cold", "success"), ("exec_error_wan22_vae", "error")):
        recorded = json.loads((samples_092 / f"{run}_jobs.json").read_text())
        history = next(iter(json.loads((samples_092 / f"{run}_history_entry.json").read_text()).values()))
        for moment, state in (("while_running", "running"), ("after", "done")):
            def answer(method, path, kwargs, entry=recorded[moment]):
                return entry["http_status"], entry["body"]

            with ComfyClient("http://127.0.0.1:8192", session=Replay(answer)) as client:
                got, entry = jobs.job_state(client, recorded["after"]["body"]["id"])
            assert got == state
            if state == "done":
                assert entry["outputs"] == history["outputs"] and entry["status"] == history["status"]
                assert entry["status"]["status_str"] == want


# -- the 400 table: allowed values the server left out -----------------------------------------------
def test_explain_rejection_fills_in_a_trimmed_list():
    node_errors = {"81": {"class_type": "KSamplerAdvanced", "errors": [{
        "type": "value_not_in_list", "message": "Value not in list",
        "details": "sampler_name: 'eulr' not in (list of length 40)",
        "extra_info": {"input_name": "sampler_name", "input_config": None, "received_value": "eulr"}}]}}
    asked = []

    def info(class_type):
        asked.append(class_type)
        return {"input": {"required": {"sampler_name": [["euler", "euler_ancestral", "dpmpp_2m"], {}]}}}

    [row] = explain_rejection(node_errors, info)
    assert (row.node, row.class_type, row.input, row.received) == ("81", "KSamplerAdvanced", "sampler_name", "eulr")
    assert row.allowed == ["euler", "euler_ancestral", "dpmpp_2m"] and row.did_you_mean == "euler"
    assert asked == ["KSamplerAdvanced"]
    assert explain_rejection(node_errors, None)[0].allowed == []  # no way to ask: the row stays as sent


def test_explain_rejection_never_suggests_another_expert():
    node_errors = {"83": {"class_type": "LoraLoaderModelOnly", "errors": [{
        "type": "value_not_in_list", "message": "Value not in list", "details": "",
        "extra_info": {"input_name": "lora_name", "input_config": None,
                       "received_value": "wan2.2_t2v_lightx2v_4steps_lora_v1.1_low_noise.safetensors"}}]}}
    high = "wan2.2_t2v_lightx2v_4steps_lora_v1.1_high_noise.safetensors"
    [row] = explain_rejection(node_errors, lambda c: {"input": {"required": {"lora_name": [[high], {}]}}})
    assert row.allowed == [high] and row.did_you_mean is None


def test_the_recorded_092_validation_error_keeps_its_own_allowed_values(samples_092):
    body = json.loads((samples_092 / "valerr_lora_not_in_list_post_prompt_response.json").read_text())["body"]
    [row] = explain_rejection(body["node_errors"], lambda c: pytest.fail("no need to ask the server"))
    assert row.allowed == ["wan2.2_t2v_lightx2v_4steps_lora_v1.1_high_noise.safetensors",
                           "wan2.2_t2v_lightx2v_4steps_lora_v1.1_low_noise.safetensors"]


def test_rejection_server_reads_the_url_the_client_named():
    assert rejection_server(PromptRejected("ComfyUI at http://10.0.0.5:8188 refused the prompt: x")) == \
        "http://10.0.0.5:8188"
    assert rejection_server(PromptRejected("something else")) is None


def tiny_film(folder, workflow: str, shots: int = 1):
    lines = ["title: Tiny Film", "width: 64", "height: 64", "frames: 5", "seed_base: 100", f"workflow: {workflow}",
             "shots:"] + [f"  - {{name: shot-{i}, prompt: 'test shot {i}'}}" for i in range(1, shots + 1)]
    return write_shots(folder, "\n".join(lines) + "\n")


@pytest.mark.parametrize("sim_profile", ["0.38"], indirect=True)
def test_the_400_table_on_038_shows_the_sampler_names_the_server_left_out(sim_profile, tmp_path):
    graph = load(ROOT / "workflows" / "wan22_t2v_lightx2v_4step_core.json")
    graph["81"]["inputs"]["sampler_name"] = "eulr"  # preflight does not check samplers: the server refuses it
    (tmp_path / "typo.json").write_text(json.dumps(graph))
    result = run_cli("render", tiny_film(tmp_path, "typo.json"), "--server", sim_profile.url, "--out", tmp_path / "out",
                     env={"COLUMNS": "250"})
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert re.search(r"\(list of length \d+\)", text)  # what the server sent
    assert "euler_ancestral" in text and "did you mean 'euler'?" in text


# -- node replacements in preflight -------------------------------------------------------------------
def replaced_graph(tmp_path) -> str:
    graph = load(ROOT / "workflows" / "wan22_t2v_lightx2v_4step_core.json")
    graph["87"]["class_type"] = "WanVAEDecodeOld"  # a renamed node an older export still carries
    graph["87"]["inputs"]["latent"] = graph["87"]["inputs"].pop("samples")
    (tmp_path / "old_names.json").write_text(json.dumps(graph))
    return "old_names.json"


@pytest.mark.parametrize("sim_profile", ["0.38"], indirect=True)
def test_a_class_the_038_server_replaces_is_not_missing_and_renders(sim_profile, tmp_path):
    sim_profile.engine.register_node_replacement("WanVAEDecodeOld", "VAEDecode", {"latent": "samples"})
    name = replaced_graph(tmp_path)
    with ComfyClient(sim_profile.url) as client:
        [info] = preflight([client], [load(tmp_path / name)])
    assert info.capabilities.replacement_for("WanVAEDecodeOld") == "VAEDecode"
    result = run_cli("render", tiny_film(tmp_path, name), "--server", sim_profile.url, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    doctor = run_cli("doctor", "--server", sim_profile.url, "--workflow", tmp_path / name, "--json")
    checks = {c["name"]: c for c in json.loads(doctor.stdout.splitlines()[0])["checks"]}
    assert checks["nodes"]["ok"]
    assert checks["node replacements"]["detail"] == ("ComfyUI will run node 87 WanVAEDecodeOld as VAEDecode "
                                                     "(its registered replacement)")


@pytest.mark.parametrize("sim_profile", ["0.9"], indirect=True)
def test_the_same_class_is_missing_on_a_server_without_replacements(sim_profile, tmp_path):
    name = replaced_graph(tmp_path)
    with ComfyClient(sim_profile.url) as client, pytest.raises(PreflightError) as err:
        preflight([client], [load(tmp_path / name)])
    assert "ComfyUI has no WanVAEDecodeOld (node 87)" in err.value.message


@pytest.mark.parametrize("sim_profile", ["0.38"], indirect=True)
def test_preflight_reads_only_the_graphs_classes(sim_profile, monkeypatch):
    graph = load(ROOT / "workflows" / "wan22_t2v_lightx2v_4step_core.json")
    with ComfyClient(sim_profile.url) as client:
        asked = []
        real = client._request
        monkeypatch.setattr(client, "_request", lambda m, p, **kw: asked.append(p) or real(m, p, **kw))
        preflight([client], [graph])
        assert sorted(object_info(client, ["NoSuchNode", "VAEDecode"])) == ["VAEDecode"]  # {} for an unknown one
    asked = asked[:-2]
    assert "/object_info" not in asked and "/api/object_info" not in asked
    assert {p for p in asked if "object_info" in p} == {
        f"/api/object_info/{c}" for c in {n["class_type"] for n in graph.values()}}


@pytest.mark.parametrize("sim_profile", ["0.3.64", "0.9"], indirect=True)
def test_cancel_without_capabilities_falls_back_on_a_404_or_405(sim_profile, profile_client, tiny_workflow):
    sim_profile.faults.stall_prompt(1)  # the first prompt of this test runs until interrupted
    running, pending = str(uuid.uuid4()), str(uuid.uuid4())
    for pid in (running, pending):
        profile_client.post("/prompt", {"prompt": tiny_workflow(seed=6), "prompt_id": pid})
    wait_until(lambda: (sim_profile.engine.current() or ("",))[0] == running)
    with ComfyClient(sim_profile.url) as client:
        assert jobs.cancel(client, [pending]) == {pending}  # the running one, not ours here, runs on
        assert jobs.job_state(client, running) == ("running", None)
        assert jobs.cancel(client, [running]) == {running}
