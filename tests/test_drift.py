"""Colour drift: measuring a chain's cast and holding it down, on synthetic frames (no GPU, no clips)."""

from __future__ import annotations

import json

import pytest
from PIL import Image, ImageDraw, ImageStat

from wanclip.render import drift
from wanclip.render.drift import Drift, Stats, chain_report, colour_stats, distance, match_colours

SIZE = (832, 480)


def frame() -> Image.Image:
    """A textured, unsaturated RGB frame (every level within 40-200, so shifts do not clip)."""
    horizontal = Image.linear_gradient("L").rotate(90).resize(SIZE)
    vertical = Image.linear_gradient("L").resize(SIZE)
    radial = Image.radial_gradient("L").resize(SIZE)
    return Image.merge("RGB", (horizontal.point(lambda v: 60 + v * 140 // 255),
                               vertical.point(lambda v: 40 + v * 140 // 255),
                               radial.point(lambda v: 50 + v * 150 // 255)))


def shifted(image: Image.Image, r=lambda v: v, g=lambda v: v, b=lambda v: v) -> Image.Image:
    table = [min(255, max(0, round(f(v)))) for f in (r, g, b) for v in range(256)]
    return image.point(table)


def warm(image: Image.Image) -> Image.Image:
    """One link's drift as the simulator models it, plus a small green lift: R x 1.05, G + 2, B x 0.95."""
    return shifted(image, r=lambda v: v * 1.05, g=lambda v: v + 2, b=lambda v: v * 0.95)


def test_a_known_shift_gives_its_channel_deltas():
    base = frame()
    moved = shifted(base, r=lambda v: v + 10, g=lambda v: v - 5)
    d = distance(colour_stats(base), colour_stats(moved))
    assert d.channel_delta == pytest.approx((10, -5, 0), abs=1e-9)
    assert d.mean_delta == pytest.approx(10)
    assert 0 < d.hist < 1


def test_identical_frames_have_no_drift():
    stats = colour_stats(frame())
    assert distance(stats, stats) == Drift(0.0, (0.0, 0.0, 0.0), 0.0)
    assert distance(stats, colour_stats(frame())) == Drift(0.0, (0.0, 0.0, 0.0), 0.0)


def test_stats_describe_the_frame():
    stats = colour_stats(Image.new("RGB", (64, 32), (10, 128, 250)))
    assert stats.mean == (10.0, 128.0, 250.0)
    assert stats.std == (0.0, 0.0, 0.0)
    assert [h.index(1.0) for h in stats.hist] == [10 // 8, 128 // 8, 250 // 8]
    assert all(len(h) == drift.BINS and sum(h) == pytest.approx(1) for h in colour_stats(frame()).hist)


def test_a_box_left_out_hides_an_overlay():
    base = frame()
    captioned = base.copy()
    box = (20, 400, 500, 460)  # as Image.crop takes it: right and bottom are outside the box
    captioned.paste((255, 255, 255), box)
    assert colour_stats(captioned) != colour_stats(base)
    assert colour_stats(captioned, exclude=box) == colour_stats(base, exclude=box)
    with pytest.raises(ValueError, match="covers the whole 832x480 frame"):
        colour_stats(base, exclude=(0, 0, 832, 480))


def test_matching_undoes_a_warm_cast():
    base = frame()
    reference = colour_stats(base)
    cast = shifted(base, r=lambda v: v * 1.05, b=lambda v: v * 0.95)
    assert distance(reference, colour_stats(cast)).mean_delta > 5
    corrected = match_colours(cast, reference)
    after = colour_stats(corrected)
    assert distance(reference, after).mean_delta < 1
    assert after.std == pytest.approx(reference.std, abs=1)
    assert corrected.size == base.size and corrected.mode == "RGB"


def test_strength_blends_and_the_result_is_deterministic():
    base = frame()
    reference = colour_stats(base)
    cast = shifted(base, r=lambda v: v + 20)
    assert match_colours(cast, reference, strength=0).tobytes() == cast.tobytes()
    half = distance(reference, colour_stats(match_colours(cast, reference, strength=0.5)))
    assert half.channel_delta[0] == pytest.approx(10, abs=0.6)
    assert match_colours(cast, reference).tobytes() == match_colours(cast, reference).tobytes()
    with pytest.raises(ValueError, match="outside 0-1"):
        match_colours(cast, reference, strength=1.5)


def test_mode_size_and_alpha_are_kept(tmp_path):
    reference = colour_stats(frame())
    rgba = frame().convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(SIZE))
    out = match_colours(rgba, reference)
    assert out.mode == "RGBA" and out.size == SIZE
    assert out.getchannel("A").tobytes() == rgba.getchannel("A").tobytes()
    assert match_colours(frame().convert("L"), reference).mode == "L"
    path = tmp_path / "last.png"
    shifted(frame(), r=lambda v: v + 8).save(path)
    assert distance(reference, colour_stats(match_colours(path, reference))).mean_delta < 1


def test_a_flat_frame_does_not_explode():
    reference = colour_stats(frame())
    flat = match_colours(Image.new("RGB", SIZE, (128, 128, 128)), reference)
    assert flat.getcolors() == [(SIZE[0] * SIZE[1], tuple(round(m) for m in reference.mean))]
    # a near-flat frame (1-level dither) is lifted to the reference's mean, its spread grown at most 2x
    dither = Image.new("RGB", SIZE, (100, 100, 100))
    ImageDraw.Draw(dither).rectangle((0, 0, SIZE[0] // 2, SIZE[1]), fill=(101, 101, 101))
    lifted = ImageStat.Stat(match_colours(dither, reference))
    assert max(lifted.stddev) <= drift.RATIO_RANGE[1] * 0.5 + 1
    assert lifted.mean == pytest.approx(reference.mean, abs=1)
    # and a flat reference does not crush a textured frame to one colour
    squeezed = colour_stats(match_colours(frame(), colour_stats(Image.new("RGB", SIZE, (90, 90, 90)))))
    assert min(squeezed.std) >= drift.RATIO_RANGE[0] * min(reference.std) - 1


def test_correction_keeps_a_six_link_chain_bounded(tmp_path):
    keyframe = frame()
    reference = colour_stats(keyframe)
    uncorrected, corrected = [], []
    start_plain = start_fixed = keyframe
    for link in range(6):
        last_plain = warm(start_plain)
        last_fixed = warm(start_fixed)
        last_plain.save(tmp_path / f"plain_{link}.png")
        corrected.append(distance(reference, colour_stats(last_fixed)))
        start_plain, start_fixed = last_plain, match_colours(last_fixed, reference)
    uncorrected = chain_report(sorted(tmp_path.glob("plain_*.png")), reference)
    single = uncorrected[0].mean_delta
    assert single == pytest.approx(corrected[0].mean_delta)
    assert all(d.mean_delta < 1.5 * single for d in corrected)
    assert all(a.mean_delta < b.mean_delta for a, b in zip(uncorrected[:-1], uncorrected[1:], strict=True))
    assert uncorrected[-1].mean_delta > 4 * single
    assert uncorrected[-1].hist > 2 * max(d.hist for d in corrected)


def test_a_chain_report_without_a_reference_measures_against_the_first_frame(tmp_path):
    paths = []
    image = frame()
    for link in range(3):
        paths.append(tmp_path / f"{link}.png")
        image.save(paths[-1])
        image = shifted(image, b=lambda v: v - 4)
    report = chain_report(paths)
    assert report[0] == Drift(0.0, (0.0, 0.0, 0.0), 0.0)
    assert [d.channel_delta[2] for d in report] == pytest.approx([0, -4, -8])
    assert chain_report([]) == []


def test_stats_round_trip_through_a_json_ledger():
    stats = colour_stats(frame())
    assert Stats.from_dict(json.loads(json.dumps(stats.to_dict()))) == stats
    with pytest.raises(ValueError, match="3 means"):
        Stats.from_dict({"mean": [1, 2], "std": [1, 2, 3], "hist": [[0] * 32] * 3})
    with pytest.raises(ValueError, match="not mean/std/hist"):
        Stats.from_dict({"mean": [1, 2, 3]})


def test_bounded_moves_at_most_one_step_towards_the_reference():
    from wanclip.render.drift import STEP_GAIN, STEP_SHIFT, Stats, bounded

    hist = tuple(tuple([1 / 32] * 32) for _ in range(3))
    reference = Stats((100.0, 100.0, 100.0), (40.0, 40.0, 40.0), hist)
    current = Stats((120.0, 101.0, 90.0), (50.0, 40.5, 20.0), hist)
    target = bounded(reference, current)
    assert target.mean == (120.0 - STEP_SHIFT, 100.0, 90.0 + STEP_SHIFT)  # far: one step; near: all the way
    assert target.std[0] == 50.0 * (1 - STEP_GAIN) and target.std[1] == 40.0
    assert target.std[2] == 20.0 * (1 + STEP_GAIN)
