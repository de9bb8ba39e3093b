"""The load-stagger policy (wanclip.render.stagger) on an injected clock; and its bench's calibration."""

from __future__ import annotations

import importlib.util
import math
import sys

import pytest

from helpers import ROOT
from wanclip.render.stagger import DEFAULT_STAGGER_SECONDS, ServerState, Stagger, may_take, next_change


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def fleet(stagger_seconds: float, *warm: bool) -> tuple[Clock, Stagger]:
    clock = Clock()
    policy = Stagger(clock, stagger_seconds)
    for i, w in enumerate(warm):
        policy.add(f"s{i}", warm=w)
    return clock, policy


def test_cold_servers_get_their_first_shot_one_head_start_apart():
    clock, policy = fleet(20, False, False, False)
    assert [policy.may_take(u) for u in ("s0", "s1", "s2")] == [True, True, True]
    policy.given("s0")
    assert policy.may_take("s0")  # it has its first shot: more by the pool's own rule
    assert not policy.may_take("s1") and not policy.may_take("s2")
    assert policy.next_change() == 120.0
    clock.now = 119.9
    assert not policy.may_take("s1")
    clock.now = 120.0
    assert policy.may_take("s1") and policy.may_take("s2")
    policy.given("s1")
    assert not policy.may_take("s2")  # s1's load has no head start yet, although s0's has
    clock.now = 140.0
    assert policy.may_take("s2")


def test_a_finished_load_releases_the_next_at_once():
    clock, policy = fleet(30, False, False)
    policy.given("s0")
    policy.started("s0")
    clock.now += 1.0
    assert not policy.may_take("s1")
    policy.loaded("s0")  # a server judged cold that was warm: it reports loaded within a second
    assert policy.may_take("s1") and policy.next_change() is None
    assert policy.rank("s0") == 0


def test_the_head_start_counts_from_the_start_of_the_load_when_known():
    clock, policy = fleet(10, False, False)
    policy.given("s0")
    clock.now += 5
    policy.started("s0")  # it sat behind something for 5 s before loading
    clock.now += 6
    assert not policy.may_take("s1")
    clock.now += 4
    assert policy.may_take("s1")


def test_warm_servers_are_never_held_and_rank_first():
    clock, policy = fleet(60, False, True, False)
    policy.given("s0")
    assert policy.may_take("s1") and not policy.may_take("s2")
    assert sorted(["s2", "s0", "s1"], key=policy.rank) == ["s1", "s0", "s2"]
    policy.given("s1")
    assert not policy.may_take("s2")  # a warm server's shot is not a load: s0's still gates


def test_a_loading_server_holds_only_its_first_shot():
    clock, policy = fleet(0, False, True)
    assert policy.ahead("s0", 2) == 2 and policy.ahead("s1", 2) == 2
    policy.given("s0")
    policy.started("s0")
    assert policy.ahead("s0", 2) == 1 and policy.ahead("s1", 2) == 2
    policy.loaded("s0")
    assert policy.ahead("s0", 2) == 2
    assert policy.ahead("s0", 1) == 1  # never more than the pool's own rule


def test_a_restarted_server_is_cold_again_and_a_silent_one_blocks_only_for_the_head_start():
    clock, policy = fleet(15, False, False)
    policy.given("s0")
    policy.loaded("s0")
    policy.cold("s0")  # it restarted: models gone, its next shot loads again
    assert policy.state("s0") == ServerState("s0")
    policy.given("s0")  # and then it dies: no started, no loaded ever
    assert not policy.may_take("s1")
    clock.now += 15
    assert policy.may_take("s1")


def test_zero_stagger_lets_everyone_load_together_and_unknown_servers_are_cold():
    clock, policy = fleet(0, False, False)
    policy.given("s0")
    assert policy.may_take("s1") and policy.next_change() is None
    assert policy.may_take("elsewhere") and policy.rank("elsewhere") == 2
    with pytest.raises(ValueError):
        Stagger(clock, -1)
    assert DEFAULT_STAGGER_SECONDS >= 0


def test_the_pure_functions_agree_with_the_object():
    states = [ServerState("a", given_at=0.0), ServerState("b"), ServerState("c", warm=True)]
    assert not may_take("b", states, 5.0, 10.0) and may_take("b", states, 10.0, 10.0)
    assert may_take("c", states, 0.0, 10.0) and may_take("nobody", states, 0.0, 10.0)
    assert next_change(states, 5.0, 10.0) == 10.0
    assert next_change(states, 5.0, 0.0) is None
    assert not may_take("b", [ServerState("a", given_at=0.0), ServerState("b")], 1e9, math.inf)


def _bench():
    spec = importlib.util.spec_from_file_location("bench_stagger", ROOT / "scripts" / "bench_stagger.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(spec.name, None)
    return module


def test_the_bench_model_reproduces_the_measured_films():
    bench = _bench()
    one = bench.film_seconds(1, 0, 12, None, "linear", dt=0.1, policy_on=False)
    four = bench.film_seconds(4, 0, 12, None, "linear", dt=0.1, policy_on=False)
    assert one == pytest.approx(288 - 4, abs=6)  # measured 288 s with a ~4 s stitch
    assert four == pytest.approx(177, abs=8)  # measured 177 s
    warm = bench.film_seconds(4, 4, 12, None, "linear", dt=0.1)
    assert warm == pytest.approx(61, abs=3)  # the estimate, ≈ 61 s
