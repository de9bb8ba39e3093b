"""`wanclip plan` as a user runs it: the table, the JSON, the graphs on disk, and refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import ROOT, load, run_cli, write_shots
from wanclip.planning.identity import identity_sha256
from wanclip.planning.workflow import find_roles, graph_sha256

TOMATO = ROOT / "shots" / "tomato_egg.yaml"


def test_plan_json_reports_the_tomato_film(tmp_path):
    result = run_cli("plan", TOMATO, "--out", tmp_path / "film", "--json")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    # 12 x 81 frames - 11 x 4.8 frames of fades = 919.2 frames; the film has whole frames: 920
    assert plan["film"] == {"title": "Tomato and Egg Stir-Fry", "fps": 16.0, "rendered_fps": 16.0, "size": [832, 480],
                            "shots": 12, "seconds": 57.5}
    assert [s["seed"] for s in plan["shots"]] == list(range(101, 113))
    assert {s["frames"] for s in plan["shots"]} == {81}
    assert {(s["width"], s["height"]) for s in plan["shots"]} == {(832, 480)}
    first = plan["shots"][0]
    assert first["prompt"].endswith(", warm kitchen lighting, cinematic close-up, shallow depth of field, "
                                    "photorealistic food photography, 4k detail")
    graph = load(tmp_path / "film" / "graphs" / "01_ingredients.json")
    # the identity is the graph's hash with the output's prefix left out: a shot is known by its name
    assert identity_sha256(graph, find_roles(graph)) == first["graph_sha256"] != graph_sha256(graph)
    assert graph["81"]["inputs"]["noise_seed"] == 101
    assert graph["90"]["inputs"]["filename_prefix"] == "wanclip/tomato-and-egg-stir-fry/ingredients"
    assert first["seed_source"] == "seed_base" and first["action"] == "render" and first["reason"] == "new shot"
    assert len(list((tmp_path / "film" / "graphs").iterdir())) == 12
    assert len({s["graph_sha256"] for s in plan["shots"]}) == 12


def test_plan_table_shows_shots_and_film_length(tmp_path):
    result = run_cli("plan", TOMATO, "--out", tmp_path)
    assert result.exit_code == 0
    assert "12 shots, 57.50 s after transitions" in result.stdout
    assert ("60.75 s of clips − 3.30 s of transitions = 57.45 s; each transition starts on a whole frame, so "
            "the film is 920 frames = 57.50 s at 16 fps") in " ".join(result.stdout.split())
    assert "slicing-tomatoes" in result.stdout


LENGTHS = {  # shots file -> the film's frames as the stitch writes them
    "fades of 4.8 frames": ("transition: {type: fade, duration: 0.3}\n", [81, 81, 81], [False] * 3),
    "a cut and a fade": ("transition: {type: fade, duration: 0.2}\n", [81, 41, 81], [False] * 3),
    "a chain after a fade": ("transition: {type: dissolve, duration: 0.45}\n", [81, 81, 81, 81],
                             [False, False, True, True]),
}


@pytest.mark.parametrize("case", sorted(LENGTHS))
def test_the_plans_film_length_is_the_stitched_films(tmp_path, case):
    """The plan says how long the film will be before any GPU work: exactly what the stitch will write
    (xfade starts each transition on a whole frame, so 0.3 s fades at 16 fps do not sum to whole frames)."""
    from fractions import Fraction

    from wanclip.media import ClipInfo
    from wanclip.planning.plan import plan_film
    from wanclip.stitch.graph import Cut, plan_stitch

    transition, frames, chained = LENGTHS[case]
    shots = "".join(f"  - name: s{i}\n    prompt: 镜头 {i}\n    frames: {n}\n" + ("    continue: true\n" if c else "")
                    + ("    transition: cut\n" if case == "a cut and a fade" and i == 1 else "")
                    for i, (n, c) in enumerate(zip(frames, chained, strict=True)))
    path = write_shots(tmp_path, f"title: 长度\nfps: 16\n{transition}shots:\n{shots}")
    plan = plan_film(path, out=tmp_path / "out")
    film = plan.film
    cuts = [Cut(t.type, t.duration, bool(plan.shots[i - 1].continues))
            for i, t in ((i, film.transition_into(i)) for i in range(2, len(frames) + 1))]
    clips = [ClipInfo(path=Path(f"/c/{i}.mp4"), frames=n, fps=Fraction(16), width=832, height=480, codec="h264",
                      profile="High", pix_fmt="yuv420p", sar="1:1", time_base="1/16384", has_audio=False)
             for i, n in enumerate(frames)]
    stitched = plan_stitch(clips, tmp_path / "film.mp4", cuts=cuts)
    assert plan.seconds == stitched.seconds == stitched.frames / 16


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
     "  - {name: b, prompt: q}\n", "line 3: shots[2] (b): the 0.5 s fade is as long as a clip it joins"),
    ("title: x\nframes: 5\ntransition: {type: fade, duration: 0.2}\nshots:\n  - {name: a, prompt: p}\n"
     "  - {name: b, prompt: q}\n  - {name: c, prompt: r}\n",
     "line 3: shots[2] (b): the transitions into and out of it (0.4 s together) are as long as the shot (0.3125 s)"),
    ("title: x\ntransition: {type: fade, duration: 0.01}\nshots:\n  - {name: a, prompt: p}\n"
     "  - {name: b, prompt: q}\n", "line 2: shots[2] (b): the 0.01 s fade into it lasts under one frame"),
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
    assert json.loads(result.stdout)["film"]["seconds"] == (2 * 81 - 4) / 16  # the 4.8-frame fade blends 4 whole frames


# -- refusals at plan time of what used to fail later, or as a traceback ---------------------------
def test_out_key_naming_an_existing_file_is_refused_with_its_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # `out:` is relative to where wanclip runs
    (tmp_path / "taken").write_text("not a folder")
    shots = write_shots(tmp_path, "title: x\nout: taken\nshots:\n  - {name: a, prompt: p}\n")
    result = run_cli("plan", shots)
    assert result.exit_code == 2
    assert f"{shots}: line 2: out: taken is a file, not a folder" in " ".join(result.stderr.split())
    assert (tmp_path / "taken").read_text() == "not a folder"


def test_out_option_under_an_existing_file_is_refused(tmp_path):
    (tmp_path / "taken").write_text("x")
    shots = write_shots(tmp_path, "title: x\nshots:\n  - {name: a, prompt: p}\n")
    result = run_cli("plan", shots, "--out", tmp_path / "taken" / "film")
    assert result.exit_code == 2
    assert f"--out: {tmp_path / 'taken'} is a file, not a folder" in " ".join(result.stderr.split())


@pytest.mark.parametrize("text,message", [
    ("title: x\nseed_base: 18446744073709551615\nshots:\n  - {name: a, prompt: p}\n",
     "line 2: seed_base: shot 1 (a) would get seed 18446744073709551616, past ComfyUI's noise_seed maximum"),
    ("title: x\ntransition: wipeleftt\nshots:\n  - {name: a, prompt: p}\n  - {name: b, prompt: q}\n",
     "line 2: transition.type: unknown transition 'wipeleftt' (did you mean 'wipeleft'"),
    ("title: x\nshots:\n  - {name: a, prompt: p}\n  - {name: a, prompt: q}\n",
     "line 4: shots[2] (a).name: shot names must be unique; shots[1] (line 3) is also 'a'"),
], ids=["seed-past-max", "transition-name", "duplicate-name"])
def test_plan_refuses_what_comfyui_or_the_stitch_would_refuse_later(tmp_path, text, message):
    result = run_cli("plan", write_shots(tmp_path, text), "--out", tmp_path / "out")
    assert result.exit_code == 2
    assert message in " ".join(result.stderr.split())
    assert not (tmp_path / "out").exists()


def test_a_shots_file_that_is_not_utf8_is_refused_not_a_traceback(tmp_path):
    shots = tmp_path / "film.yaml"
    shots.write_bytes("title: Café\nshots:\n  - {name: a, prompt: p}\n".encode("cp1252"))
    result = run_cli("plan", shots, "--out", tmp_path / "out")
    assert result.exit_code == 2
    assert f"{shots}: line 1 (byte 10): not UTF-8 text" in result.stderr
    assert "save it as UTF-8" in result.stderr


@pytest.mark.parametrize("arg", ["tomato_egg", "tomato_egg.yaml", "shots/tomato_egg.yaml"])
def test_an_example_is_found_by_name_outside_the_clone(tmp_path, monkeypatch, arg):
    monkeypatch.chdir(tmp_path)  # no shots/ folder here
    result = run_cli("plan", arg, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["film"]["title"] == "Tomato and Egg Stir-Fry"
    assert (tmp_path / "out" / "tomato-and-egg-stir-fry" / "graphs" / "01_ingredients.json").is_file()


def test_a_file_of_that_name_wins_over_the_example(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_shots(tmp_path, "title: Mine\nshots:\n  - {name: a, prompt: p}\n", "tomato_egg.yaml")
    result = run_cli("plan", "tomato_egg.yaml", "--json")
    assert json.loads(result.stdout)["film"]["title"] == "Mine"


@pytest.mark.parametrize("arg,message,hint", [
    ("tomato_eg", "tomato_eg: no such shots file", "did you mean the example tomato_egg?"),
    ("nothing/here.yaml", "here.yaml: no such shots file", "wanclip examples"),
])
def test_a_missing_shots_file_is_named_with_the_examples(tmp_path, monkeypatch, arg, message, hint):
    monkeypatch.chdir(tmp_path)
    result = run_cli("plan", arg)
    assert result.exit_code == 2
    assert message in result.stderr and hint in result.stderr


def test_a_folder_given_as_the_shots_file(tmp_path):
    result = run_cli("plan", ROOT / "shots")
    assert result.exit_code == 2
    assert "is a folder, not a shots file" in result.stderr and "tomato_egg.yaml" in result.stderr


def test_resolve_shots_file_is_the_one_rule_for_every_command(tmp_path, monkeypatch):
    from wanclip.planning.plan import resolve_shots_file, shipped_path

    monkeypatch.chdir(tmp_path)
    assert resolve_shots_file(Path("single_5s")) == shipped_path("shots", "single_5s.yaml")
    mine = write_shots(tmp_path, "title: x\n", "single_5s")
    assert resolve_shots_file(Path("single_5s")) == Path("single_5s") and mine.exists()


def test_plan_json_ends_with_one_error_event_when_refused(tmp_path):
    result = run_cli("plan", write_shots(tmp_path, "title: x\nshots: []\n"), "--json")
    assert result.exit_code == 2
    event = json.loads(result.stdout.splitlines()[-1])
    assert (event["event"], event["exit_code"]) == ("error", 2)
    assert "line 2: shots: the film has no shots" in event["error"]


def test_weight_dtype_sets_both_experts_and_a_typo_is_refused(tmp_path):
    """`weight_dtype: fp8_e4m3fn_fast` (faster sampling on Hopper, more numeric drift) reaches both
    experts' UNETLoader by role; unset keeps the graph's `default`; a typo names the choices."""
    from wanclip.planning.plan import plan_film

    fast = write_shots(tmp_path, "title: T\nweight_dtype: fp8_e4m3fn_fast\nshots:\n  - {name: a, prompt: x}\n")
    graph = plan_film(fast).shots[0].graph
    loaders = [n["inputs"]["weight_dtype"] for n in graph.values() if n["class_type"] == "UNETLoader"]
    assert loaders == ["fp8_e4m3fn_fast", "fp8_e4m3fn_fast"]
    plain = write_shots(tmp_path, "title: T\nshots:\n  - {name: a, prompt: x}\n", name="plain.yaml")
    graph = plan_film(plain).shots[0].graph
    assert {n["inputs"]["weight_dtype"] for n in graph.values() if n["class_type"] == "UNETLoader"} == {"default"}
    typo = write_shots(tmp_path, "title: T\nweight_dtype: fast\nshots:\n  - {name: a, prompt: x}\n", name="t.yaml")
    result = run_cli("plan", typo, "--out", tmp_path / "o")
    assert result.exit_code == 2 and "line 2" in result.stderr and "fp8_e4m3fn_fast" in result.stderr
