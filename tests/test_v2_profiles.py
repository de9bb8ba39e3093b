"""A film through the real comfy-api-proxy in front of the simulator speaking each ComfyUI version
(0.3.64, 0.9, 0.33, 0.38): one proxy per profile for the module, small films; a SIGKILLed client's
rerun, and SIGTERM where the proxy can cancel (0.38) and where it cannot (0.9)."""

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
    assert sorted(e["prompt_id"] for e in executed(sim)) == sorted(s.job_id for s in ledger.shots)  # each once


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
