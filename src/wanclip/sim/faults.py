"""Faults on demand, from `--faults SPEC` or in-process.

SPEC is a comma-separated list; prompt numbers N count executed prompts from 1 (since start):
  fail:N[@NODE][=MESSAGE]   prompt N raises an execution_error at node NODE (id or class_type;
                            default the first KSamplerAdvanced)
  stall:N[@NODE]            prompt N hangs at NODE until interrupted or restarted
  restart:N                 the server restarts while prompt N runs (queue, history, running lost)
  ws_close:N                every websocket is closed after it was sent N messages
  delay:ROUTE=SECONDS       ROUTE (e.g. /history, also matches /api/history/...) answers late
  http500:ROUTE[*COUNT]     ROUTE answers 500 (the next COUNT requests, or always)
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass
class NodeFault:
    node: str | None = None  # node id or class_type; None = first sampler
    message: str | None = None


@dataclass
class Faults:
    fail: dict[int, NodeFault] = field(default_factory=dict)
    stall: dict[int, NodeFault] = field(default_factory=dict)
    restart_at: set[int] = field(default_factory=set)
    ws_close_after: int | None = None
    delays: dict[str, float] = field(default_factory=dict)
    errors: dict[str, int | None] = field(default_factory=dict)  # route -> remaining (None = always)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # In-process API: each returns self so calls chain.
    def fail_prompt(self, n: int, node: str | None = None, message: str | None = None) -> Faults:
        self.fail[n] = NodeFault(node, message)
        return self

    def stall_prompt(self, n: int, node: str | None = None) -> Faults:
        self.stall[n] = NodeFault(node)
        return self

    def restart_during(self, n: int) -> Faults:
        self.restart_at.add(n)
        return self

    def close_ws_after(self, n: int | None) -> Faults:
        self.ws_close_after = n
        return self

    def delay_route(self, route: str, seconds: float) -> Faults:
        self.delays[_norm(route)] = seconds
        return self

    def fail_route(self, route: str, times: int | None = None) -> Faults:
        self.errors[_norm(route)] = times
        return self

    def clear(self) -> None:
        with self._lock:
            self.fail.clear()
            self.stall.clear()
            self.restart_at.clear()
            self.ws_close_after = None
            self.delays.clear()
            self.errors.clear()

    def route_delay(self, path: str) -> float:
        return max((s for r, s in self.delays.items() if _matches(r, path)), default=0.0)

    def take_route_error(self, path: str) -> bool:
        """True when this request must get a 500; counts down limited faults."""
        with self._lock:
            for route, left in self.errors.items():
                if not _matches(route, path):
                    continue
                if left is None:
                    return True
                if left > 0:
                    self.errors[route] = left - 1
                    return True
        return False


def _norm(route: str) -> str:
    route = "/" + route.strip().lstrip("/")
    return route[4:] if route.startswith("/api/") else route


def _matches(route: str, path: str) -> bool:
    path = _norm(path)
    return path == route or path.startswith(route.rstrip("/") + "/")


def parse_faults(spec: str | None) -> Faults:
    """Parses the --faults syntax above; raises ValueError naming the bad item."""
    faults = Faults()
    for item in filter(None, (p.strip() for p in (spec or "").split(","))):
        kind, _, arg = item.partition(":")
        try:
            _apply(faults, kind.strip(), arg.strip())
        except (ValueError, IndexError) as exc:
            raise ValueError(f"bad fault {item!r}: {exc}. See `wanclip sim --help` for the syntax.") from exc
    return faults


def _apply(faults: Faults, kind: str, arg: str) -> None:
    if kind in ("fail", "stall"):
        head, _, message = arg.partition("=")
        n, _, node = head.partition("@")
        if kind == "fail":
            faults.fail_prompt(int(n), node or None, message or None)
        else:
            faults.stall_prompt(int(n), node or None)
    elif kind == "restart":
        faults.restart_during(int(arg))
    elif kind == "ws_close":
        faults.close_ws_after(int(arg))
    elif kind == "delay":
        route, _, seconds = arg.partition("=")
        faults.delay_route(route, float(seconds))
    elif kind == "http500":
        route, _, count = arg.partition("*")
        faults.fail_route(route, int(count) if count else None)
    else:
        raise ValueError(f"unknown kind {kind!r}")
