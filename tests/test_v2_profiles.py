"""A film through the real comfy-api-proxy in front of the simulator speaking each ComfyUI version
(0.3.64, 0.9, 0.33, 0.38), one proxy per profile for the module, small films: every scenario of
issue 20 item 7 on every profile. A film; a SIGKILLed client's rerun; the proxy restarted mid-film
with --state-dir and without; a lost answer; SIGTERM and Ctrl-C where the proxy can cancel (0.33,
0.38) and where it cannot (0.3.64, 0.9); a 429 with Retry-After; a missing model named before any
work; a missing or refused key; an I2V chain with uploads. test_v2_proxy.py keeps what does not
depend on the profile (0.3.64 only)."""

from __future__ import annotations

import pytest

from helpers import kill_render_when
from test_v2_proxy import events, executed, render, tiny_film
from wanclip.ledger import load_ledger

PROFILES = ["0.3.64", "0.9", "0.33", "0.38"]


@pytest.fixture(scope="module", params=PROFILES)
def staged(request, sim_servers, tmp_path_factory):
    """(simulator of one profile, comfy-api-proxy with --state-dir in front of it)."""
    from conftest import Proxy

    handle = sim_servers(request.param)
    folder = tmp_path_factory.mktemp(f"v2-proxy-{request.param}")
    proxy = Proxy(handle.url, folder / "state", folder / "proxy.log")
    proxy.start()
    yield handle, proxy
    proxy.stop()


@pytest.fixture
def sim(staged, tmp_path):
    handle, _ = staged
    handle.reset(tmp_path / "comfy" / "output")
    handle.output_dir.mkdir(parents=True, exist_ok=True)
    yield handle
    handle.reset()


@pytest.fixture
def proxy(staged, sim):
    return staged[1]


def test_a_film_renders_through_the_proxy_on_each_profile_each_shot_once(sim, proxy, tmp_path):
    out = tmp_path / "film"
    result = render(proxy.url, tiny_film(tmp_path, 2), out, "--no-stitch")
    assert result.exit_code == 0, result.output
    ledger = load_ledger(out)
    assert [s.status for s in ledger.shots] == ["done"] * 2
    assert all(s.backend == "v2" and s.submit_state == "confirmed" and (out / s.clip).is_file() for s in ledger.shots)
    assert sorted(e["prompt_id"] for e in executed(sim)) == sorted(s.job_id for s in ledger.shots)


def test_a_killed_client_reruns_and_reattaches_on_each_profile_each_shot_once(sim, proxy, tmp_path):
    """shot-2's job is held at its sampler while the client is SIGKILLed, then let go: the rerun
    re-attaches to it by the job id the ledger kept and renders nothing again."""
    sim.faults.stall_prompt(2)
    shots, out = tiny_film(tmp_path, 2), tmp_path / "out"
    kill_render_when(shots, proxy.url, out, lambda ledger: ledger.shots[0].status == "done"
                     and ledger.shots[1].job_id is not None)
    kept = load_ledger(out).shots[1]
    assert kept.status != "done" and kept.job_id
    sim.faults.release(2)
    result = render(proxy.url, shots, out, "--no-stitch")
    assert result.exit_code == 0, result.output
    assert "reattached" in [e["event"] for e in events(result)]
    ledger = load_ledger(out)
    assert [s.status for s in ledger.shots] == ["done"] * 2 and ledger.shots[1].job_id == kept.job_id
    ran = sorted(e["prompt_id"] for e in executed(sim))
    killed = (tmp_path / "out.killed-render.jsonl").read_text(errors="replace")
    assert ran == sorted(s.job_id for s in ledger.shots), (killed, result.output)  # each once


def sigterm_render(shots, url: str, out, ready, then=None) -> tuple[int, dict]:
    """``wanclip render`` in its own process, sent SIGTERM once ``ready(ledger)``; ``then(ledger)``:
    a second SIGTERM once it holds (it stops waiting for the surface). (exit code, its last event)."""
    import json
    import os
    import signal
    import subprocess
    import sys

    from helpers import ROOT, wait_until

    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    ledger = lambda: load_ledger(out) if (out / "ledger.json").exists() else None  # noqa: E731
    with subprocess.Popen([sys.executable, "-m", "wanclip", "render", str(shots), "--server", url, "--out", str(out),
                           "--json", "--no-stitch"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as proc:
        wait_until(lambda: ledger() is not None and ready(ledger()), message=lambda: str(ledger()))
        proc.send_signal(signal.SIGTERM)
        if then is not None:
            wait_until(lambda: then(ledger()) or proc.poll() is not None, message=lambda: str(ledger()))
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    return proc.returncode, json.loads(stdout.strip().splitlines()[-1])


def running_and_queued(ledger) -> bool:
    """shot-1's job runs (held at its sampler), shot-2's is queued behind it."""
    return ledger.shots[0].status == "running" and ledger.shots[1].job_id is not None


@pytest.mark.parametrize("staged", ["0.33", "0.38"], indirect=True)
def test_sigterm_cancels_our_jobs_through_the_proxy_confirms_it_and_a_rerun_renders_each_shot_once(
        sim, proxy, tmp_path):
    """ComfyUI 0.33 and 0.38 have the per-job cancel the proxy calls: both jobs stop, confirmed by polling."""
    sim.faults.stall_prompt(1)
    shots, out = tiny_film(tmp_path, 2), tmp_path / "out"
    code, last = sigterm_render(shots, proxy.url, out, running_and_queued)
    assert code == 143 and last["event"] == "error" and last["exit_code"] == 143
    assert "none of our prompts is left on the server" in last["error"], last
    assert [s.status for s in load_ledger(out).shots] == ["pending", "pending"]
    assert [e["status"] for e in sim.log()] == ["interrupted"]  # shot-2 was dequeued, never run
    result = render(proxy.url, shots, out, "--no-stitch")
    assert result.exit_code == 0, result.output
    ledger = load_ledger(out)
    assert sorted(e["prompt_id"] for e in executed(sim)) == sorted(s.job_id for s in ledger.shots)


@pytest.mark.parametrize("staged", ["0.3.64", "0.9"], indirect=True)
def test_sigterm_where_the_proxy_cannot_cancel_keeps_the_jobs_in_the_ledger_and_the_rerun_reattaches(
        sim, proxy, tmp_path):
    """ComfyUI 0.3.64 and 0.9 lack the cancel route the proxy calls: the jobs go on, the message names them, the
    ledger keeps their ids, and the rerun collects them instead of rendering them again."""
    sim.faults.stall_prompt(1)
    shots, out = tiny_film(tmp_path, 2), tmp_path / "out"
    code, last = sigterm_render(shots, proxy.url, out, running_and_queued,
                                then=lambda ledger: ledger.shots[0].cancelled)  # asked: stop waiting
    assert code == 143 and last["exit_code"] == 143
    assert "still on the server: shot-1" in last["error"] and proxy.url in last["error"], last
    kept = load_ledger(out).shots
    assert all(s.status in ("queued", "running") and s.job_id for s in kept)
    sim.faults.release(1)
    result = render(proxy.url, shots, out, "--no-stitch")
    assert result.exit_code == 0, result.output
    ledger = load_ledger(out)
    assert [s.job_id for s in ledger.shots] == [s.job_id for s in kept]  # re-attached, not posted again
    assert sorted(e["prompt_id"] for e in executed(sim)) == sorted(s.job_id for s in ledger.shots)


def test_the_proxy_restarted_mid_film_with_its_state_dir_renders_each_shot_once_on_each_profile(
        sim, proxy, tmp_path):
    """Both POSTs answered, shot-1 held at its sampler, shot-2 queued: the proxy is killed and comes
    back with its --state-dir, then shot-1 is let go. Nothing is posted again, nothing is doubted."""
    from wanclip.planning.plan import plan_film
    from wanclip.render.loop import RenderOptions, render_film

    sim.faults.stall_prompt(1)
    submitted, seen = [], []

    def on_event(event):
        seen.append(event)
        submitted.extend([event.shot] if event.kind == "submitted" else [])
        if len(submitted) == 2 and not proxy_restarts:
            proxy_restarts.append(event.shot)
            proxy.restart()
            sim.faults.release(1)

    proxy_restarts: list = []
    plan = plan_film(tiny_film(tmp_path, 2), out=tmp_path / "out")
    result = render_film(plan, RenderOptions(servers=[proxy.url], stitch=False, poll_interval=0.2,
                                             concurrency=2), on_event)
    assert proxy_restarts and result.exit_code == 0
    ledger = load_ledger(tmp_path / "out")
    assert [s.status for s in ledger.shots] == ["done"] * 2
    assert sorted(e["prompt_id"] for e in executed(sim)) == sorted(s.job_id for s in ledger.shots)  # each once
    assert not [e for e in seen if "may have rendered twice" in str(getattr(e, "data", ""))]


def test_the_proxy_restarted_without_state_mid_post_says_which_shot_may_run_twice_on_each_profile(
        sim, bare_proxy, tmp_path, monkeypatch):
    """As test_v2_restart.py, on every profile: shot-2's POST reaches ComfyUI, the proxy dies before
    it answers and comes back without state; shot-2 is posted again and said to maybe run twice,
    shot-1 (its job id saved) re-attaches through ComfyUI and is not doubted. Two shots, shot-2 the
    last: a third shot, posted right behind shot-2 while the proxy restarts, was seen doubted too
    (its POST got a ConnectionError counted as possibly sent: honest, as wanclip cannot tell)."""
    from test_v2_restart import shot_of

    queue_prompt, killed = sim.engine.submit, []

    def submit(body):
        answer = queue_prompt(body)
        if answer[0] == 200 and not killed and shot_of(body) == "shot-2":
            killed.append(answer[1]["prompt_id"])
            bare_proxy.restart()
        return answer

    monkeypatch.setattr(sim.engine, "submit", submit)
    out = tmp_path / "out"
    result = render(bare_proxy.url, tiny_film(tmp_path, 2), out, "--concurrency", "2", "--no-stitch")
    assert result.exit_code == 0, result.output
    assert killed, "the proxy was never killed"
    ledger = load_ledger(out)
    assert [s.status for s in ledger.shots] == ["done"] * 2
    runs = [e["prompt_id"] for e in executed(sim)]
    assert sorted(runs) == sorted([s.job_id for s in ledger.shots] + killed)  # shot-2 twice, the others once
    assert killed[0] not in [s.job_id for s in ledger.shots]
    doubts = [e for e in events(result) if e["event"] == "warning" and "may have rendered twice" in e["message"]]
    assert [e.get("shot") for e in doubts] == ["shot-2"], doubts
    assert doubts[0]["message"].startswith("shot shot-2:")
    assert "(the first attempt could not be confirmed)" in doubts[0]["message"]


def test_a_lost_answer_behind_the_proxy_is_said_plainly_and_the_film_renders_on_each_profile(sim, proxy, tmp_path):
    """ComfyUI queued the prompt, then its answer was lost (a 502): the proxy calls that a 422 and
    releases the key on every profile, so shot-1 renders twice, and wanclip says so."""
    sim.faults.bad_gateway_after("/prompt", 2)  # the probe, then the first shot
    out = tmp_path / "out"
    result = render(proxy.url, tiny_film(tmp_path, 2), out, "--no-stitch")
    assert result.exit_code == 0, result.output
    assert [s.status for s in load_ledger(out).shots] == ["done"] * 2
    warnings = [e for e in events(result) if e["event"] == "warning" and "may have rendered twice" in e["message"]]
    assert [e.get("shot") for e in warnings] == ["shot-1"], warnings
    assert len(executed(sim)) == 3


def test_a_429_with_retry_after_is_waited_out_and_the_job_posted_once_on_each_profile(sim, proxy, tmp_path):
    """The 429 is injected in front of the proxy (it never sends one for a submission): what the
    profile decides is only whether the job posted after it runs once."""
    import queue
    import uuid

    from test_v2_proxy import Busy, graph
    from wanclip.comfy import v2
    from wanclip.render.v2 import V2Backend

    attempt, sink = str(uuid.uuid4()), queue.Queue()
    backend = V2Backend(v2.V2Client(proxy.url, session=Busy()), concurrency=3)
    backend.sink = sink
    job = backend.submit(graph(tmp_path, "a busy surface"), attempt)
    assert backend.find(attempt) == job and backend.concurrency == 1
    assert "posted again in 0 s" in sink.get_nowait()[1].data["message"]
    from helpers import wait_until

    wait_until(lambda: backend.states([attempt])[attempt][0] == "done", message=lambda: str(sim.log()))
    assert [e["prompt_id"] for e in executed(sim)] == [job]


def test_a_job_that_reads_expired_once_as_it_ends_is_asked_again_not_posted_again_on_each_profile(sim, proxy,
                                                                                                   tmp_path):
    """comfy-api-proxy 0.1.6 reads /history, then /queue: a job ending between the two reads answers
    "expired" (no outputs) that once. Taken at its word, the shot was lost and posted again (a test
    saw it render twice under load). Here the first answer about the job is that forged one."""
    import json
    import queue
    import uuid

    import requests

    from helpers import wait_until
    from test_v2_proxy import graph
    from wanclip.comfy import v2
    from wanclip.render.v2 import V2Backend

    class Racy(requests.Session):
        def __init__(self):
            super().__init__()
            self.forged: set[str] = set()

        def request(self, method, url, *args, **kwargs):
            answer = super().request(method, url, *args, **kwargs)
            job_id = url.rsplit("/", 1)[-1]
            if method == "GET" and "/api/v2/jobs/" in url and answer.status_code == 200 and job_id not in self.forged:
                self.forged.add(job_id)
                answer._content = json.dumps(answer.json() | {"status": "expired", "outputs": []}).encode()
            return answer

    attempt, session = str(uuid.uuid4()), Racy()
    backend = V2Backend(v2.V2Client(proxy.url, session=session))
    backend.sink = queue.Queue()
    job = backend.submit(graph(tmp_path, "a job read as it ends"), attempt)
    seen = []
    wait_until(lambda: seen.append(backend.states([attempt])[attempt][0]) or seen[-1] == "done",
               message=lambda: str(seen))
    assert "missing" not in seen and session.forged == {job}
    assert [e["prompt_id"] for e in executed(sim)] == [job]


def test_a_missing_model_is_named_before_any_work_on_each_profile(sim, proxy, tmp_path):
    import json

    from helpers import ROOT, write_shots

    graph_file = tmp_path / "typo.json"
    shipped = json.loads((ROOT / "workflows" / "wan22_t2v_lightx2v_4step.json").read_text())
    shipped["75"]["inputs"]["unet_name"] = "wan2.2_t2v_high_noise_14B_fp8.safetensors"
    graph_file.write_text(json.dumps(shipped))
    shots = write_shots(tmp_path, "title: Typo\nwidth: 64\nheight: 64\nframes: 5\nworkflow: typo.json\n"
                                  "shots:\n  - {name: one, prompt: 'first'}\n  - {name: two, prompt: 'second'}\n")
    result = render(proxy.url, shots, tmp_path / "out")
    assert result.exit_code == 2, result.output
    assert "wan2.2_t2v_high_noise_14B_fp8.safetensors" in result.stderr
    assert "did you mean wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors" in result.stderr
    assert sim.log() == []


def test_an_i2v_chain_uploads_its_start_picture_as_an_asset_on_each_profile(sim, proxy, tmp_path):
    from helpers import write_shots

    lines = ["title: Chain", "width: 96", "height: 64", "frames: 9", "seed_base: 7", "colour_match: false",
             "shots:", "  - {name: walk-1, prompt: 'a dancer turns, link one'}",
             "  - {name: walk-2, prompt: 'the dancer keeps turning, link 2', continue: true}"]
    out = tmp_path / "film"
    result = render(proxy.url, write_shots(tmp_path, "\n".join(lines) + "\n"), out, "--no-stitch")
    assert result.exit_code == 0, result.output
    ledger = load_ledger(out)
    assert [s.status for s in ledger.shots] == ["done", "done"] and ledger.shots[1].backend == "v2"
    assert ledger.shots[1].start_sha256 == ledger.shots[0].clip_sha256
    history = sim.engine.history()
    graphs = [history[e["prompt_id"]]["prompt"][2] for e in executed(sim)]
    loads = [n["inputs"]["image"] for g in graphs for n in g.values() if n["class_type"] == "LoadImage"]
    assert len(loads) == 1 and (sim.output_dir.parent / "input" / loads[0]).is_file()  # the proxy resolved the ref
    assert sorted(e["prompt_id"] for e in executed(sim)) == sorted(s.job_id for s in ledger.shots)


@pytest.fixture(scope="module")
def guarded(staged, tmp_path_factory):
    """A second comfy-api-proxy in front of this profile's simulator, started with --token."""
    from conftest import Proxy
    from test_v2_auth import TOKEN

    folder = tmp_path_factory.mktemp("v2-guarded")
    proxy = Proxy(staged[0].url, folder / "state", folder / "proxy.log", token=TOKEN)
    proxy.start()
    yield proxy
    proxy.stop()


@pytest.mark.parametrize("key", [None, "sk-wrong-key-42"])
def test_a_missing_or_refused_key_stops_before_any_work_on_each_profile(sim, guarded, tmp_path, monkeypatch, key):
    """The proxy refuses the key before it asks ComfyUI anything, so the profile should not matter:
    run on each anyway (one proxy start per profile), as it is cheap."""
    from test_v2_auth import TOKEN, film

    if key is None:
        monkeypatch.delenv("COMFY_API_KEY", raising=False)
    else:
        monkeypatch.setenv("COMFY_API_KEY", key)
    result = render(guarded.url, film(tmp_path), tmp_path / "out")
    assert result.exit_code == 2, result.output
    assert "COMFY_API_KEY" in result.output and "nothing was submitted" in result.output
    assert (key or TOKEN) not in result.output and TOKEN not in result.output
    assert sim.log() == []


def ctrl_c_at_the_first_start(plan, url: str, **options):
    """``render_film`` in-process, Ctrl-C as the first job starts: the ``Interrupted`` it raises."""
    from wanclip.errors import Interrupted
    from wanclip.render.loop import RenderOptions, render_film

    def on_event(event):
        if event.kind == "started":
            raise KeyboardInterrupt

    with pytest.raises(Interrupted) as err:
        render_film(plan, RenderOptions(servers=[url], stitch=False, **options), on_event)
    return err.value


@pytest.mark.parametrize("staged", ["0.33", "0.38"], indirect=True)
def test_ctrl_c_cancels_our_jobs_and_says_so_once_the_surface_confirms(sim, proxy, tmp_path):
    """(was test_v2_cancel.py, 0.38 only) 0.33 and 0.38 have the per-job cancel the proxy calls."""
    from wanclip.planning.plan import plan_film

    sim.faults.stall_prompt(1)
    err = ctrl_c_at_the_first_start(plan_film(tiny_film(tmp_path, 2), out=tmp_path / "out"), proxy.url)
    assert err.exit_code == 130
    assert "none of our prompts is left on the server" in err.message
    assert [s.status for s in load_ledger(tmp_path / "out").shots] == ["pending", "pending"]
    assert [e["status"] for e in sim.log()] in (["interrupted"], ["interrupted", "interrupted"])


@pytest.mark.parametrize("staged", ["0.3.64", "0.9"], indirect=True)
def test_ctrl_c_where_the_surface_cannot_cancel_says_which_job_is_left_and_keeps_it(sim, proxy, tmp_path):
    """(was in test_v2_proxy.py, 0.3.64 only) The proxy's cancel does nothing on ComfyUI 0.9 and
    older (it calls a route they lack): the job is named as left on the server and kept."""
    from wanclip.planning.plan import plan_film

    sim.faults.stall_prompt(1)
    plan = plan_film(tiny_film(tmp_path, 2), out=tmp_path / "out")
    err = ctrl_c_at_the_first_start(plan, proxy.url, cancel_wait=1.0)
    assert err.exit_code == 130
    assert "still on the server: shot-1" in err.message and proxy.url in err.message
    first = load_ledger(tmp_path / "out").shots[0]
    assert first.status in ("queued", "running") and first.job_id and first.cancelled
    sim.faults.release(1)
