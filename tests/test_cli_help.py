"""Every command's --help as a new user reads it: metavars, not Python types; exit codes; the same
short options everywhere; the command list whole at 80 columns; and no ``1 shots`` in the output."""

from __future__ import annotations

import json
import re

import pytest
from typer.main import get_command

from helpers import BOX, ROOT, help_words, run_cli, write_shots
from wanclip.cli.app import app

COMMANDS = ["plan", "render", "clip", "demo", "review", "stitch", "examples", "setup", "doctor", "serve", "sim"]
EVERY = [[c] for c in COMMANDS] + [["examples", "copy"]]
PYTHON_TYPES = re.compile(r"<(path|int|float|str|bool|text|list\[[^\]]*\]|[a-z]+ range)>|x<=|<=x")


def command(*names: str):
    found = get_command(app)
    for name in names:
        found = found.commands[name]
    return found


@pytest.mark.parametrize("columns", ["80", "120"])
@pytest.mark.parametrize("args", EVERY, ids=" ".join)
def test_help_shows_metavars_not_python_types(args, columns):
    result = run_cli(*args, "--help", env={"COLUMNS": columns})
    assert result.exit_code == 0, result.output
    assert not PYTHON_TYPES.search(result.output), PYTHON_TYPES.search(result.output).group()
    usage = next(line for line in result.output.splitlines() if "Usage:" in line)
    assert not re.search(r"\{\w+\}|[a-z]_[a-z]", usage), usage  # SHOTS_FILE, not {shots_file}
    assert max(len(line) for line in result.output.splitlines()) <= int(columns)


@pytest.mark.parametrize("args", EVERY, ids=" ".join)
def test_every_option_that_takes_a_value_names_it(args):
    for param in command(*args).params:
        takes_value = not getattr(param, "is_flag", False) and not getattr(param, "count", False)
        if takes_value:
            assert param.metavar and param.metavar == param.metavar.strip(), (args, param.name)


@pytest.mark.parametrize("args", EVERY, ids=" ".join)
def test_help_documents_the_exit_codes(args):
    text = help_words(*args)
    assert re.search(r"Exit codes?: \d", text), f"`wanclip {' '.join(args)} --help` gives no exit codes"


def test_long_running_commands_document_interrupts():
    for name in ("render", "clip", "demo", "stitch", "setup", "serve", "sim"):
        assert "130 Ctrl-C, 143 SIGTERM" in help_words(name), name


def test_the_command_list_is_whole_at_80_columns():
    result = run_cli("--help", env={"COLUMNS": "80"})
    rows = {}
    for line in result.output.translate(BOX).splitlines():
        words = line.split(maxsplit=1)
        if words and words[0] in COMMANDS and len(words) == 2:
            rows[words[0]] = words[1].strip()
    assert sorted(rows) == sorted(COMMANDS)
    for name, summary in rows.items():  # the row is the docstring's whole first sentence, on one line
        first = command(name).help.split("\n\n")[0]
        assert summary == first and not summary.endswith("..."), name


def test_server_is_s_and_repeatable_wherever_a_server_is_taken():
    for name in ("render", "clip", "doctor"):
        option = next(p for p in command(name).params if p.name == "server")
        assert option.opts == ["--server", "-s"] or set(option.opts) == {"--server", "-s"}
        assert option.multiple and option.metavar == "URL", name
        assert "--server -s URL" in help_words(name) and "repeat" in help_words(name)


def test_doctor_takes_s_twice_and_checks_both():
    result = run_cli("doctor", "-s", "http://127.0.0.1:9", "-s", "http://127.0.0.1:9/other", "--json")
    assert result.exit_code == 1
    servers = [json.loads(line)["server"] for line in result.stdout.splitlines()]
    assert len(servers) == 2


def test_quiet_and_json_mean_the_same_everywhere():
    for name in ("render", "clip", "demo", "stitch", "setup"):
        assert "--quiet -q" in help_words(name), name
    for args in EVERY:
        if args != ["sim"]:
            assert "--json" in help_words(*args), args


@pytest.fixture
def one_shot(tmp_path):
    return write_shots(tmp_path, "title: One\nwidth: 256\nheight: 256\nframes: 9\nseed_base: 1\n"
                                 "shots:\n  - {name: only, prompt: 'a cup of tea on a table, static camera'}\n")


def test_one_shot_is_one_shot_not_one_shots(tmp_path, one_shot):
    planned = run_cli("plan", one_shot, "--out", tmp_path / "planned")
    assert planned.exit_code == 0, planned.output
    assert "1 shot," in planned.stdout
    demo = run_cli("demo", "--shots", one_shot, "--out", tmp_path / "film", "--load-seconds", "0",
                   "--step-seconds", "0")
    assert demo.exit_code == 0, demo.output
    assert "(1 shot)" in demo.stdout and "1/1 shot done" in demo.stdout
    assert not re.search(r"\b1 (shots|clips|checks|files)\b", demo.output)
    stitched = run_cli("stitch", "--from", tmp_path / "film", "-o", tmp_path / "again.mp4", "-q")
    assert stitched.exit_code == 0, stitched.output
    assert ": 1 clip," in stitched.stdout


def test_demo_quiet_prints_only_the_summary(tmp_path, one_shot):
    result = run_cli("demo", "-q", "--shots", one_shot, "--out", tmp_path / "film", "--load-seconds", "0",
                     "--step-seconds", "0")
    assert result.exit_code == 0, result.output
    assert "simulated ComfyUI on" not in result.stdout and "render summary" in result.stdout


def test_cli_messages_never_hedge_a_plural():
    for path in (ROOT / "src" / "wanclip" / "cli").glob("*.py"):
        assert not re.search(r"\w\(s\)", path.read_text(encoding="utf-8")), path.name


@pytest.mark.parametrize("args", [["review", ".", "--port", "70000"], ["review", ".", "--port", "-1"],
                                  ["setup", "--workers", "-1"]], ids=" ".join)
def test_a_number_out_of_range_is_refused_with_its_range(args):
    result = run_cli(*args)
    assert result.exit_code == 2
    assert re.search(r"between 0 and 65535|0 or more", " ".join(result.output.translate(BOX).split()))


def test_the_cli_overrides_no_private_typer_method():
    """typer's underscore methods change without notice (typer is bounded in pyproject.toml to the
    minor version tested); what the help needs goes through public hooks."""
    from wanclip.cli import base

    for cls in (base._Argument, base._Option):
        private = [name for name, value in vars(cls).items()
                   if name.startswith("_") and not name.startswith("__") and callable(value)]
        assert private == [], (cls.__name__, private)


def test_typer_is_bounded_to_the_minor_version_tested():
    """The help still relies on typer's public-but-undocumented rich hooks (display_type_rich,
    get_usage_pieces, display_name_raw): pyproject bounds typer to the minor version they were tested
    on, and the installed typer is inside that bound."""
    from importlib.metadata import version

    spec = re.search(r'"typer>=([\d.]+),<([\d.]+)"', (ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert spec, "pyproject.toml: typer needs a floor and a ceiling"
    floor, ceiling = spec.groups()
    installed = tuple(int(p) for p in version("typer").split(".")[:3])
    assert tuple(map(int, floor.split("."))) <= installed < tuple(map(int, ceiling.split(".")))
    from typer.core import TyperArgument, TyperOption
    for cls, hooks in ((TyperArgument, ("display_type_rich", "get_usage_pieces", "display_name_raw")),
                       (TyperOption, ("display_type_rich",))):
        assert all(hasattr(cls, hook) for hook in hooks), cls
