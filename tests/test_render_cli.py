"""`wanclip render`, `clip` and `plan` as a new user meets them: the progress counter of a selection,
a mistyped --only, where the clip went, and exit codes that match --help."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import help_words, run_cli, write_shots

FILM = ("title: T\nwidth: 64\nheight: 64\nframes: 5\nseed_base: 100\ntransition: cut\nshots:\n"
        "  - {name: ingredients, prompt: 'one'}\n  - {name: eggs-in, prompt: 'two'}\n"
        "  - {name: eggs-out, prompt: 'three'}\n")


def test_only_counts_within_the_selection_and_says_which_shot_of_the_film_it_is(sim, tmp_path):
    """`--only eggs-out` printed [3/1]."""
    shots = write_shots(tmp_path, FILM)
    result = run_cli("render", shots, "--server", sim.url, "--out", tmp_path / "out", "--only", "eggs-out",
                     "--no-stitch")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.startswith("[")]
    assert lines and all(line.startswith("[1/1] eggs-out (shot 3 of 3): ") for line in lines), lines


def test_the_whole_film_counts_as_before(sim, tmp_path):
    result = run_cli("render", write_shots(tmp_path, FILM), "--server", sim.url, "--out", tmp_path / "out",
                     "--no-stitch")
    assert result.exit_code == 0, result.output
    counters = {line.split(":")[0] for line in result.stdout.splitlines()
                if line.startswith("[")}
    assert counters == {"[1/3] ingredients", "[2/3] eggs-in", "[3/3] eggs-out"}


def test_a_mistyped_only_is_refused_with_did_you_mean_and_the_shots_names(tmp_path):
    result = run_cli("render", write_shots(tmp_path, FILM), "--only", "egs-out", "--out", tmp_path / "out")
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "--only names no shot of this film: 'egs-out' (did you mean 'eggs-out'?)" in text
    assert "shots are: ingredients, eggs-in, eggs-out" in text
    assert not (tmp_path / "out").exists()


def test_clip_ends_with_the_absolute_path_it_wrote(sim, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_cli("clip", "a cat on a sofa", "--frames", "5", "--width", "64", "--height", "64",
                     "--server", sim.url, "--quiet")
    assert result.exit_code == 0, result.output
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("clip: /"), result.stdout
    clip = Path(last.removeprefix("clip: "))
    assert clip.is_absolute() and clip.is_file() and clip.is_relative_to(tmp_path.resolve())


def test_clip_json_summary_carries_the_absolute_path(sim, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_cli("clip", "a dog", "--frames", "5", "--width", "64", "--height", "64", "--server", sim.url,
                     "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.splitlines()[-1])
    assert summary["event"] == "summary" and Path(summary["clip"]).is_absolute() and Path(summary["clip"]).is_file()


@pytest.mark.parametrize("args", [["render", "{shots}"], ["clip", "a cat"]], ids=["render", "clip"])
def test_no_server_answering_exits_2_as_help_says(tmp_path, args):
    shots = write_shots(tmp_path, FILM)
    command = [a.replace("{shots}", str(shots)) for a in args]
    result = run_cli(*command, "--server", "http://127.0.0.1:9", "--out", tmp_path / "out")
    assert result.exit_code == 2, result.output
    words = help_words(args[0])
    two = words[words.index(" 2 "):]
    assert "no server answered" in two.split(" 130 ")[0], words  # listed under 2, not under 1


def test_plan_into_a_folder_it_cannot_write_is_bad_input(tmp_path):
    result = run_cli("plan", write_shots(tmp_path, FILM), "--out", "/proc/wanclip-film")
    assert result.exit_code == 2, result.output
    assert "choose another --out" in result.output
