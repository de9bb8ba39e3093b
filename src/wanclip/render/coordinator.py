"""The film coordinator: every film-level decision of a render, as a pure state machine.

``Film.step(event, now)`` takes what happened (``Start``, ``Heard`` from the pool, ``Turn``,
``Stop``, ``Withdrawn``: ``wanclip.render.messages``) and the time, changes the film's state and
returns the effects to carry out, as data: the shot machine's (``Submit``, ``Download``,
``Delete``, ``SaveLedger``, ``Refuse`` ...) and the film's own (``Tell``, ``Look``, ``DropServer``,
``UseStartImage``, ``Quiesce``, ``GiveUp``). No I/O, no clock reads, no threads: the loop
(``wanclip.render.loop``) feeds it and runs the effects; the tests drive it with a plain float.

What it decides:

- the first submission of a run goes alone, so a 400 refuses the render with nothing else sent;
- which server takes the next shot: up, able to run it, least loaded, warm first, one shot ahead
  with several servers, cold loads staggered (``wanclip.render.stagger``);
- when to look a server's prompts up (soon after a socket drop or back, often while it is out,
  every few seconds otherwise) and what an answer means for its health;
- an outage: a server out past the grace with another up has its shots moved; every server out
  past the limit ends the render with the shots kept in the ledger;
- when a chain link may go (``wanclip.render.chains`` keeps the bookkeeping);
- the stop sequence (``wanclip.render.stopping``), and the same for a full disk (``NoSpace``, or a
  clip's ``DownloadFailed`` with ``no_space``): nothing more is posted, our queued prompts are
  removed, a running one is left to finish (its clip waits on the server for the next run).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from wanclip.comfy.events import Event, ExecutionStart, Progress
from wanclip.comfy.follow import Disconnected, Reconnected
from wanclip.ledger import ShotRecord
from wanclip.render import shot as machine
from wanclip.render import stopping
from wanclip.render.messages import (
    Assign,
    Blocked,
    DownloadFailed,
    DropServer,
    Emit,
    GiveUp,
    Heard,
    Look,
    Looked,
    Lookup,
    Moved,
    NoSpace,
    Note,
    NotSent,
    Quiesce,
    SaveLedger,
    ServerSays,
    Start,
    Stop,
    SubmitRejected,
    Submitted,
    Tell,
    Tick,
    Turn,
    UseStartImage,
    Withdrawn,
)
from wanclip.render.stagger import Stagger
from wanclip.render.state import SETTLED, Phase, Rules, Shot

LOADED = (*machine.ON_SERVER, Phase.WAITING)  # what counts against a server's load
LOOKED_AFTER = (Phase.QUEUED, Phase.RUNNING, Phase.UNCONFIRMED, Phase.CANCELLING)
TICKED = (Phase.RUNNING, Phase.WAITING, Phase.COLLECTING)


@dataclass(frozen=True)
class Times:
    server_grace: float = 30.0  # unreachable this long, with another server up: its shots move
    outage_limit: float = 1800.0  # every server unreachable this long: give up (the shots stay in the ledger)
    poll_interval: float = 1.0  # look-ups while a socket is down
    reconcile_interval: float = 5.0  # look-ups while everything looks fine (events can still be lost)
    down_backoff: tuple[float, ...] = (1.0, 2.0, 4.0, 5.0)
    notice_every: float = 5.0
    cancel_wait: float = 10.0  # how long a stop waits for the server to confirm
    stop_poll: float = stopping.STOP_POLL


@dataclass
class Health:
    """What the film knows of one server's health (times on the caller's clock)."""

    url: str
    down_since: float | None = None  # its look-ups fail since
    socket_up: bool = True
    next_lookup: float = 0.0
    looking: bool = False  # a look-up is out
    dead: bool = False  # given up for this run
    misses: int = 0  # look-ups in a row that got no answer
    noticed: float = 0.0  # when "unreachable for N s" was last said


class ChainReady(Protocol):
    """What the coordinator asks of the chain bookkeeping (``wanclip.render.chains.Chains``)."""

    def ready(self, name: str): ...

    def start_sha256(self, name: str) -> str | None: ...


@dataclass
class Film:
    shots: dict[str, Shot]
    records: list[ShotRecord]  # the ledger's rows: each shot's record is written back here
    servers: list[str]
    chains: ChainReady
    rules: Rules = field(default_factory=Rules)
    times: Times = field(default_factory=Times)
    able: dict[str, set[str]] = field(default_factory=dict)  # shot -> servers that have what it needs
    warm: set[str] = field(default_factory=set)
    limits: Mapping[str, int] = field(default_factory=dict)  # url -> the most shots it takes at once (v2)
    stagger_seconds: float = 0.0
    new_id: Callable[[], str] = lambda: str(uuid.uuid4())
    accepted: bool = False  # a submission of this run was accepted (a 400 after that fails one shot)
    stop: stopping.StopState | None = None
    no_space: NoSpace | None = None  # the first write that found the disk full: the render stops submitting
    now: float = 0.0
    health: dict[str, Health] = field(init=False)
    stagger: Stagger = field(init=False)
    pictures: dict[str, Path] = field(init=False)  # shot -> start image the pool was told
    out: list = field(init=False)
    positions: dict[str, int] = field(init=False)
    extra: dict[str, ShotRecord] = field(default_factory=dict)  # the records of shots not in ``records`` (post prompts)

    def __post_init__(self) -> None:
        self.use_servers(self.servers)
        self.pictures, self.out = {}, []
        self.positions = {r.name: i for i, r in enumerate(self.records)}

    def use_servers(self, urls: list[str]) -> None:
        """The servers as the pool names them (a URL's credentials are not part of its name)."""
        self.servers = list(dict.fromkeys(urls))
        self.health = {url: Health(url) for url in self.servers}
        self.stagger = Stagger(lambda: self.now, self.stagger_seconds)
        for url in self.health:
            self.stagger.add(url, warm=url in self.warm)

    # -- the one entry point ----------------------------------------------------------------------
    def step(self, event: object, now: float) -> list:
        """Handle ``event`` at ``now``; the effects to carry out, in order."""
        self.now, self.out = now, []
        match event:
            case Start():
                self._reattach()
            case Heard(server=url, item=item):
                self._heard(url, item)
            case Turn() if self.stop is not None:
                self._stop_turn()
            case Turn():
                self._turn()
            case Stop(signum=signum):
                self._stop(signum)
            case Withdrawn(shots=names):
                self._withdrawn(names)
            case NoSpace():
                self._no_space(event)
        return self.out

    @property
    def settled(self) -> bool:
        return all(s.phase in SETTLED for s in self.shots.values())

    @property
    def finished(self) -> bool:
        """Nothing more to do: every shot settled, or the stop sequence is over."""
        return self.stop.over if self.stop is not None else self.settled

    # -- the shots ----------------------------------------------------------------------------------
    def feed(self, name: str, event: object) -> None:
        new, effects = machine.step(self.shots[name], event, self.now, self.rules)
        self.shots[name] = new
        if name in self.positions:
            self.records[self.positions[name]] = new.record
        else:
            self.extra[name] = new.record
        for effect in effects:
            match effect:
                case Emit(kind=kind, data=data):
                    self._told(new, kind, dict(data))
                case Lookup(server=url):
                    if url in self.health:
                        self.health[url].next_lookup = 0.0
                case _:
                    self.out.append(effect)

    def _told(self, shot: Shot, kind: str, data: dict) -> None:
        server = data.pop("server", None) or shot.record.server
        if kind == "done" and server in self.health:
            self.stagger.loaded(server)  # it rendered: its models are resident
        self.out.append(Tell(kind, shot.name, shot.record.index, server, data))

    def tell(self, kind: str, shot: str | None = None, server: str | None = None, **data) -> None:
        record = self.shots[shot].record if shot in self.shots else None
        self.out.append(Tell(kind, shot, record.index if record else None,
                             server or (record.server if record else None), data))

    def _named(self, url: str, data: dict) -> dict:
        """A backend's note about one attempt (``data["attempt"]``) as a note about its shot."""
        shot = self._by_prompt(url, data["attempt"]) if "attempt" in data and "shot" not in data else None
        if shot is None:
            return data
        return {**data, "shot": shot.name, "message": f"shot {shot.name}: {data['message']}"}

    def _by_prompt(self, url: str, prompt_id: str) -> Shot | None:
        for shot in self.shots.values():
            if shot.record.prompt_id == prompt_id and shot.record.server == url:
                return shot
        return None

    def _reattach(self) -> None:
        for shot in list(self.shots.values()):
            if shot.phase != Phase.QUEUED:
                continue
            if shot.record.server not in self.health:
                self.feed(shot.name, Moved("its server is not in this run's --server list"))
            else:
                self.tell("reattached", shot.name, prompt_id=shot.record.prompt_id)
                self.health[shot.record.server].next_lookup = 0.0

    # -- what the pool heard --------------------------------------------------------------------------
    def _heard(self, url: str, item: object) -> None:
        match item:
            case Disconnected(reason=reason):
                self._socket(url, False)
                self.tell("socket_lost", server=url, reason=reason)
            case Reconnected():
                self._socket(url, True)
                self.tell("socket_back", server=url)
            case Looked():
                self._looked(url, item)
            case Note(kind=kind, data=data):
                self.tell(kind, **self._named(url, data))
            case (str() as name, answer):
                self._answer(name, answer)
            case Event(prompt_id=str() as pid):
                shot = self._by_prompt(url, pid)
                if shot is not None:
                    self.accepted = self.accepted or shot.phase == Phase.SUBMITTING  # it runs: the POST got in
                    self._loading_news(url, shot, item)
                    self.feed(shot.name, item)

    def _socket(self, url: str, up: bool) -> None:
        if url in self.health:
            self.health[url].socket_up = up
            self.health[url].next_lookup = 0.0

    def _answer(self, name: str, answer: object) -> None:
        if isinstance(answer, SubmitRejected):
            answer = replace(answer, first=not self.accepted)
        elif isinstance(answer, Submitted):
            self.accepted = True
        self.feed(name, answer)
        if isinstance(answer, DownloadFailed) and answer.no_space:
            self._no_space(NoSpace(answer.message, answer.no_space))

    def _loading_news(self, url: str, shot: Shot, event: Event) -> None:
        """Tell the stagger policy when a server's first shot starts (its load began) and when a
        sampler steps (the load is over)."""
        if isinstance(event, ExecutionStart):
            self.stagger.started(url)
        elif isinstance(event, Progress) and shot.labels.get(event.node or "", "").endswith("sampler"):
            self.stagger.loaded(url)

    def _looked(self, url: str, looked: Looked) -> None:
        if url in self.health:
            self.health[url].looking = False
        if self.stop is not None:
            self._stop_looked(url, looked)
            return
        self._answered(url, looked.states is not None)
        for pid, (state, entry) in (looked.states or {}).items():
            shot = self._by_prompt(url, pid)
            if shot is not None:
                self.feed(shot.name, ServerSays(state, entry, first=not self.accepted))

    # -- health -------------------------------------------------------------------------------------------
    def _answered(self, url: str, ok: bool) -> None:
        health = self.health[url]
        health.misses = 0 if ok else health.misses + 1
        if ok and health.down_since is not None:
            seconds = self.now - health.down_since
            health.down_since = None
            self.stagger.cold(url)  # back after an outage: most likely restarted, its models gone
            self.tell("server_back", server=url, seconds=round(seconds, 1))
        elif not ok and health.down_since is None:
            health.down_since, health.noticed = self.now, self.now

    def alive(self) -> list[Health]:
        return [h for h in self.health.values() if not h.dead]

    def _outages(self) -> bool:
        """Move the shots of a server out past the grace (another is up); say who is out. True when
        every server has been out past the limit."""
        t = self.times
        for health in self.alive():
            if health.down_since is None:
                continue
            out_for = self.now - health.down_since
            others_up = any(h.down_since is None for h in self.alive() if h is not health)
            if others_up and out_for > t.server_grace:
                health.dead = True
                self.out.append(DropServer(health.url))
                self.tell("server_down", server=health.url, seconds=round(out_for, 1))
                for shot in list(self.shots.values()):
                    if shot.record.server == health.url:
                        self.feed(shot.name, Moved(f"{health.url} stopped answering"))
            elif self.now - health.noticed >= t.notice_every:
                health.noticed = self.now  # the real wait: the grace when its shots can move, else the limit
                self.tell("server_unreachable", server=health.url, seconds=round(out_for),
                          limit=round(t.server_grace if others_up else t.outage_limit), moves=others_up)
        alive = self.alive()
        return bool(alive) and all(h.down_since is not None and self.now - h.down_since > t.outage_limit
                                   for h in alive)

    def _due_lookups(self) -> None:
        """Look up where they are due: often while a server or its socket is out, every few seconds
        otherwise (a socket can look healthy and still have lost events)."""
        t = self.times
        for health in self.alive():
            ids = tuple(s.record.prompt_id for s in self.shots.values()
                        if s.phase in LOOKED_AFTER and s.record.server == health.url and s.record.prompt_id)
            if health.looking or self.now < health.next_lookup:
                continue
            if health.down_since is not None:
                interval = t.down_backoff[min(max(health.misses - 1, 0), len(t.down_backoff) - 1)]
            elif not health.socket_up:
                interval = t.poll_interval
            elif ids:
                interval = t.reconcile_interval
            else:
                continue
            health.next_lookup, health.looking = self.now + interval, True
            self.out.append(Look(health.url, ids))

    # -- time passes ------------------------------------------------------------------------------------
    def _turn(self) -> None:
        for shot in list(self.shots.values()):
            health = self.health.get(shot.record.server or "")
            if shot.phase in TICKED and not (health and health.down_since is not None):
                self.feed(shot.name, Tick())
        if self._outages():
            self.out.append(SaveLedger())
            self.out.append(GiveUp(tuple(s.name for s in self.shots.values() if s.phase not in SETTLED),
                                   self.times.outage_limit))
            return
        self._due_lookups()
        if not self.settled:
            self._dispatch()

    def _dispatch(self) -> None:
        for shot in list(self.shots.values()):
            if not self.accepted and any(s.phase in (Phase.SUBMITTING, Phase.UNCONFIRMED, Phase.WAITING)
                                         for s in self.shots.values()):
                return  # the first submission goes alone: a 400 then refuses the render with nothing sent
            if self.shots[shot.name].phase != Phase.IDLE or not self._chain_ready(shot.name):
                continue
            url = self.pick(self._load(), self.able.get(shot.name))
            if url is None:
                continue  # no server for this one now; a later shot may fit another
            self.feed(shot.name, Assign(url, self.new_id(), self.chains.start_sha256(shot.name)))

    def _load(self) -> dict[str, int]:
        load: dict[str, int] = {}
        for shot in self.shots.values():
            if shot.phase in LOADED and shot.record.server:
                load[shot.record.server] = load.get(shot.record.server, 0) + 1
        return load

    def _chain_ready(self, name: str) -> bool:
        """A chain link goes once its predecessor's clip is verified, starting from its last frame."""
        ready = self.chains.ready(name)
        if ready.verdict == "blocked":
            self.feed(name, Blocked(ready.why))
        elif ready.picture is not None and self.pictures.get(name) != ready.picture:
            self.pictures[name] = ready.picture
            self.out.append(UseStartImage(name, ready.picture))
        return ready.verdict == "go"

    def pick(self, load: dict[str, int], able: set[str] | None = None) -> str | None:
        """The server for the next shot, among those up that can run it (``able``): least loaded,
        warm ones first. With one server, every shot is queued at once (queue-ahead); with several,
        each is kept one shot ahead (running + one), a cold one holds only its first shot while it
        loads, and cold loads start ``stagger_seconds`` apart (``wanclip.render.stagger``)."""
        up = [h for h in self.alive() if h.down_since is None and (able is None or h.url in able)
              and load.get(h.url, 0) < self.limits.get(h.url, 1 << 30)]
        if not up:
            return None
        if len(self.alive()) == 1:
            return up[0].url
        st = self.stagger
        ready = [h for h in up if load.get(h.url, 0) < st.ahead(h.url, 2) and st.may_take(h.url)]
        if not ready:
            return None
        url = min(ready, key=lambda h: (load.get(h.url, 0), st.rank(h.url))).url
        st.given(url)
        return url

    # -- the stop sequence (wanclip.render.stopping) --------------------------------------------------------
    def _stop(self, signum: int) -> None:
        if self.stop is None:
            self.stop = stopping.StopState(signum)
            self.out.append(Quiesce())  # answered with Withdrawn
        elif not self.stop.over:
            self._stop_over()  # a second signal: stop waiting, keep what is not confirmed

    def _no_space(self, event: NoSpace) -> None:
        """The first full-disk write: post nothing more, remove our queued prompts, leave a running
        one to finish (``stopping``); a stop already under way (Ctrl-C) goes on as it is."""
        if self.no_space is not None:
            return
        self.no_space = event
        self.tell("warning", message=f"{event.message}: no more prompts are sent, ours still queued are removed "
                  "from the servers")
        if self.stop is None:
            self.stop = stopping.StopState(0, keep_running=True)
            self.out.append(Quiesce())

    def _withdrawn(self, names: tuple[str, ...]) -> None:
        for name in names:  # never posted: those shots are simply pending again
            self.feed(name, NotSent())
        if self.stop is not None and not self.stop.withdrawn:
            self.stop.withdrawn, self.stop.deadline = True, self.now + self.times.cancel_wait

    def _stop_turn(self) -> None:
        st = self.stop
        if st is None or st.over or not st.withdrawn:
            return
        waiting = [s for s in self.shots.values()
                   if s.phase in stopping.UNRESOLVED and s.name not in st.left and self._reachable(s)]
        if not waiting or (st.deadline is not None and self.now >= st.deadline):
            self._stop_over()
            return
        if self.now < st.next_ask:
            return
        st.next_ask = self.now + self.times.stop_poll
        for health in self.alive():
            ours = self._to_stop(health.url)
            if ours and not health.looking and self._reachable(ours[0]):
                health.looking = True
                st.asking.add(health.url)
                self.out.append(Look(health.url, tuple(s.record.prompt_id for s in ours if s.record.prompt_id)))

    def _to_stop(self, url: str) -> list[Shot]:
        """Our shots on ``url`` the stop asks about (not those a full-disk stop leaves running)."""
        left = self.stop.left if self.stop is not None else set()
        return [s for s in stopping.asked(list(self.shots.values()), url) if s.name not in left]

    def _reachable(self, shot: Shot) -> bool:
        """Worth waiting for: its server is in the run, and answered (or has a stop to confirm)."""
        st, url = self.stop, shot.record.server
        health = self.health.get(url or "")
        if health is None or health.dead or st is None:
            return False
        return url not in st.silent or any(s.phase == Phase.CANCELLING and s.record.server == url
                                           for s in self.shots.values())

    def _stop_looked(self, url: str, looked: Looked) -> None:
        if self.stop is None or self.stop.over or url not in self.stop.asking:
            return  # over, or the answer to a look-up from before the stop: ask afresh
        self.stop.asking.discard(url)
        if looked.states is None:
            self.stop.silent.add(url)
            self.tell("warning", server=url, message=f"could not ask {url} to stop our prompts: {looked.error}")
            return
        if self.stop.keep_running:
            self.stop.left.update(stopping.running_left(self._to_stop(url), looked.states))
        for name, event in stopping.answers(self._to_stop(url), looked.states):
            self.feed(name, event)

    def _stop_over(self) -> None:
        if self.stop is not None:
            self.stop.over = True
        self.out.append(SaveLedger())

    def interrupted_message(self, ledger_path: Path) -> str:
        return stopping.message(list(self.shots.values()), ledger_path)
