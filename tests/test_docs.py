"""The README against the code: the command reference is generated from --help (it fails here when it
is stale), and the examples a user would copy are run."""

from __future__ import annotations

import importlib.util
import re

from helpers import ROOT, run_cli

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


# --- the README's examples, checked against the code ----------------------------------------------

def readme() -> str:
    return (ROOT / "README.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    return readme().split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def code_blocks(text: str) -> list[str]:
    return re.findall(r"```[a-z]*\n(.*?)```", text, re.S)


def words(text: str) -> str:
    return " ".join(text.split())


def test_the_walkthroughs_plan_line_is_what_plan_prints(tmp_path):
    [line] = [b.strip() for b in code_blocks(section("Walkthrough: the 12-shot tomato-and-egg film"))
              if b.strip().startswith("film: ")]
    result = run_cli("plan", "tomato_egg", "--out", tmp_path / "film")
    assert result.exit_code == 0, result.output
    assert words(line) in words(result.stdout)


def test_the_shots_file_refusal_example_is_what_plan_prints(tmp_path, monkeypatch):
    blocks = code_blocks(section("The shots file"))
    [shots] = [b for b in blocks if b.startswith("# film.yaml\n")]
    [shown] = [b for b in blocks if b.startswith("$ wanclip plan film.yaml\n")]
    (tmp_path / "film.yaml").write_text(shots, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    result = run_cli("plan", "film.yaml")
    assert result.exit_code == 2
    assert words(shown.split("\n", 1)[1]) in words(result.stderr)


def test_the_shots_file_table_names_every_key():
    from wanclip.planning.shots import Film, Shot

    table = section("The shots file").split("| key | where | meaning |", 1)[1].split("\n\n", 1)[0]
    named = set(re.findall(r"`([a-z_0-9]+)`", "\n".join(row.split("|")[1] for row in table.splitlines()[2:])))
    keys = {field.alias or name for model in (Film, Shot) for name, field in model.model_fields.items()}
    assert keys - named == set(), "README's shots file table misses these keys"


def test_the_readme_names_every_environment_variable():
    used = set()
    for path in (ROOT / "src" / "wanclip").rglob("*.py"):
        used |= set(re.findall(r"\b(WANCLIP_[A-Z_]+)\b", path.read_text(encoding="utf-8")))
    assert used and {name for name in used if f"`{name}" not in readme()} == set()


def test_the_readme_points_at_no_file_a_user_does_not_have():
    outside_benchmarks = re.sub(r"<!-- bench:start -->.*?<!-- bench:end -->", "", readme(), flags=re.S)
    assert "../shared/" not in outside_benchmarks and "issue 1" not in outside_benchmarks
