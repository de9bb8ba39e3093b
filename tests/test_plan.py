"""`wanclip plan` as a user runs it: the table, the JSON, the graphs on disk, and refusals."""

from __future__ import annotations

import json

import pytest

from helpers import ROOT, load, run_cli, write_shots
from wanclip.workflow import graph_sha256

TOMATO = ROOT / "shots" / "tomato_egg.yaml"


def test_plan_json_reports_the_tomato_film(tmp_path):
    result = run_cli("plan", TOMATO, "--out", tmp_path / "film", "--json")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["film"] == {"title": "Tomato and Egg Stir-Fry", "fps": 16.0, "shots": 12, "seconds": 57.45}
    assert [s["seed"] for s in plan["shots"]] == list(range(101, 113))
    assert {s["frames"] for s in plan["shots"]} == {81}
    assert {(s["width"], s["height"]) for s in plan["shots"]} == {(832, 480)}
    first = plan["shots"][0]
    assert first["prompt"].endswith(", warm kitchen lighting, cinematic close-up, shallow depth of field, "
                                    "photorealistic food photography, 4k detail")
    graph = load(tmp_path / "film" / "graphs" / "01_ingredients.json")
    assert graph_sha256(graph) == first["graph_sha256"]
    assert graph["81"]["inputs"]["noise_seed"] == 101
    assert graph["90"]["inputs"]["filename_prefix"] == "wanclip/tomato-and-egg-stir-fry/01_ingredients"
    assert len(list((tmp_path / "film" / "graphs").iterdir())) == 12
    assert len({s["graph_sha256"] for s in plan["shots"]}) == 12


def test_plan_table_shows_shots_and_film_length(tmp_path):
    result = run_cli("plan", TOMATO, "--out", tmp_path)
    assert result.exit_code == 0
    assert "12 shots, 57.45 s after transitions" in result.stdout
    assert "60.75 s of clips − 3.30 s of transitions = 57.45 s at 16 fps" in result.stdout
    assert "slicing-tomatoes" in result.stdout


def test_every_example_film_plans(tmp_path):
    lengths = {}
    for path in sorted((ROOT / "shots").glob("*.yaml")):
        result = run_cli("plan", path, "--out", tmp_path / path.stem, "--json")
        assert result.exit_code == 0, (path, result.output)
        lengths[path.stem] = [s["frames"] for s in json.loads(result.stdout)["shots"]]
    assert lengths["single_5s"] == [81] and lengths["single_10s"] == [161] and lengths["single_30s"] == [481]
    assert lengths["pour_over_coffee"] == [81] * 12


@pytest.fixture
def graph_without_output(tmp_path):
    graph = load(ROOT / "workflows" / "wan22_t2v_lightx2v_4step.json")
    del graph["90"]
    (tmp_path / "mine.json").write_text(json.dumps(graph))
    return tmp_path / "mine.json"


@pytest.mark.parametrize("text,message", [
    ("title: x\nshots:\n  - name: a\n    prompt: p\n    frames: 80\n",
     "line 5: shots[1] (a).frames: 80 frames is not 4n+1 (the Wan VAE makes 4n+1 frames): use 77 or 81"),
    ("title: x\nworkflow: mine.json\nshots:\n  - name: a\n    prompt: p\n",
     "mine.json: the workflow has no video output: wanted one VHS_VideoCombine or SaveVideo node"),
    ("title: x\nworkflow: nope.json\nshots:\n  - name: a\n    prompt: p\n",
     "nope.json: cannot read the workflow"),
    ("title: x\nframes: 5\ntransition: {type: fade, duration: 0.5}\nshots:\n  - {name: a, prompt: p}\n"
     "  - {name: b, prompt: q}\n", "shots[2] (b): the 0.5 s fade is as long as a clip it joins"),
    ("title: x\nframes: 5\ntransition: {type: fade, duration: 0.2}\nshots:\n  - {name: a, prompt: p}\n"
     "  - {name: b, prompt: q}\n  - {name: c, prompt: r}\n",
     "shots[2] (b): the transitions into and out of it (0.4 s together) are as long as the shot (0.3125 s)"),
    ("title: x\ntransition: {type: fade, duration: 0.01}\nshots:\n  - {name: a, prompt: p}\n"
     "  - {name: b, prompt: q}\n", "shots[2] (b): the 0.01 s fade into it lasts under one frame"),
], ids=["frames", "workflow-role", "workflow-missing", "fade-too-long", "fades-in-and-out", "fade-under-a-frame"])
def test_refusals_exit_2_name_the_problem_and_write_nothing(tmp_path, graph_without_output, text, message):
    result = run_cli("plan", write_shots(tmp_path, text), "--out", tmp_path / "out")
    assert result.exit_code == 2
    assert message in " ".join(result.stderr.split())
    assert not (tmp_path / "out").exists()


def test_warnings_go_to_stderr_and_do_not_fail(tmp_path):
    shots = write_shots(tmp_path, "title: x\nshots:\n  - {name: a, prompt: p, seed: 3}\n"
                        "  - {name: b, prompt: q, seed: 3}\n")
    result = run_cli("plan", shots, "--out", tmp_path / "out", "--json")
    assert result.exit_code == 0
    assert "shots a, b share seed 3" in result.stderr
    assert json.loads(result.stdout)["film"]["seconds"] == round(2 * 81 / 16 - 0.3, 4)
