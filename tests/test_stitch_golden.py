"""Our filtergraph builder builds exactly the ffmpeg commands ffmpeg-python built (issue 18).

The golden files were recorded from commit e80e706's code (ffmpeg-python 0.2.0) by
``scripts/record_stitch_golden.py``, for the films of ``stitch_golden_cases.py``: the same argv,
filtergraph text included, means the same film, frame for frame (a one-off comparison of crf-0
framemd5s on ffmpeg 7.0.2 and the wheel's is in the commit that replaced ffmpeg-python).
"""

from __future__ import annotations

import json

import pytest

from stitch_golden_cases import FILMS, GOLDEN, PIECES, Api, film_argv, pieces_argv
from wanclip.media import ClipInfo
from wanclip.stitch import layout
from wanclip.stitch.contact_sheet import thumb_picks, thumb_size
from wanclip.stitch.filtergraph import FilterGraph, Output, Stream
from wanclip.stitch.graph import Cut, plan_stitch

API = Api(ClipInfo, Cut, plan_stitch, layout.layout, layout.piece_argv, layout.Encoder, thumb_picks, thumb_size)


def golden(name: str):
    return json.loads((GOLDEN / f"{name}.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", sorted(FILMS))
def test_the_one_graph_is_the_command_ffmpeg_python_built(name):
    assert film_argv(API, FILMS[name]) == golden(name)


@pytest.mark.parametrize("name", sorted(PIECES))
def test_every_piece_and_its_thumbnails_is_the_command_ffmpeg_python_built(name):
    assert pieces_argv(API, PIECES[name]) == golden(name)


def test_every_golden_file_has_its_case():
    assert {p.stem for p in GOLDEN.glob("*.json")} == set(FILMS) | set(PIECES)


def test_values_are_escaped_for_the_filter_then_for_the_graph():
    graph = FilterGraph()
    index = graph.input("/a b/it's.mp4")
    video = Stream(f"{index}:v")
    out = graph.filter(video, "drawtext", "x", text="a:b=c, [d]; 'e' \\f")
    assert graph.text == r"[0:v]drawtext=x:text=a\\:b\\=c\, \[d\]\; \\\'e\\\' \\\\f[s0]"
    assert graph.argv("ffmpeg", [Output([out], ["-f", "null"], "-")]) == [
        "ffmpeg", "-i", "/a b/it's.mp4", "-filter_complex", graph.text, "-map", "[s0]", "-f", "null", "-",
        "-y", "-hide_banner", "-nostdin"]
