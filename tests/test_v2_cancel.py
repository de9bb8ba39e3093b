"""Ctrl-C through the Comfy API v2: our jobs are cancelled (a request) and the stop is confirmed by
polling. The real comfy-api-proxy in front of the simulator speaking ComfyUI 0.38 (its cancel route
is what the proxy calls)."""

from __future__ import annotations

import pytest

from helpers import write_shots
from wanclip.errors import Interrupted
from wanclip.ledger import load_ledger
from wanclip.planning.plan import plan_film
from wanclip.render.loop import RenderOptions, render_film


@pytest.fixture(scope="module")
def sim038(sim_servers):
    return sim_servers("0.38")


@pytest.fixture(scope="module")
def proxy038(sim038, tmp_path_factory):
    from conftest import Proxy

    folder = tmp_path_factory.mktemp("v2-proxy-038")
    proxy = Proxy(sim038.url, folder / "state", folder / "proxy.log")
    proxy.start()
    yield proxy
    proxy.stop()


@pytest.fixture
def sim(sim038, proxy038, tmp_path):
    sim038.reset(tmp_path / "comfy" / "output")
    sim038.output_dir.mkdir(parents=True, exist_ok=True)
    yield sim038
    sim038.reset()


def test_ctrl_c_cancels_our_jobs_and_says_so_once_the_surface_confirms(sim, proxy038, tmp_path):
    sim.faults.stall_prompt(1)
    shots = write_shots(tmp_path, "title: Stop\nwidth: 64\nheight: 64\nframes: 5\nshots:\n"
                                  "  - {name: one, prompt: 'first'}\n  - {name: two, prompt: 'second'}\n")
    plan = plan_film(shots, out=tmp_path / "out")
    seen = []

    def on_event(event):
        seen.append(event)
        if event.kind == "started":
            raise KeyboardInterrupt

    with pytest.raises(Interrupted) as err:
        render_film(plan, RenderOptions(servers=[proxy038.url], stitch=False), on_event)
    assert err.value.exit_code == 130
    assert "none of our prompts is left on the server" in err.value.message
    assert [s.status for s in load_ledger(tmp_path / "out").shots] == ["pending", "pending"]
    assert [e["status"] for e in sim.log()] in (["interrupted"], ["interrupted", "interrupted"])
