"""`wanclip examples`: the shipped films, listed and copied out, from any folder."""

from __future__ import annotations

import json

from helpers import ROOT, run_cli


def test_examples_lists_every_shipped_film_with_its_length():
    result = run_cli("examples", "--json")
    assert result.exit_code == 0, result.output
    films = {f["name"]: f for f in json.loads(result.stdout)}
    assert sorted(films) == sorted(p.stem for p in (ROOT / "shots").glob("*.yaml"))
    assert films["tomato_egg"] == {"name": "tomato_egg", "title": "Tomato and Egg Stir-Fry", "shots": 12,
                                   "seconds": 57.5}  # 920 whole frames, as the film measures
    assert films["single_10s"]["seconds"] == round(161 / 16, 4)


def test_examples_table_says_how_to_use_one():
    result = run_cli("examples")
    assert result.exit_code == 0
    assert "tomato_egg" in result.stdout and "Tomato and Egg Stir-Fry" in result.stdout
    assert "57.50" in result.stdout
    assert "wanclip plan tomato_egg" in result.stdout and "wanclip examples copy NAME" in result.stdout


def test_copy_writes_the_example_here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_cli("examples", "copy", "tomato_egg")
    assert result.exit_code == 0, result.output
    copied = tmp_path / "tomato_egg.yaml"
    assert copied.read_bytes() == (ROOT / "shots" / "tomato_egg.yaml").read_bytes()
    assert "tomato_egg.yaml" in result.stdout
    assert run_cli("plan", copied, "--json").exit_code == 0


def test_copy_into_a_folder_or_to_a_name(tmp_path):
    (tmp_path / "films").mkdir()
    assert run_cli("examples", "copy", "single_5s.yaml", tmp_path / "films").exit_code == 0
    assert (tmp_path / "films" / "single_5s.yaml").is_file()
    assert run_cli("examples", "copy", "single_5s", tmp_path / "mine.yaml").exit_code == 0
    assert (tmp_path / "mine.yaml").is_file()


def test_copy_never_overwrites(tmp_path):
    dest = tmp_path / "tomato_egg.yaml"
    dest.write_text("my edits")
    result = run_cli("examples", "copy", "tomato_egg", dest)
    assert result.exit_code == 2
    assert f"{dest} already exists" in " ".join(result.stderr.split())
    assert dest.read_text() == "my edits"


def test_copy_of_an_unknown_example_names_the_close_one(tmp_path):
    result = run_cli("examples", "copy", "tomato", tmp_path / "x.yaml", "--json")
    assert result.exit_code == 2
    event = json.loads(result.stdout.splitlines()[-1])
    assert event["event"] == "error" and event["exit_code"] == 2
    assert "no example named 'tomato'" in event["error"] and "tomato_egg" in event["hint"]
    assert not (tmp_path / "x.yaml").exists()
