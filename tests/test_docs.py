"""The README's command reference is generated from --help; it fails here when it is stale."""

from __future__ import annotations

import importlib.util

from helpers import ROOT

spec = importlib.util.spec_from_file_location("gen_readme_reference", ROOT / "scripts" / "gen_readme_reference.py")
gen = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gen)


def test_readme_command_reference_is_current():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert gen.updated(text) == text, "README command reference is stale: run `make docs`"


def test_every_command_has_help():
    names = gen.command_names()
    assert {"plan", "render", "clip", "demo", "stitch", "setup", "doctor", "sim"} <= set(names)
    for name in names:
        body = gen.help_text([name])
        summary = body.split("\n\n")[1].strip()
        assert summary and not summary.startswith("Options"), f"`wanclip {name}` has no help text"


def test_readme_names_the_two_commands():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make demo" in text and "make test" in text
