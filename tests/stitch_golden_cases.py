"""The films whose ffmpeg commands are held in ``tests/data/stitch_golden/`` (issue 18: our own graph builder
in place of ffmpeg-python must build exactly what ffmpeg-python built).

Each case is plain data (clips as ``media.ClipInfo`` fields, cuts, options), so the same cases run
through the old code (commit e80e706, ffmpeg-python; ``scripts/record_stitch_golden.py``) and through
today's (``tests/test_stitch_golden.py``). ``argv_of`` takes the API it builds with as an ``Api``, so
this file imports neither. Paths are absolute and fake: ``Path.resolve`` keeps them as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

GOLDEN = Path(__file__).parent / "data" / "stitch_golden"


def clip(name: str, frames: int = 81, fps: str = "16", size: str = "832x480", sar: str = "1:1",
         pix_fmt: str = "yuv420p", tb: str = "1/16384") -> dict:
    width, height = (int(v) for v in size.split("x"))
    return {"path": f"/clips/{name}", "frames": frames, "fps": fps, "width": width, "height": height,
            "codec": "h264", "profile": "High", "pix_fmt": pix_fmt, "sar": sar, "time_base": tb,
            "has_audio": False}


def cut(kind: str = "fade", duration: float = 0.3, continues: bool = False) -> dict:
    return {"type": kind, "duration": duration, "continues": continues}


HARD = {"type": "cut", "duration": 0.0, "continues": False}
CHAINED = {"type": "cut", "duration": 0.0, "continues": True}

# one-graph films: plan_stitch(clips, output, mode, cuts, crf, preset, audio, exe)
FILMS: dict[str, dict[str, Any]] = {
    "hard_cuts": {"clips": [clip("a.mp4"), clip("b.mp4"), clip("c.mp4")], "cuts": [HARD, HARD]},
    "xfades": {"clips": [clip("a.mp4", 49), clip("b.mp4", 81), clip("c.mp4", 65), clip("d.mp4", 33)],
               "cuts": [cut("fade", 0.3), cut("wipeleft", 0.25), cut("dissolve", 0.5)]},
    "xfade_then_cut": {"clips": [clip("a.mp4"), clip("b.mp4"), clip("c.mp4")],
                       "cuts": [cut("circleopen", 0.3125), HARD], "crf": 0, "preset": "ultrafast"},
    "chain": {"clips": [clip("a.mp4"), clip("b.mp4"), clip("c.mp4"), clip("d.mp4")],
              "cuts": [cut("fade", 0.3), CHAINED, cut("slideup", 0.5)]},
    "chain_only_cuts": {"clips": [clip("a.mp4", 17), clip("b.mp4", 17), clip("c.mp4", 17)],
                        "cuts": [CHAINED, HARD]},
    "audio": {"clips": [clip("a.mp4"), clip("b.mp4")], "cuts": [cut("fade", 0.3)],
              "audio": "/music/track one.mp3"},
    "audio_cuts_mkv": {"clips": [clip("a.mp4"), clip("b.mp4")], "cuts": [HARD], "audio": "/music/t.m4a",
                       "output": "/film/film.mkv"},
    "repeated_clip": {"clips": [clip("a.mp4", 33), clip("b.mp4", 33), clip("a.mp4", 33), clip("a.mp4", 33)],
                      "cuts": [cut("fade", 0.25), HARD, cut("pixelize", 0.5)]},
    "odd_clips": {"clips": [clip("a.mp4", 81), clip("b.mkv", 121, fps="24", size="640x368", tb="1/1000"),
                            clip("c.mp4", 81, sar="2:1", pix_fmt="yuv444p"),
                            clip("d.mp4", 65, fps="24000/1001")],
                  "cuts": [cut("fade", 0.3), cut("radial", 0.4), HARD]},
    "concat_filter": {"clips": [clip("a.mp4"), clip("b.mp4", size="640x368")], "cuts": [HARD],
                      "mode": "concat"},
    "concat_chain": {"clips": [clip("a.mp4"), clip("b.mp4")], "cuts": [CHAINED], "mode": "concat"},
    "concat_copy": {"clips": [clip("a.mp4"), clip("it's b.mp4")], "cuts": [HARD], "mode": "concat",
                    "audio": "/music/t.mp3"},
    "one_clip": {"clips": [clip("a.mp4", 9)], "cuts": [], "output": "/film/one.mov"},
    "ntsc": {"clips": [clip("a.mp4", 48, fps="24000/1001"), clip("b.mp4", 48, fps="24000/1001")],
             "cuts": [cut("fade", 0.3)]},
}

# films cut into pieces: layout(), then piece_argv() for every piece (bodies with their thumbnails: the
# contact sheet's frames)
PIECES: dict[str, dict[str, Any]] = {
    "pieces_fades": {"clips": [clip("a.mp4", 49), clip("b.mp4", 81), clip("c.mp4", 33)],
                     "cuts": [cut("fade", 0.3), cut("wipeleft", 0.125)]},
    "pieces_chain": {"clips": [clip("a.mp4"), clip("b.mp4"), clip("c.mp4"), clip("d.mp4")],
                     "cuts": [cut("fade", 0.3125), CHAINED, cut("dissolve", 0.5)], "crf": 0,
                     "preset": "ultrafast"},
    "pieces_hard_cuts": {"clips": [clip("a.mp4", 17), clip("b.mp4", 17)], "cuts": [HARD]},
    "pieces_sar": {"clips": [clip("a.mp4", 33, sar="2:1"), clip("b.mp4", 33, sar="2:1")],
                   "cuts": [cut("fade", 0.25)]},
}


@dataclass
class Api:
    """What a case is built with: the old modules' functions, or today's."""

    ClipInfo: type
    Cut: type
    plan_stitch: Any
    layout: Any
    piece_argv: Any
    Encoder: type
    thumb_picks: Any
    thumb_size: Any


def clip_infos(api: Api, case: dict) -> list:
    return [api.ClipInfo(**{**c, "path": Path(c["path"]), "fps": Fraction(c["fps"])}) for c in case["clips"]]


def film_argv(api: Api, case: dict) -> dict:
    plan = api.plan_stitch(clip_infos(api, case), Path(case.get("output", "/film/film.mp4")),
                           case.get("mode", "xfade"), [api.Cut(**c) for c in case["cuts"]],
                           case.get("crf", 19), case.get("preset", "fast"),
                           Path(case["audio"]) if "audio" in case else None, "ffmpeg")
    return {"mode": plan.mode, "frames": plan.frames, "argv": plan.argv, "concat_list": plan.concat_list}


def pieces_argv(api: Api, case: dict) -> list[dict]:
    infos = clip_infos(api, case)
    cuts = [api.Cut(**c) for c in case["cuts"]]
    fps = infos[0].fps
    encoder = api.Encoder(case.get("crf", 19), case.get("preset", "fast"))
    through_xfade = any(c.overlaps for c in cuts)
    out = []
    for n, piece in enumerate(api.layout([c.frames for c in infos], cuts, fps).pieces):
        thumbs = None
        if not hasattr(piece, "offset_us"):  # a body: it cuts its clip's thumbnails too
            info = infos[piece.clip]
            thumbs = (f"/film/pieces/thumbs-{n}.png.part", api.thumb_picks(info), api.thumb_size(info))
        for with_thumbs in ([thumbs, None] if thumbs else [None]):
            argv = api.piece_argv(piece, infos, fps, infos[0].width, infos[0].height, encoder,
                                  f"/film/pieces/{n}.mp4.part", "ffmpeg", through_xfade, with_thumbs)
            out.append({"piece": repr(piece), "argv": argv})
    return out


def build(api: Api) -> dict[str, Any]:
    """Every case's commands, by case name."""
    return {**{name: film_argv(api, case) for name, case in FILMS.items()},
            **{name: pieces_argv(api, case) for name, case in PIECES.items()}}
