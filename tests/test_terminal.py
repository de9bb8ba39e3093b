"""Text from a shots file or a server reaches the terminal with its control characters made visible
and never as rich markup: a prompt could set the terminal's title, clear the screen or write the
clipboard (OSC 52) when `plan` printed it, and `[red]` in a prompt was eaten as markup."""

from __future__ import annotations

import json

from helpers import run_cli, write_shots

HOSTILE = '"\\e]0;OWNED\\a\\e[2J\\e]52;c;ZWNobyBoaQ==\\a [red]as written[/red] \\u202eevil"'


def shots(tmp_path, prompt: str = HOSTILE, title: str = '"Film \\e[31m[red]番茄炒蛋[/red]"', extra: str = ""):
    return write_shots(tmp_path, f"title: {title}\nwidth: 64\nheight: 64\nframes: 5\nshots:\n"
                                 f"  - name: one\n    prompt: {prompt}\n{extra}")


def assert_inert(text: str) -> None:
    for char in ("\x1b", "\x07", "\u202e"):
        assert char not in text, repr(char)


def test_plan_prints_a_hostile_prompt_and_title_visibly_and_never_as_markup(tmp_path):
    result = run_cli("plan", shots(tmp_path), "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert_inert(result.output)
    assert "Film \\x1b[31m[red]番茄炒蛋[/red]" in result.stdout  # visible, and not taken as markup
    assert "\\x1b]0;" in result.stdout  # the prompt's escape, visible (the table may cut the rest)
    as_json = run_cli("plan", shots(tmp_path), "--out", tmp_path / "out", "--json").stdout
    assert "\x1b" not in as_json and json.loads(as_json)["film"]["title"] == "Film \x1b[31m[red]番茄炒蛋[/red]"


def test_an_error_quoting_the_file_shows_its_control_characters(tmp_path):
    bad = write_shots(tmp_path, 'title: x\nshots:\n  - name: one\n    prompt: p\n    "sed\\e[2J": 1\n')
    result = run_cli("plan", bad, "--out", tmp_path / "out")
    assert result.exit_code == 2 and "unknown key" in result.stderr
    assert_inert(result.output)
    assert "\\x1b[2J" in result.stderr


def test_render_shows_a_servers_error_message_visibly(sim, tmp_path):
    """A failure message comes from the server (here: the shots file's hostile prompt is echoed by the
    simulator's test card only, so the check is the progress and summary path as a whole)."""
    result = run_cli("render", shots(tmp_path), "-s", sim.url, "--out", tmp_path / "out", "--no-stitch")
    assert result.exit_code == 0, result.output
    assert_inert(result.output)
