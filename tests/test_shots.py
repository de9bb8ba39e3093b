"""The shots file: lengths, sizes, seeds, transitions, and every bad input named with its fix."""

from __future__ import annotations

import pytest

from helpers import write_shots
from wanclip.errors import ShotsFileError
from wanclip.planning.shots import frames_for_seconds, load_film

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


@pytest.mark.parametrize("name,fix", [("a/b", "'a-b'"), ("..", "'shot'"), ("", "'shot'"), ("Big Shot", "'big-shot'")])
def test_unsafe_shot_names_are_refused_with_a_slug(tmp_path, name, fix):
    err = bad(tmp_path, GOOD.replace("name: one", f"name: '{name}'"))
    assert "shots[1]" in err.message and "is not a slug" in err.message and f"write {fix}" in err.message


def test_duplicate_names_are_refused(tmp_path):
    err = bad(tmp_path, GOOD.replace("name: two", "name: one"))
    assert "shot names must be unique" in err.message and err.hint == "give this shot another name"


def test_seconds_and_frames_together_are_refused(tmp_path):
    err = bad(tmp_path, GOOD.replace("seconds: 10", "seconds: 10\n    frames: 81"))
    assert "give seconds or frames, not both" in err.message


def test_missing_prompt_says_what_to_add(tmp_path):
    err = bad(tmp_path, "title: x\nshots:\n  - name: a\n")
    assert "line 3: shots[1] (a).prompt: is required" in err.message and err.hint == "add `prompt:` here"


def test_not_a_mapping(tmp_path):
    assert "must be a mapping" in bad(tmp_path, "- just\n- a list\n").message


def test_missing_file(tmp_path):
    with pytest.raises(ShotsFileError, match="missing.yaml: no such shots file") as err:
        load_film(tmp_path / "missing.yaml")
    assert "wanclip examples" in err.value.hint


# -- refusals that used to be tracebacks, or were found only after the GPU work ------------------
def test_duplicate_name_points_at_the_second_occurrence(tmp_path):
    err = bad(tmp_path, GOOD.replace("name: two", "name: one"))
    assert "line 7: shots[2] (one).name: shot names must be unique" in err.message
    assert "shots[1] (line 5) is also 'one'" in err.message


def test_a_file_that_is_not_utf8_names_the_line_and_byte(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(GOOD.replace("an egg", "an \xe9gg").encode("latin-1"))
    with pytest.raises(ShotsFileError) as err:
        load_film(path)
    offset = GOOD.index("an egg") + 3
    assert err.value.message.startswith(f"{path}: line 8 (byte {offset}): not UTF-8 text")
    assert err.value.hint.startswith("save it as UTF-8")


def test_a_utf8_byte_order_mark_is_fine(tmp_path):
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + GOOD.encode("utf-8"))
    assert load_film(path).title == "Test Film"


def test_a_folder_is_not_a_shots_file(tmp_path):
    (tmp_path / "films").mkdir()
    write_shots(tmp_path / "films", GOOD, "a.yaml")
    with pytest.raises(ShotsFileError) as err:
        load_film(tmp_path / "films")
    assert err.value.message == f"{tmp_path / 'films'}: is a folder, not a shots file"
    assert "a.yaml" in err.value.hint


SEED_MAX = 2**64 - 1


def test_seed_base_past_comfyuis_noise_seed_max_is_refused_at_its_line(tmp_path):
    err = bad(tmp_path, GOOD.replace("seed_base: 10", f"seed_base: {SEED_MAX}"))
    assert f"line 2: seed_base: shot 1 (one) would get seed {SEED_MAX + 1}" in err.message
    assert f"past ComfyUI's noise_seed maximum {SEED_MAX}" in err.message
    assert f"use a seed_base of at most {SEED_MAX - 1}" in err.hint


def test_seed_base_is_fine_when_every_shot_past_the_max_has_its_own_seed(tmp_path):
    text = GOOD.replace("seed_base: 10", f"seed_base: {SEED_MAX - 1}")
    film = load_film(write_shots(tmp_path, text))
    assert [film.shot_seed(1), film.shot_seed(2)] == [SEED_MAX, 99]


def test_a_shots_own_seed_past_the_max_is_refused_at_its_line(tmp_path):
    err = bad(tmp_path, GOOD.replace("seed: 99", f"seed: {SEED_MAX + 1}"))
    assert f"line 9: shots[2] (two).seed: {SEED_MAX + 1} is past ComfyUI's noise_seed maximum" in err.message


@pytest.mark.parametrize("where,text,line,field", [
    ("film", "transition: {type: fdae, duration: 0.3}\n", 1, "transition.type"),
    ("shot", None, 11, "shots[2] (two).transition.type"),
], ids=["film", "shot"])
def test_an_unknown_transition_is_refused_with_did_you_mean(tmp_path, where, text, line, field):
    source = text + GOOD if text else GOOD.replace("transition: cut", "transition: fdae")
    err = bad(tmp_path, source)
    assert f"line {line}: {field}: unknown transition 'fdae' (did you mean 'fade'?)" in err.message


@pytest.mark.parametrize("name", ["fade", "dissolve", "circleopen", "revealdown", "cut"])
def test_every_xfade_name_and_cut_are_accepted(tmp_path, name):
    film = load_film(write_shots(tmp_path, GOOD.replace("transition: cut", f"transition: {name}")))
    assert film.transition_into(2).type == name
