"""An error about one shot, or one transition, points at that shot's or transition's own line (they
pointed at line 1, the top of the file, where nothing is wrong)."""

from __future__ import annotations

import pytest

from helpers import run_cli, write_shots

HEAD = "title: T\nfps: 16\n"


def plan_error(tmp_path, text: str) -> str:
    result = run_cli("plan", write_shots(tmp_path, text), "--out", tmp_path / "out")
    assert result.exit_code == 2, result.output
    return " ".join(result.output.split())


@pytest.mark.parametrize("text,line,words", [
    # the film's default transition (no `transition:` key) is longer than shot b: b's line
    (HEAD + "shots:\n  - name: a\n    prompt: one\n  - name: b\n    prompt: two\n    frames: 1\n", 6,
     "shots[2] (b): the 0.3 s fade (the default transition) is as long as a clip it joins"),
    # the same with the film's own `transition:`: its line, as before
    (HEAD + "transition: {type: fade, duration: 0.3}\nshots:\n  - name: a\n    prompt: one\n  - name: b\n"
     "    prompt: two\n    frames: 1\n", 3, "shots[2] (b): the 0.3 s fade is as long as a clip it joins"),
    # two transitions eat a short shot in the middle: that shot's line
    (HEAD + "shots:\n  - name: a\n    prompt: one\n  - name: b\n    prompt: two\n    frames: 5\n"
     "  - name: c\n    prompt: three\n", 6, "shots[2] (b): the transitions into and out of it"),
    # a shot's own transition: its line
    (HEAD + "shots:\n  - name: a\n    prompt: one\n  - name: b\n    prompt: two\n    frames: 1\n"
     "    transition: {type: fade, duration: 0.2}\n", 9, "shots[2] (b): the 0.2 s fade is as long"),
    # a shot's own transition under one frame: its line
    (HEAD + "shots:\n  - name: a\n    prompt: one\n  - name: b\n    prompt: two\n"
     "    transition: {type: fade, duration: 0.01}\n", 8, "shots[2] (b): the 0.01 s fade into it lasts under"),
], ids=["default transition", "film transition", "both sides", "own transition", "under a frame"])
def test_a_transition_error_points_at_the_shot_or_its_transition(tmp_path, text, line, words):
    error = plan_error(tmp_path, text)
    assert f"line {line}: {words}" in error, error


def test_seconds_and_frames_in_one_shot_point_at_that_shot(tmp_path):
    error = plan_error(tmp_path, HEAD + "shots:\n  - name: a\n    prompt: one\n  - name: b\n    prompt: two\n"
                                        "    seconds: 5\n    frames: 81\n")
    assert "line 9: shots[2] (b).frames: give seconds or frames, not both (seconds is at line 8)" in error, error


@pytest.mark.parametrize("text,line,words", [
    (HEAD + "seconds: 5\nframes: 81\nshots:\n  - name: a\n    prompt: one\n", 4,
     "frames: give seconds or frames, not both (seconds is at line 3)"),
    (HEAD + "steps: 4\nswitch_step: 9\nshots:\n  - name: a\n    prompt: one\n", 4,
     "switch_step: switch_step 9 is past steps 4 (line 3)"),
], ids=["seconds and frames", "switch_step"])
def test_a_film_level_error_points_at_its_key_not_line_1(tmp_path, text, line, words):
    error = plan_error(tmp_path, text)
    assert f"line {line}: {words}" in error, error
