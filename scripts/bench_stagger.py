"""How long a film takes on several cold servers when their model loads start together or staggered.

A model of the 4×H100 measurements in ``../shared/reference/gpu-timings.md`` (no GPU, no server: a
time-stepped simulation driving the real ``wanclip.render.stagger`` policy and the pool's dispatch rule):

- one server alone: first shot 79 s = model load 54.7 s + first-shot compute 24.3 s; later shots 18.6 s
  (1 server, 12 shots: 79 + 11 × 18.6 = 283.6 s; measured 288 s with the stitch);
- four loads at once take 2.1× as long each; shots on four busy servers take 20.1 s instead of 18.6 s
  (four servers cold, 3 shots each: 2.1 × 54.7 + 24.3 × 20.1/18.6 + 2 × 20.1 = 181 s; measured 177 s);
- between 1 and 4 concurrent loads, two shapes of the slowdown (only 4 was measured):
  ``linear``: each extra load adds a third of the 1.1× (1, 1.37, 1.73, 2.1);
  ``shared``: a shared path of 1.9 loads' worth of bandwidth (1, 1.05, 1.58, 2.1).

Dispatch is ``pool.pick``'s: each server at most one shot ahead (running + one), least loaded first,
warm (or loaded) first among equals, and ``Stagger.may_take`` in front of it. Shots never move.

    .venv/bin/python scripts/bench_stagger.py [--shots 12] [--dt 0.05]
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field

from wanclip.render.stagger import DEFAULT_STAGGER_SECONDS, Stagger

LOAD = 54.7  # s, one server's model load alone
FIRST = 24.3  # s, the first shot's compute after the load (lazy second expert, cold kernels)
SHOT = 18.6  # s, a warm 81-frame shot, one busy server
SHOT4 = 20.1  # s, the same with four servers busy (CPU encode contention)
LOAD4 = 2.1  # slowdown of each of four simultaneous loads
AHEAD = 2  # pool.pick: running + one queued


def slowdown_linear(k: int) -> float:
    return 1.0 + (LOAD4 - 1.0) * (k - 1) / 3 if k > 0 else 1.0


def slowdown_shared(k: int) -> float:
    return max(1.0, k / (4 / LOAD4))


MODELS = {"linear": slowdown_linear, "shared": slowdown_shared}


@dataclass
class SimServer:
    url: str
    warm: bool
    queue: list[int] = field(default_factory=list)  # shot numbers, the running one first
    phase: str = "idle"  # idle, load, compute
    left: float = 0.0  # alone-seconds of work left in this phase
    first: bool = True  # the next shot it runs is its first


def film_seconds(servers: int, warm: int, shots: int, stagger: float | None, model: str,
                 dt: float = 0.05, policy_on: bool = True) -> float:
    """Seconds from the first submission to the last clip. ``stagger``: None loads all at once,
    ``math.inf`` loads one at a time, else the head start in seconds. ``policy_on`` False is today's
    pick: no warm-first order, a loading server kept one ahead like any other (the warm servers are
    listed last, as a --server list may happen to have them)."""
    now = 0.0
    policy = Stagger(lambda: now, 0.0 if stagger is None else stagger)
    fleet = [SimServer(f"gpu{i}", warm=i >= servers - warm) for i in range(servers)]
    for s in fleet:
        policy.add(s.url, warm=s.warm)
    slow = MODELS[model]
    pending, done = list(range(1, shots + 1)), 0
    while done < shots:
        while pending:  # dispatch like pool.pick: least loaded, warm/loaded first, behind the gate
            ready = [s for s in fleet if len(s.queue) < (policy.ahead(s.url, AHEAD) if policy_on else AHEAD)
                     and policy.may_take(s.url)]
            if not ready:
                break
            best = min(ready, key=lambda s: (len(s.queue), policy.rank(s.url) if policy_on else 0, s.url))
            best.queue.append(pending.pop(0))
            policy.given(best.url)
        for s in fleet:  # an idle server with work starts it
            if s.phase == "idle" and s.queue:
                if s.first and not s.warm:
                    s.phase, s.left = "load", LOAD
                    policy.started(s.url)
                else:
                    s.phase, s.left = "compute", FIRST if s.first and not s.warm else SHOT
                    if s.first:
                        policy.started(s.url)
                        policy.loaded(s.url)
        loads = sum(s.phase == "load" for s in fleet)
        computes = sum(s.phase == "compute" for s in fleet)
        shot_factor = 1.0 + (SHOT4 / SHOT - 1.0) * (computes - 1) / 3 if computes else 1.0
        now += dt
        for s in fleet:
            if s.phase == "load":
                s.left -= dt / slow(loads)
                if s.left <= 0:
                    s.phase, s.left = "compute", FIRST
                    policy.loaded(s.url)
            elif s.phase == "compute":
                s.left -= dt / shot_factor
                if s.left <= 0:
                    s.queue.pop(0)
                    s.phase, s.first = "idle", False
                    done += 1
    return now


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shots", type=int, default=12)
    parser.add_argument("--dt", type=float, default=0.05)
    args = parser.parse_args()
    n, dt = args.shots, args.dt
    default = DEFAULT_STAGGER_SECONDS or None
    one = {m: film_seconds(1, 0, n, None, m, dt, policy_on=False) for m in MODELS}
    rows: list[tuple[str, int, int, float | None, bool]] = [
        ("1 server, cold", 1, 0, None, False),
        ("4 cold, all loads at once (today's pick)", 4, 0, None, False)]
    rows += [(f"4 cold, staggered {s:g} s", 4, 0, float(s), True) for s in (5, 10, 20, 30, 40)]
    rows += [("4 cold, one load at a time (warm one first)", 4, 0, math.inf, True),
             ("4 cold, the default policy", 4, 0, default, True),
             ("1 warm + 3 cold, today's pick", 4, 1, None, False),
             ("1 warm + 3 cold, warm first + staggered 20 s", 4, 1, 20.0, True),
             ("1 warm + 3 cold, the default policy", 4, 1, default, True),
             ("2 warm + 2 cold, today's pick", 4, 2, None, False),
             ("2 warm + 2 cold, the default policy", 4, 2, default, True),
             ("4 warm (`wanclip serve --warm`)", 4, 4, None, False)]
    print(f"{n} shots of 81 frames on the 4×H100 figures: seconds from the first submission to the last "
          f"clip (stitch not included), and the ratio to 1 cold server. Default policy: stagger "
          f"{DEFAULT_STAGGER_SECONDS:g} s, warm first, a loading server holds only its first shot.")
    print()
    print("| dispatch | " + " | ".join(f"{m} s | × 1 cold" for m in MODELS) + " |")
    print("|---|" + "---:|---:|" * len(MODELS))
    for label, servers, warm, stagger, policy_on in rows:
        cells = []
        for model in MODELS:
            t = film_seconds(servers, warm, n, stagger, model, dt, policy_on=policy_on)
            cells.append(f"{t:.1f} | {t / one[model]:.2f}")
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
