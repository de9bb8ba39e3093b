"""Cold model loads that do not pile up: which servers may take a shot now. Pure: no I/O, an injected clock.

Four ComfyUI servers loading Wan 2.2's 38 GB at the same moment slow each other ≈ 2.1× (measured on
4×H100, ``gpu-timings.md``): the first shot then takes 135 s on every server instead of 79 s. The
policy has three parts:

- **stagger**: a *cold* server (models not resident) gets its first shot only when every cold
  server still loading has had a head start of ``stagger_seconds`` on its load, or has finished
  loading. ``warm`` servers are never held back.
- **warm first**: among equally loaded servers, warm (or already loaded) ones take the shot (``rank``).
- **a loading server holds one shot**: until its load is done, a cold server holds only its first
  shot (``ahead``); the others go to servers that can start them.

``scripts/bench_stagger.py`` models the measured times and chose the defaults: no stagger (0 s;
loads together still progress 1.9× faster in total than one after another), warm first, one shot
while loading.

Only the first shot of a cold server is gated: once given, a server takes more shots by the
coordinator's usual rule (``Film.pick``: least loaded, one shot ahead). A server whose load never reports
(its socket lost, it died) holds the next one back for at most ``stagger_seconds``: the gate is
time-bounded, never a deadlock. A server treated as cold that was in fact warm reports ``loaded``
within a second of starting, which releases the next one at once, so misjudging warmth costs
about a second, not a stagger.

Wiring (for ``coordinator.Film.pick``)::

    stagger = Stagger(clock, stagger_seconds)          # one per render, the pool's clock
    stagger.add(url, warm=...)                         # every server; warm: see ``add``
    ready = [s for s in up if load.get(s.url, 0) < stagger.ahead(s.url, ahead)
             and stagger.may_take(s.url)]
    ready.sort(key=lambda s: (load[s.url], stagger.rank(s.url)))   # warm first among equals
    stagger.given(url)                                 # pick() returned url (first time counts)
    stagger.started(url)                               # its first prompt began executing
    stagger.loaded(url)                                # its first prompt got past the loaders
    stagger.cold(url)                                  # it restarted: models gone
    stagger.next_change()                              # clock time at which may_take may turn true
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

# Chosen with scripts/bench_stagger.py on the 4×H100 figures: four loads at once each take 2.1× as
# long, but that is still 1.9 loads' worth of progress per second against 1 for loads one after
# another, so a head start only delays the later servers. Staggering 5-40 s came out between 3 %
# faster and 25 % slower than loading together, depending on how the slowdown grows from 1 to 4
# loads (unmeasured), so the default is not to stagger: 0 s. What does pay is warm first and a
# loading server holding only its first shot (``ahead``), and warming before the film (serve --warm).
# The knob stays for the 4-GPU run to measure (WANCLIP_STAGGER_SECONDS, config.stagger_seconds()).
DEFAULT_STAGGER_SECONDS = 0.0
LOADING_AHEAD = 1  # shots a cold server holds while its first one loads (its own first shot only)


@dataclass(frozen=True)
class ServerState:
    """What the policy knows of one server (times on the injected clock)."""

    url: str
    warm: bool = False  # its models are resident (``wanclip serve --warm``, or it rendered since it started)
    given_at: float | None = None  # when it was given its first shot
    started_at: float | None = None  # when its first shot began executing (its load began)
    loaded: bool = False  # its first shot got past the model load

    @property
    def loading(self) -> bool:
        """Cold, given its first shot, not yet past the load."""
        return not self.warm and self.given_at is not None and not self.loaded

    @property
    def load_began(self) -> float | None:
        """When its load began: its start when reported, else when it was given the shot."""
        return self.started_at if self.started_at is not None else self.given_at


def may_take(url: str, states: Iterable[ServerState], now: float,
             stagger_seconds: float = DEFAULT_STAGGER_SECONDS) -> bool:
    """May ``url`` be given a shot now?

    Yes when it is warm or has already had its first shot. A cold server waiting for its first
    shot may have it when every other cold server still loading began its load at least
    ``stagger_seconds`` ago (so loads start one head start apart) — and only then.
    """
    states = list(states)
    me = next((s for s in states if s.url == url), None)
    if me is None or me.warm or me.given_at is not None:
        return True
    return all(now - s.load_began >= stagger_seconds for s in states if s.url != url and s.loading)


def next_change(states: Iterable[ServerState], now: float,
                stagger_seconds: float = DEFAULT_STAGGER_SECONDS) -> float | None:
    """The clock time at which a server held back now would be let through by time alone (None: no
    one is held back, or only an event can change it)."""
    states = list(states)
    held = [s for s in states if not may_take(s.url, states, now, stagger_seconds)]
    if not held:
        return None
    return max(s.load_began + stagger_seconds for s in states if s.loading and s.load_began is not None)


def ahead(state: ServerState, default: int) -> int:
    """How many shots ``state``'s server may hold (running + queued): only its first while it loads
    (a shot queued behind a 55-135 s load is one a warm server could have rendered), else ``default``."""
    return min(default, LOADING_AHEAD) if state.loading else default


def rank(state: ServerState) -> int:
    """Sort key among equally loaded servers: 0 warm or loaded, 1 cold and loading, 2 cold and idle."""
    if state.warm or state.loaded:
        return 0
    return 1 if state.given_at is not None else 2


class Stagger:
    """The policy with its state, fed notifications; ``clock`` is the pool's (tests inject one)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 stagger_seconds: float = DEFAULT_STAGGER_SECONDS):
        if stagger_seconds < 0:
            raise ValueError("stagger_seconds must be >= 0")
        self.clock, self.stagger_seconds = clock, float(stagger_seconds)
        self._states: dict[str, ServerState] = {}

    # -- what the pool tells it -------------------------------------------------------------------
    def add(self, url: str, warm: bool = False) -> None:
        """A server of this render. ``warm``: its models are known to be resident. When in doubt say
        cold: a warm server judged cold reports ``loaded`` at once and frees the gate."""
        self._states[url] = ServerState(url, warm=warm)

    def given(self, url: str) -> None:
        """``url`` was given a shot (only its first counts)."""
        state = self._state(url)
        if state.given_at is None:
            self._states[url] = replace(state, given_at=self.clock())

    def started(self, url: str) -> None:
        """``url``'s first shot began executing (``execution_start``): its load began."""
        state = self._state(url)
        if state.given_at is None:
            state = replace(state, given_at=self.clock())
        if state.started_at is None:
            self._states[url] = replace(state, started_at=self.clock())
        else:
            self._states[url] = state

    def loaded(self, url: str) -> None:
        """``url``'s first shot got past the model load (its first sampler ``progress``, or it finished):
        from now on it is warm."""
        state = self._state(url)
        self._states[url] = replace(state, loaded=True, given_at=state.given_at if state.given_at is not None
                                    else self.clock())

    def cold(self, url: str) -> None:
        """``url`` lost its models (it restarted): its next shot is a first shot again."""
        self._states[url] = ServerState(url)

    # -- what the pool asks ---------------------------------------------------------------------------
    def may_take(self, url: str) -> bool:
        return may_take(url, self._states.values(), self.clock(), self.stagger_seconds)

    def next_change(self) -> float | None:
        return next_change(self._states.values(), self.clock(), self.stagger_seconds)

    def rank(self, url: str) -> int:
        return rank(self._state(url))

    def ahead(self, url: str, default: int) -> int:
        return ahead(self._state(url), default)

    def state(self, url: str) -> ServerState:
        return self._state(url)

    @property
    def states(self) -> dict[str, ServerState]:
        return dict(self._states)

    def _state(self, url: str) -> ServerState:
        if url not in self._states:  # a server the pool did not announce: cold
            self._states[url] = ServerState(url)
        return self._states[url]
