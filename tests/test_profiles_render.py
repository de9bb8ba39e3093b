"""The shipped core graph (CreateVideo + SaveVideo) validates and renders on every ComfyUI the
simulator speaks: 0.3.64 and 0.9 (SaveVideo `format` + `codec` combos), 0.33 (the recorded nested
DynamicCombo) and 0.38 (`format` a DynamicCombo, the old `codec` kept as a hidden optional input)."""

from __future__ import annotations

import json

import pytest

from helpers import FEATURES, SHIPPED_CORE, load, run_cli, write_shots
from wanclip.ledger import load_ledger


def film(folder, workflow: str) -> str:
    return write_shots(folder, "title: Core Film\nwidth: 64\nheight: 64\nframes: 5\nseed_base: 7\n"
                               f"workflow: {workflow}\nshots:\n  - {{name: only, prompt: 'a red tomato'}}\n")


def render(sim, tmp_path, graph: dict):
    (tmp_path / "graph.json").write_text(json.dumps(graph))
    out = tmp_path / "out"
    result = run_cli("render", film(tmp_path, "graph.json"), "--server", sim.url, "--out", out, "--json")
    return result, out


@pytest.mark.parametrize("sim_profile", ["0.3.64", "0.9", "0.33", "0.38"], indirect=True)
def test_the_core_graph_renders_on_every_profile(sim_profile, tmp_path):
    result, out = render(sim_profile, tmp_path, load(SHIPPED_CORE))
    assert result.exit_code == 0, result.output
    [shot] = load_ledger(out).shots
    assert shot.status == "done" and (out / shot.clip).stat().st_size > 0
    entry = sim_profile.engine.history(None, -1)[shot.prompt_id]
    assert set(entry["outputs"]["80"]) == {"images", "animated"}  # the keys wanclip's output picker reads
    assert entry["outputs"]["80"]["animated"] == [True]


@pytest.mark.parametrize("sim_profile", ["0.38"], indirect=True)
def test_a_new_frontend_export_with_dotted_format_keys_renders_on_038(sim_profile, tmp_path):
    graph = load(SHIPPED_CORE)
    inputs = graph["80"]["inputs"]
    del inputs["codec"]
    inputs.update({"format": "mp4", "format.codec": "h264", "format.codec.encoding": "auto"})
    result, out = render(sim_profile, tmp_path, graph)
    assert result.exit_code == 0, result.output
    assert load_ledger(out).shots[0].status == "done"


def server_events(output: str) -> list[dict]:
    events = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return [e for e in events if e.get("event") == "server"]


@pytest.mark.parametrize("sim_profile", ["0.33"], indirect=True)
def test_render_on_033_claims_nothing_the_server_did_not_do(sim_profile, tmp_path):
    """ComfyUI 0.33.0 re-runs a re-posted id and sends no activity/seconds: the render's server line
    says of each behaviour no route shows that it is not known yet, never what a version or a flag
    suggests."""
    result, out = render(sim_profile, tmp_path, load(SHIPPED_CORE))
    assert result.exit_code == 0, result.output
    [server] = server_events(result.stdout)
    assert server["features"] == FEATURES["0.33"]
    assert "refused" not in server["features"] and "activity, seconds" not in server["features"]


@pytest.mark.parametrize("sim_profile", ["0.33"], indirect=True)
def test_a_lost_post_answer_on_033_is_looked_up_and_renders_once(sim_profile, profile_client, tmp_path):
    """Where a re-posted id would run twice (0.33: no 409) and that is not known yet, the render takes
    the cautious way: it asks the server for the id before posting it again."""
    sim_profile.faults.bad_gateway_after("/prompt", times=1)  # queued, but the answer was lost
    result, out = render(sim_profile, tmp_path, load(SHIPPED_CORE))
    assert result.exit_code == 0, result.output
    [shot] = load_ledger(out).shots
    ran = [e["prompt_id"] for e in profile_client.get("/sim/log").json()]
    assert ran == [shot.prompt_id]
