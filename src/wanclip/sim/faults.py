"""Faults on demand, from `--faults SPEC` or in-process.

SPEC is a comma-separated list (commas inside {}, [] or "..." do not split); prompt numbers N
count executed prompts from 1 (since start):
  fail:N[@NODE][=MESSAGE]   prompt N raises an execution_error at node NODE (id or class_type;
                            default the first KSamplerAdvanced)
  stall:N[@NODE]            prompt N hangs at NODE until interrupted or restarted (in-process:
                            or until ``faults.release(N)``)
  restart:N                 the server restarts while prompt N runs (queue, history, running lost)
  down_for:N=SECONDS        during prompt N (at its first progress step) the server goes away:
                            listening socket closed, connections refused, websockets dropped without
                            a close frame; SECONDS later it is back on the same port, empty
  ws_close:N                every websocket is closed after it was sent N messages
  stale_ws:SECONDS          a closed websocket's client id stays registered SECONDS longer (a
                            half-open socket the server has not noticed; 0.38 then wants credentials)
  send_raw:N=TEXT           each websocket gets the text frame TEXT after it was sent N messages
                            (e.g. send_raw:3={"type":"progress","data":{"value":"12%"}})
  slow_interrupt:SECONDS    /interrupt and cancels take effect SECONDS late (the next step's check)
  endless_view              /view streams bytes forever (no length)
  wrong_view_size:BYTES     /view says Content-Length BYTES whatever the file's size (fewer: a short
                            file that looks complete; more: the connection closes early)
  delay:ROUTE=SECONDS       ROUTE (e.g. /history, also matches /api/history/...) answers late
  http500:ROUTE[*COUNT]     ROUTE answers 500 before doing anything (the next COUNT requests, or
                            always): a POST /prompt that got a 500 was NOT queued
  http502_after:ROUTE[*COUNT]  ROUTE does its work, then answers 502 (a proxy that timed out): a
                            POST /prompt that got this 502 WAS queued
  encode_fail:N[=MESSAGE]   (with the wanclip node pack) prompt N's background encode fails: no
                            file, NAME.failed with MESSAGE, a failed wanclip.video event
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
    lost_answers: dict[str, int | None] = field(default_factory=dict)  # route -> remaining 502s after the work
    down: dict[int, float] = field(default_factory=dict)  # prompt N -> seconds unreachable
    raw_frames: list[tuple[int, str]] = field(default_factory=list)  # (after N messages, text)
    stale_ws_seconds: float = 0.0
    interrupt_delay: float = 0.0
    view_endless: bool = False
    view_size: int | None = None
    encode_fail: dict[int, str | None] = field(default_factory=dict)  # prompt N -> message (node pack)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # In-process API: each returns self so calls chain.
    def fail_prompt(self, n: int, node: str | None = None, message: str | None = None) -> Faults:
        self.fail[n] = NodeFault(node, message)
        return self

    def stall_prompt(self, n: int, node: str | None = None) -> Faults:
        self.stall[n] = NodeFault(node)
        return self

    def release(self, n: int) -> Faults:
        """Prompt N's stall ends: it runs on to its end (in-process only)."""
        self.stall.pop(n, None)
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

    def down_for(self, seconds: float, during: int) -> Faults:
        """During prompt N (at its first progress step) the server is unreachable for `seconds`,
        then listens again on the same port with an empty queue and history (a real restart)."""
        self.down[during] = seconds
        return self

    def send_raw(self, frame_text: str, after_messages: int = 0) -> Faults:
        """Every websocket gets `frame_text` as a text frame once it was sent `after_messages` messages."""
        self.raw_frames.append((after_messages, frame_text))
        return self

    def stale_ws(self, seconds: float) -> Faults:
        """A closed websocket's client id stays registered `seconds` longer (half-open socket)."""
        self.stale_ws_seconds = seconds
        return self

    def slow_interrupt(self, seconds: float) -> Faults:
        """/interrupt (and jobs cancel) takes effect only `seconds` later, like ComfyUI's next-step check."""
        self.interrupt_delay = seconds
        return self

    def endless_view(self) -> Faults:
        """/view streams bytes forever, with no Content-Length (a hostile server)."""
        self.view_endless = True
        return self

    def wrong_view_size(self, size: int) -> Faults:
        """/view claims Content-Length `size` for every file."""
        self.view_size = size
        return self

    def bad_gateway_after(self, route: str, times: int | None = None) -> Faults:
        """ROUTE does its work (POST /prompt queues) and then answers 502, `times` times or always."""
        self.lost_answers[_norm(route)] = times
        return self

    def fail_encode(self, n: int, message: str | None = None) -> Faults:
        """Prompt N's background encode (WanclipSaveVideo) fails: NAME.failed and a failed event."""
        self.encode_fail[n] = message
        return self

    def clear(self) -> None:
        with self._lock:
            self.fail.clear()
            self.stall.clear()
            self.restart_at.clear()
            self.ws_close_after = None
            self.delays.clear()
            self.errors.clear()
            self.lost_answers.clear()
            self.down.clear()
            self.raw_frames.clear()
            self.stale_ws_seconds = 0.0
            self.interrupt_delay = 0.0
            self.view_endless = False
            self.view_size = None
            self.encode_fail.clear()

    def route_delay(self, path: str) -> float:
        return max((s for r, s in self.delays.items() if _matches(r, path)), default=0.0)

    def take_route_error(self, path: str) -> bool:
        """True when this request must get a 500; counts down limited faults."""
        return self._take(self.errors, path)

    def take_lost_answer(self, path: str) -> bool:
        """True when this request's answer must be replaced by a 502; counts down limited faults."""
        return self._take(self.lost_answers, path)

    def _take(self, table: dict[str, int | None], path: str) -> bool:
        with self._lock:
            for route, left in table.items():
                if not _matches(route, path):
                    continue
                if left is None:
                    return True
                if left > 0:
                    table[route] = left - 1
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
    for item in filter(None, (p.strip() for p in _split_items(spec or ""))):
        kind, _, arg = item.partition(":")
        try:
            _apply(faults, kind.strip(), arg.strip())
        except (ValueError, IndexError) as exc:
            raise ValueError(f"bad fault {item!r}: {exc}. See `wanclip sim --help` for the syntax.") from exc
    return faults


def _split_items(spec: str) -> list[str]:
    """Splits at commas that are outside brackets and double quotes, so JSON frames stay whole."""
    items, depth, quoted, start, escape = [], 0, False, 0, False
    for i, ch in enumerate(spec):
        if quoted:
            if escape:
                escape = False
            elif ch == "\\":
                escape = True
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            items.append(spec[start:i])
            start = i + 1
    items.append(spec[start:])
    return items


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
    elif kind in ("http500", "http502_after"):
        route, _, count = arg.partition("*")
        if not route.strip():
            raise ValueError("needs a route, e.g. /prompt")
        add = faults.fail_route if kind == "http500" else faults.bad_gateway_after
        add(route, int(count) if count else None)
    elif kind == "down_for":
        n, _, seconds = arg.partition("=")
        faults.down_for(float(seconds), during=int(n))
    elif kind == "send_raw":
        n, sep, text = arg.partition("=")
        if not sep:
            raise ValueError("needs N=TEXT")
        faults.send_raw(text, after_messages=int(n))
    elif kind == "stale_ws":
        faults.stale_ws(float(arg))
    elif kind == "slow_interrupt":
        faults.slow_interrupt(float(arg))
    elif kind == "encode_fail":
        n, _, message = arg.partition("=")
        faults.fail_encode(int(n), message or None)
    elif kind == "endless_view":
        faults.endless_view()
    elif kind == "wrong_view_size":
        faults.wrong_view_size(int(arg))
    else:
        raise ValueError(f"unknown kind {kind!r}")
