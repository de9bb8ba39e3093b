"""Where a film's render time went: model load, text encode, sampling, decode, video encode, stitch.

ComfyUI loads the experts lazily, inside the text-encode and sampler nodes, not in the loader nodes:
``node_seconds["model load"]`` (the loaders) is ~0.6 s on a real server while 30 s of loading sit
in "text encode" and "high-noise sampler" of each server's first shot. So the load is estimated
per server as its first shot's time in those nodes beyond the same nodes' median on its warm shots
(plus the loaders' own time), and taken out of them.
"""

from __future__ import annotations

import statistics

from wanclip.ledger import Ledger, ShotRecord

PARTS = {"model load": ("model load",), "text encode": ("text encode",),
         "sampling": ("high-noise sampler", "low-noise sampler"), "decode": ("decode",),
         "video encode": ("combine",)}
LAZY = ("text encode", "high-noise sampler", "low-noise sampler")  # where a cold load really happens


def film_split(ledger: Ledger) -> dict[str, float]:
    """Seconds per part over every done shot (and the stitch), with lazy model loads attributed."""
    done = [s for s in ledger.shots if s.status == "done" and s.node_seconds]
    split = {part: 0.0 for part in (*PARTS, "other")}
    part_of = {label: part for part, labels in PARTS.items() for label in labels}
    # A part is in the summary when a shot reported it, even as 0.0: on a fast server a stage's
    # time can round to 0, and dropping it made ``time["sampling"]`` a KeyError for the reader.
    reported = {part_of.get(label, "other") for record in done for label in record.node_seconds}
    for record in done:
        for label, seconds in record.node_seconds.items():
            split[part_of.get(label, "other")] += float(seconds or 0)
    for label, extra in _lazy_loads(done).items():
        split[part_of[label]] -= extra
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
