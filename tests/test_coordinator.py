"""The film coordinator alone: no server, no threads, no clock. Each test feeds it events at explicit
times (``Turn``, ``Heard`` for what the pool would hear, ``Stop``) and checks its effects, the
shots' records (the ledger's rows) and what it would tell the person. ``Server`` is a scripted
ComfyUI that answers effects synchronously, as the tests' pool does."""

from __future__ import annotations

import itertools
import signal
from pathlib import Path

import pytest

from wanclip.comfy.events import parse
from wanclip.comfy.follow import Disconnected
from wanclip.ledger import ShotRecord
from wanclip.render import messages as msg
from wanclip.render import shot as m
from wanclip.render.chains import GO, WAIT, Ready
from wanclip.render.coordinator import Film, Times

A, B = "http://gpu-a:8188", "http://gpu-b:8188"
RULES = m.Rules(shot_timeout=60.0, history_timeout=30.0, submit_tries=3, backoff=(1.0, 2.0, 4.0))
TIMES = Times(server_grace=30.0, outage_limit=120.0, poll_interval=1.0, reconcile_interval=5.0,
              cancel_wait=10.0, stop_poll=0.2)
SAMPLER = {"81": "high-noise sampler"}


class Chains:
    """The chain bookkeeping's answers, set by the test (every shot goes by default)."""

    def __init__(self):
        self.answers: dict[str, Ready] = {}

    def ready(self, name: str) -> Ready:
        return self.answers.get(name, GO)

    def start_sha256(self, name: str) -> str | None:
        return None


class Server:
    """What one ComfyUI has of ours: pending ids, the running one, finished ones."""

    def __init__(self, url: str):
        self.url, self.pending, self.running, self.done = url, [], None, {}
        self.posts: list[str] = []
        self.honours_interrupts = True

    def state(self, pid: str) -> tuple[str, dict | None]:
        if pid == self.running:
            return "running", None
        if pid in self.pending:
            return "pending", None
        if pid in self.done:
            return "done", self.done[pid]
        return "missing", None

    def has(self, pid: str | None) -> bool:
        return pid is not None and (pid in self.pending or pid == self.running)


def film(shots: int = 3, servers=(A,), **kw) -> Film:
    records = [ShotRecord(index=i, name=f"shot-{i}", graph_sha256="g", seed=i, frames=5, width=64, height=64,
                          fps=16.0) for i in range(1, shots + 1)]
    ids = (f"p-{n}" for n in itertools.count(1))
    return Film({r.name: m.attached(r, dict(SAMPLER), 0.0) for r in records}, records, list(servers), Chains(),
                rules=RULES, times=TIMES, new_id=lambda: next(ids), **kw)


class Driver:
    """Feeds the coordinator and keeps every effect; ``run`` answers them the way a pool would."""

    def __init__(self, f: Film, *servers: Server):
        self.film, self.now = f, 0.0
        self.servers = {s.url: s for s in servers}
        self.effects: list = []
        self.heard: list[msg.Heard] = []  # answers waiting in the "sink"

    def step(self, event, at: float | None = None) -> list:
        self.now = self.now if at is None else at
        out = self.film.step(event, self.now)
        self.effects += out
        return out

    def told(self, kind: str) -> list:
        return [e for e in self.effects if isinstance(e, msg.Tell) and e.kind == kind]

    def answer(self, effects: list, *, posts: bool = True) -> None:
        """Carry the effects out on the scripted servers; their answers wait in ``heard``."""
        for e in effects:
            server = self.servers.get(getattr(e, "server", ""))
            if isinstance(e, m.Submit) and posts:
                server.posts.append(e.prompt_id)
                server.pending.append(e.prompt_id)
                self.heard.append(msg.Heard(e.server, (e.shot, m.Submitted())))
            elif isinstance(e, msg.Look):
                self.heard.append(msg.Heard(e.server, msg.Looked({p: server.state(p) for p in e.prompt_ids})))
            elif isinstance(e, m.Delete):
                server.pending.remove(e.prompt_id)
            elif isinstance(e, m.Interrupt) and server.running == e.prompt_id and server.honours_interrupts:
                server.running = None
            elif isinstance(e, msg.Quiesce):
                self.step(msg.Withdrawn())

    def heard_backlog(self):
        while self.heard:
            yield self.heard.pop(0)

    def turn(self, at: float | None = None) -> list:
        """One turn of the loop: the answers waiting, then the clock; effects carried out."""
        for item in self.heard_backlog():
            self.answer(self.step(item))
        out = self.step(msg.Turn(), at)
        self.answer(out)
        return out

    def run_until(self, condition, step: float = 0.25, turns: int = 200) -> None:
        for _ in range(turns):
            if condition():
                return
            self.turn(self.now + step)
        raise AssertionError(f"never; effects: {self.effects[-10:]}")


def kinds(effects: list) -> list[str]:
    return [e.kind if isinstance(e, msg.Tell) else type(e).__name__ for e in effects]


def statuses(f: Film) -> list[tuple[str, str | None]]:
    return [(r.status, r.prompt_id) for r in f.records]


# -- submitting ------------------------------------------------------------------------------------


def test_the_first_submission_goes_alone_then_every_shot_is_queued_at_once_on_one_server():
    d = Driver(film(3), Server(A))
    first = d.step(msg.Turn(), at=0.0)
    assert kinds(first) == ["SaveLedger", "Submit"] and first[1].shot == "shot-1"
    assert d.step(msg.Turn(), at=0.1) == []  # nothing more before the first is accepted
    d.step(msg.Heard(A, ("shot-1", m.Submitted())))
    rest = d.step(msg.Turn(), at=0.2)
    assert [e.shot for e in rest if isinstance(e, m.Submit)] == ["shot-2", "shot-3"]
    assert [r.status for r in d.film.records] == ["queued"] * 3


def test_a_400_on_the_first_submission_refuses_the_render_with_nothing_else_sent():
    d = Driver(film(2), Server(A))
    d.step(msg.Turn())
    out = d.step(msg.Heard(A, ("shot-1", m.SubmitRejected("bad", {"81": {}}))))
    assert kinds(out) == ["SaveLedger", "Refuse"] and statuses(d.film) == [("pending", None)] * 2


def test_a_400_after_one_was_accepted_fails_only_that_shot():
    d = Driver(film(2), Server(A))
    d.step(msg.Turn())
    d.step(msg.Heard(A, ("shot-1", m.Submitted())))
    d.step(msg.Turn())
    out = d.step(msg.Heard(A, ("shot-2", m.SubmitRejected("bad"))))
    assert "Refuse" not in kinds(out) and d.film.records[1].status == "failed"


def test_a_cold_server_holds_only_its_first_shot_and_cold_loads_are_staggered():
    d = Driver(film(4, servers=(A, B), stagger_seconds=30.0), Server(A), Server(B))
    d.turn(0.0)
    d.turn(0.1)  # shot-1 accepted on one server
    first = d.film.records[0].server
    other = B if first == A else A
    assert [r.server for r in d.film.records] == [first, None, None, None]
    d.turn(29.0)  # the other one is cold too: it waits for the head start
    assert d.film.records[1].server is None
    d.turn(30.5)
    assert d.film.records[1].server == other and d.film.records[2].server is None  # each loading holds one
    d.step(msg.Heard(first, parse('{"type":"progress","data":{"prompt_id":"p-1","node":"81","value":1,"max":4}}')))
    d.turn(31.0)  # past its load: one shot ahead
    assert d.film.records[2].server == first


def test_a_warm_server_takes_the_first_shot():
    d = Driver(film(2, servers=(A, B), warm={B}), Server(A), Server(B))
    d.turn(0.0)
    assert d.film.records[0].server == B


def test_a_chain_link_waits_for_its_predecessor_then_starts_from_its_last_frame():
    f = film(2)
    f.chains.answers["shot-2"] = WAIT
    d = Driver(f, Server(A))
    d.turn(0.0)
    d.turn(0.1)
    assert d.film.records[1].status == "pending"
    picture = Path("/film/frames/shot-1.last.png")
    f.chains.answers["shot-2"] = Ready("go", picture)
    out = d.turn(0.2)
    assert kinds(out)[:1] == ["UseStartImage"] and out[0].picture == picture and "Submit" in kinds(out)


def test_a_chain_link_whose_predecessor_failed_fails_without_a_submission():
    f = film(2)
    f.chains.answers["shot-2"] = Ready("blocked", why="shot-1 failed")
    d = Driver(f, Server(A))
    d.turn(0.0)
    d.turn(0.1)
    assert d.film.records[1].status == "failed" and d.film.records[1].prompt_id is None


# -- health ------------------------------------------------------------------------------------------------


def test_a_lost_socket_is_looked_up_at_once_then_every_poll_interval():
    d = Driver(film(1), Server(A))
    d.turn(0.0)
    d.turn(0.1)  # accepted: a first reconcile goes out
    d.turn(0.15)  # and is answered
    out = d.step(msg.Heard(A, Disconnected(None, reason="reset")))
    assert kinds(out) == ["socket_lost"]
    assert kinds(d.step(msg.Turn(), at=0.2)) == ["Look"]
    d.step(msg.Heard(A, msg.Looked({"p-1": ("pending", None)})))
    assert d.step(msg.Turn(), at=1.0) == []
    assert kinds(d.step(msg.Turn(), at=1.3)) == ["Look"]


def test_a_server_out_past_the_grace_hands_its_shots_to_the_other():
    d = Driver(film(2, servers=(A, B)), Server(A), Server(B))
    d.run_until(lambda: all(r.status == "queued" for r in d.film.records))
    gone = d.film.records[0].server
    d.step(msg.Heard(gone, msg.Looked(error="refused")), at=10.0)
    d.step(msg.Turn(), at=39.0)
    assert not d.told("server_down")
    out = d.step(msg.Turn(), at=40.5)
    assert msg.DropServer(gone) in out and d.told("server_down")[0].server == gone
    assert any(t.shot == "shot-1" for t in d.told("lost"))
    d.run_until(lambda: all(r.status == "queued" for r in d.film.records))
    assert {r.server for r in d.film.records} == {B if gone == A else A}


def test_the_unreachable_note_says_the_real_wait_the_grace_when_others_are_up_else_the_limit():
    """#19.13: it said "waiting up to 1800 s" while the shots moved to the other server after 30 s."""
    d = Driver(film(2, servers=(A, B)), Server(A), Server(B))
    d.run_until(lambda: all(r.status == "queued" for r in d.film.records))
    gone = d.film.records[0].server
    d.step(msg.Heard(gone, msg.Looked(error="refused")), at=10.0)
    d.step(msg.Turn(), at=20.0)
    [note] = d.told("server_unreachable")
    assert (note.server, note.data["limit"], note.data.get("moves")) == (gone, 30, True)
    alone = Driver(film(1), Server(A))
    alone.run_until(lambda: all(r.status == "queued" for r in alone.film.records))
    alone.step(msg.Heard(A, msg.Looked(error="refused")), at=10.0)
    alone.step(msg.Turn(), at=20.0)
    [note] = alone.told("server_unreachable")
    assert (note.data["limit"], note.data.get("moves")) == (120, False)


def test_every_server_out_past_the_limit_gives_up_with_the_shots_kept():
    d = Driver(film(2), Server(A))
    d.run_until(lambda: all(r.status == "queued" for r in d.film.records))
    d.step(msg.Heard(A, msg.Looked(error="refused")), at=10.0)
    d.step(msg.Turn(), at=100.0)
    assert d.told("server_unreachable") and not any(isinstance(e, msg.GiveUp) for e in d.effects)
    out = d.step(msg.Turn(), at=130.5)
    assert out[-1] == msg.GiveUp(("shot-1", "shot-2"), 120.0)
    assert all(r.status == "queued" and r.prompt_id for r in d.film.records)


def test_a_server_back_after_an_outage_is_cold_and_said_back():
    d = Driver(film(1), Server(A))
    d.turn(0.0)
    d.step(msg.Heard(A, msg.Looked(error="refused")), at=5.0)
    d.step(msg.Heard(A, msg.Looked({})), at=9.0)
    assert d.told("server_back")[0].data == {"seconds": 4.0}
    assert d.film.stagger.state(A).warm is False


# -- the stop sequence ---------------------------------------------------------------------------------------


def on_server(d: Driver, running: bool = True) -> Server:
    """Every shot queued on A (every answer heard), the first running."""
    server = d.servers[A]
    d.run_until(lambda: len(server.pending) == len(d.film.shots))
    for item in d.heard_backlog():
        d.answer(d.step(item))
    if running:
        server.running = server.pending.pop(0)
        d.step(msg.Heard(A, parse('{"type":"execution_start","data":{"prompt_id":"p-1","timestamp":1}}')))
    return server


def stop(d: Driver, signum: int = signal.SIGINT) -> None:
    d.answer(d.step(msg.Stop(signum)))


def test_stop_deletes_queued_prompts_before_interrupting_the_running_one_then_waits_for_confirmation():
    d = Driver(film(3), Server(A))
    server = on_server(d)
    stop(d)
    ask = d.step(msg.Turn(), at=d.now + 0.01)
    assert kinds(ask) == ["Look"] and set(ask[0].prompt_ids) == {"p-1", "p-2", "p-3"}
    d.answer(ask)
    out = []
    for item in d.heard_backlog():
        out += d.step(item)
    assert [type(e).__name__ for e in out if isinstance(e, m.Delete | m.Interrupt)] == ["Delete", "Delete",
                                                                                         "Interrupt"]
    assert all(r.prompt_id for r in d.film.records)  # nothing confirmed yet
    d.answer(out)
    assert d.step(msg.Turn(), at=d.now + 0.1) == []  # the next ask waits for the poll interval
    d.run_until(lambda: d.film.finished, step=0.2)
    assert statuses(d.film) == [("pending", None)] * 3 and not server.pending and server.running is None
    assert "none of our prompts is left" in d.film.interrupted_message(Path("ledger.json"))
    assert d.film.stop.exit_code == 130


def test_a_stop_the_server_does_not_confirm_ends_after_cancel_wait_and_names_the_prompt():
    d = Driver(film(1), Server(A))
    server = on_server(d, running=False)
    server.running = server.pending.pop(0)
    d.step(msg.Heard(A, parse('{"type":"execution_start","data":{"prompt_id":"p-1","timestamp":1}}')))
    server.honours_interrupts = False
    stop(d, signal.SIGTERM)
    start = d.now
    d.run_until(lambda: d.film.finished, step=0.5)
    assert d.film.finished and d.now >= start + TIMES.cancel_wait
    record = d.film.records[0]
    assert (record.status, record.prompt_id, record.cancelled) == ("running", "p-1", True)
    assert "shot-1 (asked to stop) on http://gpu-a:8188" in d.film.interrupted_message(Path("l.json"))
    assert d.film.stop.exit_code == 143


def test_a_second_stop_stops_waiting():
    d = Driver(film(1), Server(A))
    on_server(d)
    stop(d)
    d.turn(d.now + 0.1)
    assert not d.film.finished
    assert kinds(d.step(msg.Stop(signal.SIGINT))) == ["SaveLedger"] and d.film.finished


def test_a_server_that_cannot_be_asked_keeps_every_id_and_the_message_says_so():
    d = Driver(film(2), Server(A))
    on_server(d, running=False)
    stop(d)
    d.step(msg.Turn(), at=d.now + 0.01)
    d.step(msg.Heard(A, msg.Looked(error="connection refused")))
    d.step(msg.Turn(), at=d.now + 0.5)
    assert d.film.finished and d.told("warning")
    assert all(r.status == "queued" and r.prompt_id for r in d.film.records)
    assert "still on the server: shot-1 (queued)" in d.film.interrupted_message(Path("l.json"))


def test_a_stopping_film_submits_nothing_and_retries_nothing():
    d = Driver(film(2), Server(A))
    d.turn(0.0)
    d.step(msg.Heard(A, ("shot-1", m.SubmitUnsure("HTTP 502"))))
    stop(d)
    out = d.step(msg.Turn(), at=50.0)
    assert not [e for e in out if isinstance(e, m.Submit)]


# -- the stop race: a stop at every point of the first shot's start ------------------------------------------

POINTS = ["before the save", "between save and POST", "POST on the wire", "after its answer",
          "POST answered unsure"]


@pytest.mark.parametrize("point", POINTS)
def test_after_a_stop_at_any_point_of_the_first_start_the_ledger_and_message_match_the_server(point):
    d = Driver(film(2), Server(A))
    server = d.servers[A]
    if point == "before the save":
        stop(d)
        d.turn(0.1)
    else:
        start = d.step(msg.Turn(), at=0.0)  # saves shot-1 as queued with its id, then asks for the POST
        assert kinds(start) == ["SaveLedger", "Submit"] and d.film.records[0].prompt_id == "p-1"
        if point == "between save and POST":  # the pool still holds the Submit: withdrawn, never sent
            d.answer(d.step(msg.Stop(signal.SIGTERM)), posts=False)
            d.step(msg.Withdrawn(("shot-1",)))
        elif point == "POST on the wire":  # the pool waits for the answer, which arrives after Withdrawn
            d.step(msg.Stop(signal.SIGTERM))
            d.step(msg.Withdrawn())
            d.answer(start)
        elif point == "after its answer":
            d.answer(start)
            d.step(d.heard.pop(0))
            stop(d, signal.SIGTERM)
        else:  # the server got it but the answer was a 502
            server.posts.append("p-1")
            server.pending.append("p-1")
            d.step(msg.Heard(A, ("shot-1", m.SubmitUnsure("HTTP 502"))))
            stop(d, signal.SIGTERM)
    d.run_until(lambda: d.film.finished)
    message = d.film.interrupted_message(Path("ledger.json"))
    assert not server.pending and server.running is None  # nothing of ours is left there
    assert statuses(d.film) == [("pending", None)] * 2  # and the ledger says so
    assert "none of our prompts is left on the server" in message
    assert server.posts == ([] if point in ("before the save", "between save and POST") else ["p-1"])


def test_a_look_up_sent_before_the_stop_is_not_taken_for_its_answer():
    """Seen on the simulator: a reconcile sent before shot-2 was queued came back during the stop
    saying only "shot-1 running"; acting on it interrupted shot-1 before shot-2 was deleted, and the
    server started shot-2."""
    d = Driver(film(2), Server(A))
    d.turn(0.0)
    d.turn(0.1)  # shot-1 accepted: a reconcile for it goes out (not answered yet)
    old = [e for e in d.effects if isinstance(e, msg.Look)][-1]
    assert old.prompt_ids == ("p-1",)
    d.heard = [h for h in d.heard if not isinstance(h.item, msg.Looked)]  # its answer is slow
    server = d.servers[A]
    d.turn(0.2)  # shot-2 posted and accepted
    for item in d.heard_backlog():
        d.answer(d.step(item))
    server.running = server.pending.pop(0)
    stop(d)
    stale = d.step(msg.Heard(A, msg.Looked({"p-1": ("running", None)})))
    assert stale == []
    ask = d.step(msg.Turn(), at=0.5)
    assert kinds(ask) == ["Look"] and set(ask[0].prompt_ids) == {"p-1", "p-2"}
    d.answer(ask)
    out = d.step(d.heard.pop(0))
    assert [type(e).__name__ for e in out if isinstance(e, m.Delete | m.Interrupt)] == ["Delete", "Interrupt"]
