"""Where the time went: ComfyUI loads the experts inside text encode and the high-noise sampler."""

from __future__ import annotations

from pathlib import Path

from wanclip.ledger import Ledger, ShotRecord
from wanclip.review.timings import describe, film_split


def shot(index: int, server: str, **seconds) -> ShotRecord:
    labels = {"text_encode": "text encode", "high": "high-noise sampler", "low": "low-noise sampler",
              "decode": "decode", "combine": "combine", "load": "model load"}
    return ShotRecord(index=index, name=f"s{index}", graph_sha256="g", seed=index, frames=81, width=832,
                      height=480, fps=16.0, status="done", server=server, execution_start_ms=index,
                      node_seconds={labels[k]: v for k, v in seconds.items()})


def test_a_cold_first_shot_s_hidden_load_is_moved_to_model_load():
    warm = dict(text_encode=1.0, high=7.0, low=6.8, decode=2.0, combine=1.7, load=0.0)
    ledger = Ledger(path=Path("ledger.json"), film={"stitch_seconds": 3.0}, shots=[
        shot(1, "a", text_encode=25.0, high=30.0, low=6.8, decode=2.0, combine=1.7, load=0.6),
        shot(2, "a", **warm), shot(3, "a", **warm)])
    split = film_split(ledger)
    assert split["model load"] == 0.6 + 24.0 + 23.0
    assert split["text encode"] == 3.0 and split["sampling"] == 3 * 7.0 + 3 * 6.8
    assert split["decode"] == 6.0 and split["video encode"] == 5.1 and split["stitch"] == 3.0
    assert describe(split).startswith("model load 47.6 s")


def test_a_server_with_one_shot_keeps_its_times_as_reported():
    ledger = Ledger(path=Path("ledger.json"), shots=[shot(1, "b", text_encode=25.0, high=30.0)])
    assert film_split(ledger) == {"text encode": 25.0, "sampling": 30.0}


def test_a_stage_whose_times_round_to_zero_is_kept():
    """A fast server (the simulator at step_seconds=0.005) can report 0.0 s for the samplers: the
    summary still names the stage (it ran) instead of dropping it, which made `time["sampling"]` a
    KeyError one run in two."""
    ledger = Ledger(path=Path("ledger.json"), shots=[
        shot(1, "a", text_encode=0.0001, high=0.0, low=0.0, decode=0.01),
        shot(2, "a", text_encode=0.0001, high=0.0, low=0.0001, decode=0.01)])
    split = film_split(ledger)
    assert split["sampling"] == 0.0 and split["text encode"] == 0.0 and split["decode"] == 0.02
    assert "model load" not in split and "stitch" not in split  # never reported: still left out
    assert describe(split).startswith("text encode 0.0 s (0 %); sampling 0.0 s (0 %)")


def test_the_background_encode_is_no_part_of_where_the_gpu_time_went_but_is_reported_apart():
    from wanclip.review.timings import background_encode, sum_parts

    shots = [{"high-noise sampler": 6.0, "combine": 0.3, "background encode": 1.5},
             {"high-noise sampler": 6.0, "combine": 0.3, "background encode": 1.7}]
    split = sum_parts(shots)
    assert split["video encode"] == 0.6 and split["other"] == 0.0 and "background encode" not in split
    assert background_encode(shots) == (2, 1.6)
    assert background_encode([{"combine": 2.0}]) is None
