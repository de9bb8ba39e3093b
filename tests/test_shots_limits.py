"""A hostile or mistaken shots file is refused at plan time, with file, line and field, in bounded time
and memory: YAML alias bombs, endless files, absurd numbers, booleans as numbers, duplicate keys."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from helpers import write_shots
from wanclip.errors import ShotsFileError
from wanclip.planning.shots import MAX_SHOTS_FILE_BYTES, load_film

GOOD = """\
title: Limits
shots:
  - name: one
    prompt: a tomato on a board
  - name: two
    prompt: an egg in a bowl
"""


def bad(tmp_path, text: str) -> str:
    with pytest.raises(ShotsFileError) as err:
        load_film(write_shots(tmp_path, text))
    return err.value.message


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path):
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True))
    message = bad(tmp_path, bomb + GOOD)  # refused at the first alias: nothing is ever expanded
    assert "line 2" in message and "alias" in message


def test_an_anchor_without_alias_is_still_refused_by_its_alias_use(tmp_path):
    text = GOOD.replace("prompt: a tomato on a board", "prompt: &p a tomato on a board").replace(
        "prompt: an egg in a bowl", "prompt: *p")
    assert "line 6" in bad(tmp_path, text)


def test_an_endless_file_is_refused_without_reading_it_all(tmp_path):
    r = subprocess.run([sys.executable, "-c", "from wanclip.planning.shots import load_film; load_film('/dev/zero')"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "larger than" in r.stderr
    big = tmp_path / "big.yaml"
    big.write_bytes(GOOD.encode() + b"#" * MAX_SHOTS_FILE_BYTES)
    with pytest.raises(ShotsFileError, match="larger than 1 MiB"):
        load_film(big)


def test_a_duplicate_key_is_an_error_at_its_second_line(tmp_path):
    text = GOOD.replace("    prompt: an egg in a bowl", "    prompt: an egg in a bowl\n    prompt: two eggs")
    message = bad(tmp_path, text)
    assert "line 7: shots[2] (two).prompt: 'prompt' is given twice (first at line 6)" in message


@pytest.mark.parametrize("key,value,words", [
    ("width", "100000", "at most 16384"),
    ("height", "0", "at least 16"),
    ("width", "-16", "at least 16"),
    ("fps", "0.001", "at least 1"),
    ("seconds", ".inf", "finite"),
    ("seconds", ".nan", "finite"),
    ("seconds", "1e9", "at most 16384 frames"),
    ("frames", "20001", "at most 16384"),
    ("seed_base", "true", "true/false is not a number"),
    ("fps", "yes", "true/false is not a number"),
])
def test_absurd_film_values_are_refused_with_line_and_field(tmp_path, key, value, words):
    message = bad(tmp_path, GOOD.replace("shots:\n", f"{key}: {value}\nshots:\n"))
    assert f"line 2: {key}:" in message and words in message, message


def test_a_boolean_seed_is_refused_on_the_shots_line(tmp_path):
    message = bad(tmp_path, GOOD.replace("    prompt: an egg in a bowl", "    prompt: an egg in a bowl\n    seed: true"))
    assert "line 7: shots[2] (two).seed:" in message and "true/false is not a number" in message


def test_a_whitespace_only_prompt_is_refused(tmp_path):
    message = bad(tmp_path, GOOD.replace("prompt: an egg in a bowl", "prompt: '   '"))
    assert "line 6: shots[2] (two).prompt:" in message and "empty" in message


def test_a_shot_level_error_points_at_the_shots_line_not_line_1(tmp_path):
    message = bad(tmp_path, GOOD.replace("    prompt: an egg in a bowl", "    prompt: an egg in a bowl\n    seconds: 5\n"
                                         "    frames: 81"))
    assert message.split(": ", 2)[1].startswith("line 8"), message  # the shot's frames: (its seconds: is line 7)
    assert "shots[2] (two).frames: give seconds or frames, not both (seconds is at line 7)" in message


def test_the_plan_command_refuses_a_bomb_with_exit_2(tmp_path):
    path = write_shots(tmp_path, "x: &x [1]\ny: [*x]\n" + GOOD)
    env = {**os.environ, "COLUMNS": "200"}
    r = subprocess.run([sys.executable, "-m", "wanclip", "plan", str(path)], capture_output=True, text=True,
                       timeout=120, env=env)
    assert r.returncode == 2 and "alias" in (r.stdout + r.stderr)
