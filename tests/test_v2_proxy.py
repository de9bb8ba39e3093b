"""A film through the Comfy API v2: the real comfy-api-proxy in front of the simulator."""

from __future__ import annotations

import io
import json
import queue
import uuid

import requests

from helpers import ROOT, run_cli, write_shots
from wanclip.comfy import v2
from wanclip.ledger import load_ledger
from wanclip.render.messages import Note
from wanclip.render.v2 import V2Backend


def tiny_film(folder, shots: int = 2):
    lines = ["title: Tiny Film", "width: 64", "height: 64", "frames: 5", "seed_base: 100",
             "transition: {type: fade, duration: 0.1}", "shots:"]
    lines += [f"  - {{name: shot-{i}, prompt: 'test shot number {i}'}}" for i in range(1, shots + 1)]
    return write_shots(folder, "\n".join(lines) + "\n")


def render(url, shots_file, out, *args):
    return run_cli("render", shots_file, "--server", url, "--out", out, "--json", *args)


def events(result) -> list[dict]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def executed(sim) -> list[dict]:
    return [e for e in sim.log() if e["status"] == "success"]


def test_a_film_renders_through_the_proxy_each_shot_once_with_its_job_in_the_ledger(sim, v2_proxy, tmp_path):
    out = tmp_path / "film"
    result = render(v2_proxy.url, tiny_film(tmp_path, 3), out)
    assert result.exit_code == 0, result.output
    ledger = load_ledger(out)
    assert [s.status for s in ledger.shots] == ["done"] * 3
    assert all(s.backend == "v2" and s.submit_state == "confirmed" for s in ledger.shots)
    assert all((out / s.clip).is_file() and s.clip.endswith(".mp4") for s in ledger.shots)
    assert not list((out / "clips").glob("*.part"))
    runs = executed(sim)
    assert sorted(e["prompt_id"] for e in runs) == sorted(s.job_id for s in ledger.shots)  # once each
    assert all(s.output_refs and s.output_refs[0]["url"].startswith(v2_proxy.url) for s in ledger.shots)
    assert (out / "film.mp4").is_file()


def graph(folder, text: str) -> dict:
    from wanclip.planning.plan import plan_film

    shots = write_shots(folder, f"title: t\nwidth: 64\nheight: 64\nframes: 5\nshots:\n  - {{name: one, prompt: '{text}'}}\n")
    return plan_film(shots).shots[0].graph


def test_a_same_key_retry_gets_422_and_reattaches_to_the_job_the_first_post_made(sim, v2_proxy, tmp_path):
    attempt, g = str(uuid.uuid4()), graph(tmp_path, "a retry after a lost answer")
    first = V2Backend(v2.V2Client(v2_proxy.url))
    job = first.submit(g, attempt)
    again = V2Backend(v2.V2Client(v2_proxy.url))  # a rerun that never saw the 201: no job id in its ledger
    assert again.submit(g, attempt) == job  # 422 idempotency_key_reuse: found by its label, not posted twice
    assert again.states([attempt])[attempt][0] in ("pending", "running", "done")


def test_a_same_key_retry_where_the_job_cannot_be_found_posts_anew_and_says_it_may_render_twice(sim, v2_proxy,
                                                                                                tmp_path):
    """As on Comfy Cloud (no job list, no labels): simulated by turning the list off on the real proxy."""
    attempt, g = str(uuid.uuid4()), graph(tmp_path, "a retry on a surface without a list")
    V2Backend(v2.V2Client(v2_proxy.url)).submit(g, attempt)
    again = V2Backend(v2.V2Client(v2_proxy.url))
    again.lists, sink = False, queue.Queue()
    again.sink = sink
    second = again.submit(g, attempt)
    assert second and second != V2Backend(v2.V2Client(v2_proxy.url)).find(attempt)
    note = sink.get_nowait()[1]
    assert isinstance(note, Note) and "may have rendered twice" in note.data["message"]


def test_a_rerun_after_a_crash_before_the_201_was_saved_finds_the_job_by_its_label(sim, v2_proxy, tmp_path):
    """The ledger says 'sent' (attempt id, no job id): the job the POST made is found, not posted again."""
    from wanclip.ledger import ledger_path
    from wanclip.planning.plan import plan_film
    from wanclip.planning.workflow import posted_graph

    shots, out = tiny_film(tmp_path, 2), tmp_path / "out"
    assert render(v2_proxy.url, shots, out).exit_code == 0
    ledger, planned = load_ledger(out), plan_film(shots, out=out).shots[1]
    record, attempt = ledger.shots[1], str(uuid.uuid4())
    (out / record.clip).unlink()
    made = V2Backend(v2.V2Client(v2_proxy.url)).submit(posted_graph(planned.graph, planned.roles, attempt), attempt)
    record.status, record.clip, record.clip_sha256, record.prompt_id = "queued", None, None, attempt
    record.job_id, record.submit_state, record.output_refs = None, "sent", None
    ledger.save()
    assert ledger_path(out).is_file()
    result = render(v2_proxy.url, shots, out)
    assert result.exit_code == 0, result.output
    again = load_ledger(out).shots[1]
    assert again.status == "done" and again.job_id == made and again.prompt_id == attempt
    assert [e["prompt_id"] for e in executed(sim)].count(made) == 1
    assert len(executed(sim)) == 3  # two shots, then the one job of the crashed attempt: nothing posted twice


def test_doctor_says_what_the_surface_is_that_the_key_works_and_the_guarantee(v2_proxy):
    result = run_cli("doctor", "-s", v2_proxy.url, "--json")
    assert result.exit_code == 0, result.output
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert "comfy-api-proxy" in checks["server"]["detail"]
    assert checks["API key"]["ok"] and "none needed" in checks["API key"]["detail"]
    assert "--state-dir" in checks["no shot twice"]["detail"]
    assert "at most 2 jobs" in checks["concurrency"]["detail"]
    assert checks["node classes and models"]["ok"]


def test_doctor_names_the_model_file_the_probe_found_missing(v2_proxy, tmp_path):
    graph_file = tmp_path / "typo.json"
    shipped = json.loads((ROOT / "workflows" / "wan22_t2v_lightx2v_4step.json").read_text())
    shipped["76"]["inputs"]["unet_name"] = "wan2.2_t2v_low_noise_14B_fp16.safetensors"
    graph_file.write_text(json.dumps(shipped))
    result = run_cli("doctor", "-s", v2_proxy.url, "--workflow", graph_file, "--json")
    assert result.exit_code == 1, result.output
    failed = [c for c in json.loads(result.stdout)["checks"] if not c["ok"]]
    assert [c["name"] for c in failed] == ["model wan2.2_t2v_low_noise_14B_fp16.safetensors"]


class Busy(requests.Session):
    """A 429 as Comfy Cloud sends it (queue_full, Retry-After) for the first POST of a job: injected in
    front of the real proxy, which itself never answers a submission so."""

    def __init__(self, times: int = 1):
        super().__init__()
        self.left = times

    def request(self, method, url, *args, **kwargs):
        if method == "POST" and url.endswith("/api/v2/jobs") and self.left:
            self.left -= 1
            response = requests.Response()
            response.status_code, response.headers["Retry-After"] = 429, "0"
            response._content = json.dumps({"error": {"code": "queue_full", "message": "queue is full",
                                                      "details": None}}).encode()
            return response
        return super().request(method, url, *args, **kwargs)


def test_concurrency_one_keeps_one_job_in_flight_and_api_native_does_not_treat_the_proxy_as_comfyui(sim, v2_proxy,
                                                                                                    tmp_path):
    out = tmp_path / "out"
    result = render(v2_proxy.url, tiny_film(tmp_path, 3), out, "--api", "v2", "--concurrency", "1", "--no-stitch")
    assert result.exit_code == 0, result.output
    said = [(e["event"], e.get("shot")) for e in events(result) if e["event"] in ("submitted", "done")]
    assert said == [(kind, f"shot-{i}") for i in (1, 2, 3) for kind in ("submitted", "done")]
    native = render(v2_proxy.url, tiny_film(tmp_path, 1), tmp_path / "native", "--api", "native")
    assert native.exit_code == 2 and "v2" not in [e.get("backend") for e in events(native)]


def test_a_native_server_and_a_v2_surface_share_one_film(sim, v2_proxy, tmp_path):
    """Both in front of the same simulated ComfyUI: each shot once, whichever took it."""
    out = tmp_path / "out"
    result = run_cli("render", tiny_film(tmp_path, 4), "-s", sim.url, "-s", v2_proxy.url, "--out", out, "--json",
                     "--no-stitch")
    assert result.exit_code == 0, result.output
    ledger = load_ledger(out)
    assert [s.status for s in ledger.shots] == ["done"] * 4
    servers = {e["server"] for e in events(result) if e["event"] == "server"}
    assert servers == {sim.url, v2_proxy.url}
    ran = sorted(e["prompt_id"] for e in executed(sim))
    assert ran == sorted(s.job_id or s.prompt_id for s in ledger.shots)  # the native attempt id is the prompt id
    assert {s.backend for s in ledger.shots if s.server == v2_proxy.url} <= {"v2"}


class CloudLike(requests.Session):
    """What only Comfy Cloud does, built from the v2 spec and the issue's measurements, in front of the
    real proxy: the job list answers 501, a label (metadata) is refused, an output's content is a 302 to
    a signed URL on another host. A fake: nothing here was run against Comfy Cloud itself."""

    def __init__(self):
        super().__init__()
        self.refused_labels = 0

    @staticmethod
    def answer(status: int, body: dict | None = None, headers: dict | None = None) -> requests.Response:
        response = requests.Response()
        response.status_code = status
        response.headers.update(headers or {})
        response._content = json.dumps(body).encode() if body is not None else b""
        response.raw = io.BytesIO(response._content)
        return response

    def request(self, method, url, *args, **kwargs):
        path = url.split("://", 1)[1].split("/", 1)[1]
        if method == "GET" and path == "api/v2/jobs":
            return self.answer(501, {"error": {"code": "not_implemented", "message": "Listing jobs is not "
                                               "supported", "details": None}})
        if method == "POST" and path == "api/v2/jobs" and "metadata" in (kwargs.get("json") or {}):
            self.refused_labels += 1
            return self.answer(422, {"error": {"code": "invalid_request", "message": "'metadata' is not "
                                               "accepted", "details": None}})
        if method == "GET" and path.endswith("/content"):
            signed = url.replace("127.0.0.1", "localhost") + "?signature=fake"
            return self.answer(302, None, {"Location": signed})
        return super().request(method, url, *args, **kwargs)


def test_cloud_like_fake_no_list_no_labels_and_signed_urls_render_the_film_without_the_key_leaving(
        sim, v2_proxy, tmp_path, monkeypatch):
    from wanclip.planning.plan import plan_film
    from wanclip.render.loop import RenderOptions, render_film

    monkeypatch.setenv("COMFY_API_KEY", "sk-cloud-key")
    fetched = []
    real_get = requests.get

    def signed_get(url, **kwargs):
        fetched.append((url, dict(kwargs.get("headers") or {})))
        return real_get(url, **kwargs)

    monkeypatch.setattr(requests, "get", signed_get)
    sessions = []

    def backend(url, client_id):
        sessions.append(CloudLike())
        return V2Backend(v2.V2Client(url, session=sessions[-1]))

    plan = plan_film(tiny_film(tmp_path, 2), out=tmp_path / "out")
    result = render_film(plan, RenderOptions(servers=[v2_proxy.url], stitch=False, backend_factory=backend))
    assert result.exit_code == 0
    ledger = load_ledger(tmp_path / "out")
    assert [s.status for s in ledger.shots] == ["done", "done"] and all(s.job_id for s in ledger.shots)
    assert sessions[0].refused_labels == 1  # asked once, then never again
    assert len(fetched) == 2 and all("localhost" in u and "Authorization" not in h for u, h in fetched)
    cloud = V2Backend(v2.V2Client(v2_proxy.url, session=CloudLike()))
    assert cloud.find(ledger.shots[0].prompt_id) is None and not cloud.lists  # 501: no list, never asked again


def test_a_job_expired_by_a_comfyui_restart_is_collected_from_the_output_url_the_ledger_kept(sim, v2_proxy,
                                                                                            tmp_path):
    """A crash during the download, then ComfyUI restarts: the proxy says 'expired' with no outputs, but
    the output URL recorded before still downloads; the shot is not rendered again."""
    shots, out = tiny_film(tmp_path, 1), tmp_path / "out"
    assert render(v2_proxy.url, shots, out, "--no-stitch").exit_code == 0
    ledger = load_ledger(out)
    record = ledger.shots[0]
    (out / record.clip).unlink()
    record.status, record.clip, record.clip_sha256 = "running", None, None  # as a crash mid-download left it
    ledger.save()
    sim.restart()  # its history is gone: the job is expired, its file is still in output/
    result = render(v2_proxy.url, shots, out, "--no-stitch")
    assert result.exit_code == 0, result.output
    again = load_ledger(out).shots[0]
    assert again.status == "done" and (out / again.clip).is_file() and again.job_id == record.job_id
    assert [e["prompt_id"] for e in executed(sim)] == [record.job_id]  # nothing ran after the restart


def test_progress_comes_from_the_event_stream_as_node_and_step_lines(sim, v2_proxy, tmp_path):
    sim.engine.config.step_seconds = 12.0  # x the tiny shot's cost: ~0.6 s a step; the proxy sends ~2 a second
    try:
        result = render(v2_proxy.url, tiny_film(tmp_path, 1), tmp_path / "out", "--no-stitch")
    finally:
        sim.engine.config.step_seconds = 0.005
    assert result.exit_code == 0, result.output
    steps = [e for e in events(result) if e["event"] == "progress"]
    assert all(e["max"] > 0 for e in steps) and any(e["label"].endswith("sampler") for e in steps), steps
    assert any(e["event"] == "node" and e["label"].endswith("sampler") for e in events(result))


def test_an_unconfirmed_attempt_the_surface_does_not_know_is_posted_again_and_said_plainly(sim, v2_proxy, tmp_path):
    """The last run saved the attempt but never a job id, and the surface knows no such job (never
    reached, or forgotten by a proxy restarted without --state-dir): posted again, said honestly."""
    shots, out = tiny_film(tmp_path, 2), tmp_path / "out"
    assert render(v2_proxy.url, shots, out, "--no-stitch").exit_code == 0
    ledger = load_ledger(out)
    record = ledger.shots[1]
    (out / record.clip).unlink()
    record.status, record.clip, record.clip_sha256 = "queued", None, None
    record.prompt_id, record.job_id, record.submit_state = str(uuid.uuid4()), None, "sent"
    ledger.save()
    result = render(v2_proxy.url, shots, out, "--no-stitch")
    assert result.exit_code == 0, result.output
    warnings = [e["message"] for e in events(result) if e["event"] == "warning"]
    assert any(w.startswith("shot shot-2:") and "may have rendered twice" in w for w in warnings), warnings
    assert load_ledger(out).shots[1].status == "done"
