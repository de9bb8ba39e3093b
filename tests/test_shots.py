"""The shots file: lengths, sizes, seeds, transitions, and every bad input named with its fix."""

from __future__ import annotations

import pytest

from helpers import write_shots
from wanclip.errors import ShotsFileError
from wanclip.shots import frames_for_seconds, load_film

GOOD = """\
title: Test Film
seed_base: 10
style: warm light
shots:
  - name: one
    prompt: a tomato on a board
  - name: two
    prompt: an egg in a bowl
    seed: 99
    seconds: 10
    transition: cut
"""


@pytest.mark.parametrize("seconds,fps,frames", [(5, 16, 81), (10, 16, 161), (30, 16, 481), (5, 24, 121), (0.1, 16, 1)])
def test_seconds_convert_to_the_nearest_4n_plus_1(seconds, fps, frames):
    assert frames_for_seconds(seconds, fps) == frames


def test_film_defaults_and_per_shot_overrides(tmp_path):
    film = load_film(write_shots(tmp_path, GOOD))
    assert (film.fps, film.width, film.height) == (16.0, 832, 480)
    assert [film.shot_seed(1), film.shot_seed(2)] == [11, 99]
    assert [film.shot_frames(1), film.shot_frames(2)] == [81, 161]
    assert film.shot_prompt(1) == "a tomato on a board, warm light"
    assert film.transition_into(1) is None
    assert film.transition_into(2).type == "cut" and film.transition_into(2).overlap == 0
    assert film.slug == "test-film"


def test_long_shot_and_shared_seed_are_warnings_not_errors(tmp_path):
    film = load_film(write_shots(tmp_path, GOOD.replace("seed: 99", "seed: 11")))
    assert film.warnings() == [
        "shot two: 161 frames is past the 81 frames Wan 2.2 was trained on; quality may fall "
        "(splitting it into shots is safer)",
        "shots one, two share seed 11: they will start from the same noise",
    ]


def bad(tmp_path, text: str) -> ShotsFileError:
    with pytest.raises(ShotsFileError) as err:
        load_film(write_shots(tmp_path, text))
    return err.value


def test_frames_not_4n_plus_1_names_the_two_nearest(tmp_path):
    err = bad(tmp_path, GOOD.replace("seconds: 10", "frames: 80"))
    assert "line 10: shots[2] (two).frames: 80 frames is not 4n+1" in err.message
    assert err.message.endswith("use 77 or 81")


def test_size_not_multiple_of_16_names_the_nearest(tmp_path):
    err = bad(tmp_path, "width: 850\n" + GOOD)
    assert "line 1: width: 850 is not a multiple of 16: use 848 or 864" in err.message


def test_unknown_key_suggests_the_right_one(tmp_path):
    err = bad(tmp_path, GOOD.replace("seed: 99", "sed: 99"))
    assert "line 9: shots[2] (two).sed: unknown key 'sed' (did you mean 'seed'?)" in err.message
    assert "allowed keys here: name, prompt, seed" in err.hint


def test_yaml_syntax_error_gives_line_and_column(tmp_path):
    err = bad(tmp_path, "title: x\nshots:\n  - name: a\n   prompt: [unclosed\n")
    assert err.message.startswith(str(tmp_path / "film.yaml") + ": line 4, column")
    assert "YAML syntax error" in err.message


def test_empty_shot_list_is_refused(tmp_path):
    err = bad(tmp_path, "title: x\nshots: []\n")
    assert "line 2: shots: the film has no shots" in err.message


@pytest.mark.parametrize("name,fix", [("a/b", "'a-b'"), ("..", "'film'"), ("", "'film'"), ("Big Shot", "'big-shot'")])
def test_unsafe_shot_names_are_refused_with_a_slug(tmp_path, name, fix):
    err = bad(tmp_path, GOOD.replace("name: one", f"name: '{name}'"))
    assert "shots[1]" in err.message and "is not a slug" in err.message and f"write {fix}" in err.message


def test_duplicate_names_are_refused(tmp_path):
    err = bad(tmp_path, GOOD.replace("name: two", "name: one"))
    assert "shot names must be unique; repeated: one" in err.message


def test_seconds_and_frames_together_are_refused(tmp_path):
    err = bad(tmp_path, GOOD.replace("seconds: 10", "seconds: 10\n    frames: 81"))
    assert "give seconds or frames, not both" in err.message


def test_missing_prompt_says_what_to_add(tmp_path):
    err = bad(tmp_path, "title: x\nshots:\n  - name: a\n")
    assert "line 3: shots[1] (a).prompt: is required" in err.message and err.hint == "add `prompt:` here"


def test_not_a_mapping(tmp_path):
    assert "must be a mapping" in bad(tmp_path, "- just\n- a list\n").message


def test_unreadable_file(tmp_path):
    with pytest.raises(ShotsFileError, match="cannot read the shots file"):
        load_film(tmp_path / "missing.yaml")
