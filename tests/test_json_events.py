"""`--json` as a script reads it: every line an event with a `time` that is a timestamp, and a last
line that says how the run ended (exit_code), whether it rendered, refused or was stopped."""

from __future__ import annotations

import json
import time

import pytest

from helpers import run_cli, write_shots

TWO_SHOTS = ("title: T\nwidth: 64\nheight: 64\nframes: 5\nseed_base: 100\n"
             "shots:\n  - {name: a, prompt: 'one'}\n  - {name: b, prompt: 'two'}\n")


def json_lines(result) -> list[dict]:
    return [json.loads(line) for line in result.stdout.splitlines()]


def assert_stamped(event: dict, since: float) -> None:
    """``time`` is the second key, a number of Unix seconds between ``since`` and now."""
    assert list(event)[:2] == ["event", "time"], event
    assert isinstance(event["time"], float | int) and not isinstance(event["time"], bool), event
    assert since - 1 <= event["time"] <= time.time() + 1, event


def test_every_render_event_and_the_summary_carry_a_timestamp_and_the_summary_its_seconds(sim, tmp_path):
    since = time.time()
    result = run_cli("render", write_shots(tmp_path, TWO_SHOTS), "--server", sim.url, "--out", tmp_path / "out",
                     "--json")
    assert result.exit_code == 0, result.output
    events = json_lines(result)
    for event in events:
        assert_stamped(event, since)
    summary = events[-1]
    assert summary["event"] == "summary" and summary["exit_code"] == 0
    # the durations, per part of the work, moved out of `time` into `seconds`
    assert isinstance(summary["seconds"], dict) and summary["seconds"]["sampling"] >= 0


@pytest.mark.parametrize("args", [
    ["render", "nope.yaml", "--json"],
    ["render", "nope.yaml", "--json", "--timeout", "0"],  # refused by the option's own check
    ["render", "nope.yaml", "--json", "--no-such-option"],
    ["render", "--json"],  # no shots file at all
    ["clip", "a cat", "--frames", "80", "--json"],
    ["clip", "a cat", "--json", "--width", "wide"],
    ["plan", "nope.yaml", "--json"],
    ["stitch", "--json"],
    ["stitch", "a.mp4", "--crf", "best", "--json"],
    ["demo", "--shots", "nope.yaml", "--json"],
    ["doctor", "--workflow", "nope.json", "--server", "http://127.0.0.1:9", "--json"],
    ["setup", "--models-dir", "/proc/wanclip-models", "--json"],
], ids=lambda args: " ".join(args))
def test_a_refusal_with_json_ends_with_a_stamped_error_event_carrying_exit_code_2(args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    since = time.time()
    result = run_cli(*args)
    assert result.exit_code == 2, result.output
    last = json_lines(result)[-1]
    assert last["event"] == "error" and last["exit_code"] == 2 and last["error"], last
    assert_stamped(last, since)


def test_ctrl_c_during_a_stitch_with_json_ends_with_a_stamped_interrupted_event(tmp_path, monkeypatch):
    """The Ctrl-C event had no `time` at all."""
    from wanclip.stitch import join

    def pressed_ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(join, "stitch_film", pressed_ctrl_c)
    (tmp_path / "film").mkdir()
    (tmp_path / "film" / "ledger.json").write_text('{"version": 1, "film": {"title": "t"}, "shots": []}')
    since = time.time()
    result = run_cli("stitch", "--from", tmp_path / "film", "--json")
    assert result.exit_code == 130
    [event] = json_lines(result)
    assert (event["event"], event["exit_code"], event["error"]) == ("error", 130, "interrupted")
    assert_stamped(event, since)
