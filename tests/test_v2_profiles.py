"""A film through the real comfy-api-proxy in front of the simulator speaking each ComfyUI version
(0.3.64, 0.9, 0.33, 0.38): one proxy per profile for the module, small films."""

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
