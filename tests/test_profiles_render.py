"""The shipped core graph (CreateVideo + SaveVideo) validates and renders on every ComfyUI the
simulator speaks: 0.3.64 and 0.9 (SaveVideo `format` + `codec` combos) and 0.38 (`format` a
DynamicCombo, the old `codec` kept as a hidden optional input)."""

from __future__ import annotations

import json

import pytest

from helpers import SHIPPED_CORE, load, run_cli, write_shots
from wanclip.ledger import load_ledger


def film(folder, workflow: str) -> str:
    return write_shots(folder, "title: Core Film\nwidth: 64\nheight: 64\nframes: 5\nseed_base: 7\n"
                               f"workflow: {workflow}\nshots:\n  - {{name: only, prompt: 'a red tomato'}}\n")


def render(sim, tmp_path, graph: dict):
    (tmp_path / "graph.json").write_text(json.dumps(graph))
    out = tmp_path / "out"
    result = run_cli("render", film(tmp_path, "graph.json"), "--server", sim.url, "--out", out, "--json")
    return result, out


@pytest.mark.parametrize("sim_profile", ["0.3.64", "0.9", "0.38"], indirect=True)
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
