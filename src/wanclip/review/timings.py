"""Where a film's render time went: model load, text encode, sampling, decode, video encode, stitch.

ComfyUI loads the experts lazily, inside the text-encode and sampler nodes, not in the loader nodes:
``node_seconds["model load"]`` (the loaders) is ~0.6 s on a real server while 30 s of loading sit
in "text encode" and "high-noise sampler" of each server's first shot. So the load is estimated
per server as its first shot's time in those nodes beyond the same nodes' median on its warm shots
(plus the loaders' own time), and taken out of them.
"""

from __future__ import annotations

import statistics

from wanclip.ledger import BACKGROUND_ENCODE, Ledger, ShotRecord

PARTS = {"model load": ("model load",), "text encode": ("text encode",),
         "sampling": ("high-noise sampler", "low-noise sampler"), "decode": ("decode",),
         "video encode": ("combine",)}
LAZY = ("text encode", "high-noise sampler", "low-noise sampler")  # where a cold load really happens


PART_OF = {label: part for part, labels in PARTS.items() for label in labels}


def sum_parts(node_seconds: list[dict[str, float]]) -> dict[str, float]:
    """Seconds per part (model load, text encode, sampling, decode, video encode, other), summed as the
    servers reported them; every part present, in that order."""
    split = {part: 0.0 for part in (*PARTS, "other")}
    for seconds in node_seconds:
        for label, value in (seconds or {}).items():
            if label != BACKGROUND_ENCODE:  # in parallel with the next shot: not where the time went
                split[PART_OF.get(label, "other")] += float(value or 0)
    return split


def background_encode(node_seconds: list[dict[str, float]]) -> tuple[int, float] | None:
    """(clips, median seconds) the node pack's background encode took, off the GPU's path; None when
    no clip was encoded that way."""
    seconds = [float(s[BACKGROUND_ENCODE]) for s in node_seconds if s and BACKGROUND_ENCODE in s]
    return (len(seconds), round(statistics.median(seconds), 3)) if seconds else None


def time_split(node_seconds: list[dict[str, float]]) -> dict[str, float]:
    """``sum_parts`` without the empty parts: what one card (or the page's header) shows."""
    return {part: seconds for part, seconds in sum_parts(node_seconds).items() if seconds}


def film_split(ledger: Ledger) -> dict[str, float]:
    """Seconds per part over every done shot (and the stitch), with lazy model loads attributed."""
    done = [s for s in ledger.shots if s.status == "done" and s.node_seconds]
    split = sum_parts([record.node_seconds for record in done])
    # A part is in the summary when a shot reported it, even as 0.0: on a fast server a stage's
    # time can round to 0, and dropping it made ``time["sampling"]`` a KeyError for the reader.
    reported = {PART_OF.get(label, "other") for record in done for label in record.node_seconds
                if label != BACKGROUND_ENCODE}
    for label, extra in _lazy_loads(done).items():
        split[PART_OF[label]] -= extra
        split["model load"] += extra
        reported.add("model load")
    if ledger.film.get("stitch_seconds"):
        split["stitch"] = float(ledger.film["stitch_seconds"])
        reported.add("stitch")
    return {part: round(max(seconds, 0.0), 3) for part, seconds in split.items() if part in reported}


def _lazy_loads(done: list[ShotRecord]) -> dict[str, float]:
    """Per node label, the seconds of model loading hidden in it (summed over the servers)."""
    extra: dict[str, float] = {}
    for server in {s.server for s in done}:
        shots = sorted((s for s in done if s.server == server), key=lambda s: s.execution_start_ms or 0)
        if len(shots) < 2:
            continue  # no warm shot to compare with: leave the times as the server reported them
        first, warm = shots[0], shots[1:]
        for label in LAZY:
            typical = statistics.median(float(s.node_seconds.get(label, 0.0)) for s in warm)
            beyond = float(first.node_seconds.get(label, 0.0)) - typical
            if beyond > 0:
                extra[label] = extra.get(label, 0.0) + beyond
    return extra


def describe(split: dict[str, float]) -> str:
    total = sum(split.values())
    if not total:
        return ""
    return "; ".join(f"{part} {seconds:.1f} s ({100 * seconds / total:.0f} %)" for part, seconds in split.items())
