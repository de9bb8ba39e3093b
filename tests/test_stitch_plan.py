"""plan_stitch() is pure: the ffmpeg command and the film's length, decided from measured clips."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from wanclip.errors import StitchError
from wanclip.media import ClipInfo
from wanclip.planning import timeline
from wanclip.stitch.graph import Cut, concat_list_text, plan_stitch


def clip(name: str, frames: int, fps: int = 16, size=(832, 480), pix_fmt="yuv420p") -> ClipInfo:
    return ClipInfo(path=Path("/films") / name, frames=frames, fps=Fraction(fps), width=size[0], height=size[1],
                    codec="h264", profile="High", pix_fmt=pix_fmt, sar="1:1", time_base="1/16384",
                    has_audio=False)


def test_offsets_are_cumulative_on_the_film_so_far():
    clips = [clip(f"{n}.mp4", n) for n in (49, 81, 65, 33)]
    plan = plan_stitch(clips, Path("film.mp4"), cuts=[Cut("fade", 0.3125)] * 3)
    assert plan.offsets == [2.75, 7.5, 11.25]
    assert (plan.frames, plan.seconds) == (213, 13.3125)
    assert "xfade=duration=0.3125:offset=7.5:transition=fade" in " ".join(plan.argv)


def test_hard_cuts_add_no_overlap_and_use_the_concat_filter():
    clips = [clip(f"{i}.mp4", 81) for i in range(3)]
    plan = plan_stitch(clips, Path("film.mp4"), cuts=[Cut("cut", 0), Cut("wipeleft", 0.5)])
    assert plan.offsets == [None, 9.625]
    assert plan.frames == 3 * 81 - 8
    graph = plan.argv[plan.argv.index("-filter_complex") + 1]
    assert "concat=a=0:n=2:v=1" in graph and "xfade=duration=0.5:offset=9.625:transition=wipeleft" in graph


def test_every_input_is_normalised_to_the_first_clips_size_and_rate():
    plan = plan_stitch([clip("a.mp4", 81), clip("b.mp4", 121, fps=24, size=(640, 368))], Path("film.mp4"))
    graph = plan.argv[plan.argv.index("-filter_complex") + 1]
    assert graph.count("fps=fps=16") == 2 and graph.count("settb=AVTB") == 2
    assert "scale=832:480:force_original_aspect_ratio=decrease" in graph
    assert plan.frames == 158  # 121 frames at 24 fps become 81 at 16; ceil(81 + 81 - 4.8)


def test_the_same_clip_twice_is_split_not_merged():
    a = clip("a.mp4", 81)
    plan = plan_stitch([a, clip("b.mp4", 81), a], Path("film.mp4"), cuts=[Cut("fade", 0.3125)] * 2)
    assert plan.argv.count("-i") == 2
    assert "split" in plan.argv[plan.argv.index("-filter_complex") + 1]


def test_film_is_written_to_part_first():
    plan = plan_stitch([clip("a.mp4", 81)], Path("out/film.mp4"))
    assert plan.argv[plan.argv.index("-f") + 1] == "mp4"
    assert "out/film.mp4.part" in plan.argv


def test_concat_list_quotes_survive_spaces_quotes_and_non_ascii():
    text = concat_list_text([clip("it's a shot é.mp4", 81)])
    assert text == "ffconcat version 1.0\nfile '/films/it'\\''s a shot é.mp4'\nduration 5.062500\n"


def test_concat_mode_copies_only_matching_clips():
    same = plan_stitch([clip("a.mp4", 81), clip("b.mp4", 81)], Path("film.mp4"), mode="concat")
    assert (same.mode, same.frames) == ("concat-copy", 162)
    assert ["-f", "concat", "-safe", "0"] == same.argv[same.argv.index("-f"):same.argv.index("-f") + 4]
    mixed = plan_stitch([clip("a.mp4", 81), clip("b.mp4", 81, pix_fmt="yuv444p")], Path("film.mp4"),
                        mode="concat")
    assert mixed.mode == "concat-filter"
    assert mixed.notes == ["re-encoded through the concat filter: b.mp4 differs from a.mp4 in pixel format "
                           "(yuv444p vs yuv420p)"]


@pytest.mark.parametrize("seconds, message", [
    (6.0, "transitions of 6 s are longer than clip a.mp4 (5.0625 s, 81 frames)"),
    (0.01, "lasts 0.01 s, under one frame at 16 fps"),
])
def test_impossible_transitions_are_refused(seconds, message):
    with pytest.raises(StitchError, match=message.replace("(", r"\(").replace(")", r"\)")):
        plan_stitch([clip("a.mp4", 81), clip("b.mp4", 81)], Path("film.mp4"), cuts=[Cut("fade", seconds)])


def test_two_fades_eating_a_whole_middle_clip_are_refused():
    clips = [clip("a.mp4", 81), clip("short.mp4", 9), clip("c.mp4", 81)]
    with pytest.raises(StitchError, match="longer than clip short.mp4"):
        plan_stitch(clips, Path("film.mp4"), cuts=[Cut("fade", 0.3)] * 2)


def test_unknown_output_container_is_refused():
    with pytest.raises(StitchError, match="cannot write a film named film.gif"):
        plan_stitch([clip("a.mp4", 81)], Path("film.gif"))


# --- chains: a continued clip's first frame is its predecessor's last, and is dropped ------------

def test_the_film_length_formula_counts_a_continued_clip_one_frame_short():
    assert [timeline.kept_frames(81, c) for c in (False, True)] == [81, 80]
    frames, overlaps, chain = [81, 81, 81, 81], [0.25, None, None], [False, False, True, True]
    assert timeline.film_frames(frames, chain) == [81, 81, 80, 80]
    assert timeline.film_seconds(frames, overlaps, 16, chain) == (81 + 81 + 80 + 80) / 16 - 0.25
    assert timeline.film_seconds(frames, overlaps, 16) == 4 * 81 / 16 - 0.25  # no chain: as before
    assert timeline.film_frames([81], [True]) == [81]  # the first clip has nothing to continue


def test_the_cut_rule_refuses_a_crossfade_into_a_continued_clip_first():
    problem = timeline.cut_problem([81, 81], [0.01], 16, [False, True])
    assert problem == timeline.CutProblem(1, False, 0.01, continued=True)
    assert timeline.cut_problem([81, 81], [None], 16, [False, True]) is None
    # a continued clip of one frame keeps none; one of 9 keeps 8, which a 0.5 s fade out of it eats
    assert timeline.cut_problem([81, 1, 81], [None, None], 16, [False, True, False]) == \
        timeline.CutProblem(1, False, 0.0)
    assert timeline.cut_problem([81, 9, 81], [None, 0.5], 16, [False, True, False]) == \
        timeline.CutProblem(1, False, 0.5)
    assert timeline.cut_problem([81, 9, 81], [None, 0.5], 16) is None
    with pytest.raises(ValueError, match="3 clips need 3 continues flags, got 2"):
        timeline.cut_problem([81, 9, 81], [None, 0.5], 16, [False, True])


def test_a_continued_clip_is_trimmed_after_normalising_and_the_film_counts_it_short():
    clips = [clip(f"{i}.mp4", 81) for i in range(3)]
    plan = plan_stitch(clips, Path("film.mp4"), cuts=[Cut("fade", 0.3125), Cut("cut", 0, continues=True)])
    assert plan.frames == 81 + 81 + 80 - 5
    graph = plan.argv[plan.argv.index("-filter_complex") + 1]
    assert graph.count("trim=start_frame=1") == 1 and "concat=a=0:n=2:v=1" in graph
    assert graph.index("settb=AVTB") < graph.index("trim=start_frame=1")


def test_concat_mode_cannot_copy_a_chain_and_says_why():
    plan = plan_stitch([clip("a.mp4", 81), clip("b.mp4", 81)], Path("film.mp4"), mode="concat",
                       cuts=[Cut("cut", 0, continues=True)])
    assert (plan.mode, plan.frames) == ("concat-filter", 161)
    assert plan.notes == ["re-encoded through the concat filter: a continued shot's first frame is dropped "
                          "(a stream copy cannot drop one frame)"]


@pytest.mark.parametrize("frames, cuts, message", [
    (81, [Cut("fade", 0.3, continues=True)], "the fade into b.mp4 cannot be: it continues a.mp4"),
    (1, [Cut("cut", 0, continues=True)], "b.mp4 has 1 frame: it continues a.mp4, whose last frame is its first"),
    (9, [Cut("cut", 0, continues=True), Cut("fade", 0.5)],
     r"transitions of 0.5 s are longer than clip b.mp4 \(0.5 s, 9 frames, 8 after its first, which repeats "
     r"a.mp4's last\)"),
])
def test_impossible_chain_cuts_are_refused_in_words(frames, cuts, message):
    clips = [clip("a.mp4", 81), clip("b.mp4", frames), clip("c.mp4", 81)][:len(cuts) + 1]
    with pytest.raises(StitchError, match=message):
        plan_stitch(clips, Path("film.mp4"), cuts=cuts)


def test_every_restarted_stream_gets_its_frame_rate_and_time_base_back():
    """ffmpeg 7.0's setpts sets the frame rate to 1/0 and xfade (also through a concat) refuses that:
    each setpts, in the one graph and in every piece, is followed by fps at the film's rate and
    settb=AVTB. (test_stitch_chain runs both graphs under an ffmpeg that behaves like 7.0.)"""
    import re

    from wanclip.stitch import layout as pieces

    clips = [clip(f"{i}.mp4", 81) for i in range(3)]
    plan = plan_stitch(clips, Path("film.mp4"), cuts=[Cut("cut", 0, continues=True), Cut("fade", 0.3125)])
    graphs = [plan.argv[plan.argv.index("-filter_complex") + 1]]
    for piece in pieces.layout([81] * 3, plan.cuts, Fraction(16)).pieces:
        argv = pieces.piece_argv(piece, clips, Fraction(16), 64, 64, pieces.Encoder(), "p.mp4", "ffmpeg", True)
        graphs.append(argv[argv.index("-filter_complex") + 1])
        assert argv[argv.index("-bsf:v") + 1].startswith("setts=pts=PTS:dts=")  # one decode delay for all
    for graph in graphs:
        links = dict(re.findall(r"\[(\w+)\]([^;\[]+)", graph))  # input label -> the filter it feeds
        setpts = [label for label, f in links.items() if f.startswith("setpts")]
        assert setpts
        for label in setpts:
            after = re.search(rf"\[{label}\]setpts=PTS-STARTPTS\[(\w+)\]", graph).group(1)
            assert links[after] == "fps=fps=16"
            fps_out = re.search(rf"\[{after}\]fps=fps=16\[(\w+)\]", graph).group(1)
            assert links[fps_out] == "settb=AVTB"
