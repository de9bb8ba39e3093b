"""Render a planned film's shots on one or many ComfyUI servers: the thin loop.

``render_film(plan, options, on_event)`` renders; it never stitches and never prints. It emits
``RenderEvent``s (the CLI draws them, or prints them as JSON lines) and returns a ``RenderResult``.
The parts: ``resume`` merges the ledger with the plan, ``machine`` decides every shot's next step
(pure), ``pool`` owns the servers and does the I/O; this loop routes what the pool hears to the
machine and hands the machine's effects back to the pool. ``film.make_film`` renders, then
stitches.

- Queue ahead: the event sockets are opened first, then every pending shot is submitted (with
  several servers, each is kept one shot ahead), so a GPU never waits for the client.
- Never lose work: the ledger is written atomically after every state change, *before* a prompt
  is posted (its id is ours), so a killed client re-attaches instead of rendering twice.
- Ctrl-C / SIGTERM: our queued prompts are removed and our running one interrupted; a prompt
  keeps its id in the ledger until the server confirms it is gone.
"""

from __future__ import annotations

import queue
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from wanclip.checks.preflight import fit_key, preflight
from wanclip.comfy.client import ComfyClient, split_credentials
from wanclip.comfy.events import Event, ExecutionStart, Progress
from wanclip.comfy.follow import Disconnected, Reconnected
from wanclip.errors import PreflightError, PromptRejected, ServerError
from wanclip.ledger import Ledger, film_lock
from wanclip.planning.plan import Plan
from wanclip.render import shot as m
from wanclip.render.chains import Chains
from wanclip.render.pool import Looked, Note, PoolTimes, ServerPool, ShotSpec
from wanclip.render.resume import open_ledger
from wanclip.render.stopping import stop_our_prompts
from wanclip.render.tracking import node_labels

SETTLED = ("done", "failed")


@dataclass
class RenderOptions:
    servers: list[str]
    headers: list[str] = field(default_factory=list)
    only: list[str] = field(default_factory=list)
    force: bool = False
    stitch: bool = True  # read by film.make_film; render_film itself never stitches
    shot_timeout: float = 1800.0  # seconds without any event for the running shot; also the outage limit
    server_grace: float = 30.0  # unreachable this long, with another server up: its shots move
    poll_interval: float = 1.0  # /queue + /history while a socket is down
    reconcile_interval: float = 5.0  # /queue + /history while all looks well
    history_timeout: float = 30.0
    submit_tries: int = 5
    cancel_wait: float = 10.0  # seconds Ctrl-C waits for the server to confirm our prompts are stopped
    clock: Callable[[], float] = time.monotonic
    session_factory: Callable | None = None  # I/O injection: a requests.Session factory
    ws_connect: Callable | None = None  # I/O injection: websocket.create_connection's stand-in
    client_factory: Callable | None = None  # I/O injection: url -> a ComfyClient (or a stand-in)
    submit_backoff: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 15.0)


@dataclass
class RenderEvent:
    kind: str
    shot: str | None = None
    index: int | None = None
    server: str | None = None
    data: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        out = {"event": self.kind, "time": round(time.time(), 3)}
        out.update({k: v for k, v in (("shot", self.shot), ("index", self.index), ("server", self.server))
                    if v is not None})
        out.update(self.data)
        return out


@dataclass
class RenderResult:
    ledger: Ledger
    selected: list[str]

    @property
    def exit_code(self) -> int:
        """0 when every selected shot is done, else 1."""
        return 0 if all(s.status == "done" for s in self.ledger.shots if s.name in self.selected) else 1


def render_film(plan: Plan, options: RenderOptions,
                on_event: Callable[[RenderEvent], None] = lambda event: None) -> RenderResult:
    """Render every selected shot of ``plan`` (one render per film folder at a time)."""
    with film_lock(plan.out_dir):
        return Render(plan, options, on_event).run()


class Render:
    def __init__(self, plan: Plan, options: RenderOptions, on_event: Callable[[RenderEvent], None],
                 inline: bool = False):
        self.plan, self.options, self.on_event, self.inline = plan, options, on_event, inline
        self.clock = options.clock
        self.rules = m.Rules(shot_timeout=options.shot_timeout, history_timeout=options.history_timeout,
                             submit_tries=options.submit_tries, backoff=options.submit_backoff)
        self.ledger = open_ledger(plan, options.force, options.only)
        self.positions = {r.name: i for i, r in enumerate(self.ledger.shots)}
        self.chains = Chains(plan, self.ledger)
        self.selected = self.chains.with_chains([s.name for s in plan.shots
                                                 if not options.only or s.name in options.only])
        now = self.clock()
        self.shots = {s.name: m.attached(self.ledger.shot(s.name), node_labels(s.graph), now)
                      for s in plan.shots if s.name in self.selected}
        self.accepted = False  # a submission of this run was accepted (a 400 after that fails one shot)
        self.sync = False  # effects run on this thread (while cancelling)
        self.pool: ServerPool | None = None
        self.able: dict[str, set[str]] = {}  # shot -> servers that have its nodes and models

    # -- the run ---------------------------------------------------------------------------------
    def run(self) -> RenderResult:
        for shot in self.shots.values():
            if shot.record.status == "done":
                self.emit("skipped", shot, clip=shot.record.clip)
        todo = [s for s in self.shots.values() if s.record.status != "done"]
        self.emit("plan", shots=len(self.shots), todo=len(todo),
                  servers=[split_credentials(u)[0] for u in self.options.servers])
        if not todo:
            return RenderResult(self.ledger, self.selected)
        try:
            self.start()
            while not self.settled:
                self.advance(timeout=0.2)
        except KeyboardInterrupt as exc:
            raise stop_our_prompts(self, exc) from exc
        finally:
            self.close()
        return RenderResult(self.ledger, self.selected)

    def start(self, check: bool = True) -> None:
        """Check the servers (``check``), open their event sockets, re-attach to shots already there."""
        self.pool = self._pool()
        if check:
            graphs = [s.graph for s in self.plan.shots if s.name in self.shots]
            infos = preflight([s.client for s in self.pool.servers.values()], graphs)
            for shot in self.plan.shots:
                key = fit_key(shot.graph)
                self.able[shot.name] = {i.url for i in infos if key not in i.unfit}
            for info in infos:
                self.pool.learned(info.url, info.capabilities)
                for lacks in info.unfit.values():
                    self.emit("warning", server=info.url, message=f"{info.url} gets no shot that needs what it "
                              f"lacks: {'; '.join(lacks)}")
                features = info.capabilities.describe() if info.capabilities else None
                self.emit("server", server=info.url, version=info.version, device=info.device, features=features)
        self.pool.open_streams()
        self._reattach()

    @property
    def settled(self) -> bool:
        return all(s.phase in SETTLED for s in self.shots.values())

    def advance(self, timeout: float = 0.0) -> None:
        """One turn of the loop: submit what can go, handle what arrived, then what the clock says."""
        self._dispatch()
        if not self.settled:
            self.step(timeout)

    def close(self) -> None:
        self.ledger.save()
        if self.pool is not None:
            self.pool.close()

    def _pool(self) -> ServerPool:
        o = self.options
        def make(url: str) -> ComfyClient:
            if o.client_factory:
                return o.client_factory(url)
            return ComfyClient(url, headers=o.headers, ws_connect=o.ws_connect,
                               session=o.session_factory() if o.session_factory else None)

        clients = [make(url) for url in dict.fromkeys(o.servers)]
        folder = self.ledger.folder
        specs = {s.name: ShotSpec(s.graph, folder / "clips" / s.stem, s.frames, s.width, s.height, s.fps,
                                  images=self.chains.keyframes(s), front=bool(s.continues),
                                  last_frame=self.chains.last_frame_path(s))
                 for s in self.plan.shots}
        times = PoolTimes(server_grace=o.server_grace, outage_limit=o.shot_timeout, poll_interval=o.poll_interval,
                          reconcile_interval=o.reconcile_interval)
        return ServerPool(clients, specs, folder, self.ledger.film["client_id"], clock=self.clock, times=times,
                          inline=self.inline)

    def _chain_ready(self, shot: m.Shot) -> bool:
        """A chain link goes once its predecessor's clip is verified, starting from its last frame."""
        ready = self.chains.ready(shot.name)
        if ready.verdict == "blocked":
            self.feed(shot.name, m.Blocked(ready.why))
        elif ready.picture is not None:
            spec = self.pool.specs[shot.name]
            if spec.images.get("start_image") != ready.picture:
                self.pool.specs[shot.name] = replace(spec, images={**spec.images, "start_image": ready.picture})
        return ready.verdict == "go"

    def _reattach(self) -> None:
        for shot in list(self.shots.values()):
            if shot.phase != "queued":
                continue
            if shot.record.server not in self.pool.servers:
                self.feed(shot.name, m.Moved("its server is not in this run's --server list"))
            else:
                self.emit("reattached", shot, prompt_id=shot.record.prompt_id)
                self.pool.soon(shot.record.server)

    def step(self, timeout: float = 0.0) -> None:
        """Handle what has arrived (waiting up to ``timeout`` for the first), then the clock's due."""
        try:
            item = self.pool.sink.get(timeout=timeout) if timeout else self.pool.sink.get_nowait()
        except queue.Empty:
            item = None
        while item is not None:
            self.route(*item)
            try:
                item = self.pool.sink.get_nowait()
            except queue.Empty:
                item = None
        self._tick()

    def _dispatch(self) -> None:
        for shot in self.shots.values():
            if not self.accepted and any(s.phase in ("submitting", "unconfirmed", "waiting")
                                         for s in self.shots.values()):
                return  # the first submission goes alone: a 400 then refuses the render with nothing sent
            if shot.phase != "idle" or not self._chain_ready(shot):
                continue
            load: dict[str, int] = {}
            for other in self.shots.values():
                if other.phase in (*m.ON_SERVER, "waiting") and other.record.server:
                    load[other.record.server] = load.get(other.record.server, 0) + 1
            url = self.pool.pick(load, self.able.get(shot.name))
            if url is None:
                continue  # no server for this one now; a later shot may fit another
            self.feed(shot.name, m.Assign(url, str(uuid.uuid4()), self.chains.start_sha256(shot.name)))

    # -- routing what the pool hears to the machine ----------------------------------------------
    def route(self, url: str, item) -> None:
        if item is None:
            return
        if isinstance(item, Disconnected):
            self.emit("socket_lost", server=url, reason=item.reason)
            self.pool.soon(url)
        elif isinstance(item, Reconnected):
            self.emit("socket_back", server=url)
            self.pool.soon(url)
        elif isinstance(item, Looked):
            self._looked(url, item)
        elif isinstance(item, Note):
            self.emit(item.kind, **item.data)
        elif isinstance(item, tuple):
            name, event = item
            if isinstance(event, m.SubmitRejected):
                event = replace(event, first=not self.accepted)
            elif isinstance(event, m.Submitted):
                self.accepted = True
            self.feed(name, event)
        elif isinstance(item, Event) and item.prompt_id:
            shot = self._by_prompt(url, item.prompt_id)
            if shot is not None:
                self.accepted = self.accepted or shot.phase == "submitting"  # it runs: the POST got in
                self._loading_news(url, shot, item)
                self.feed(shot.name, item)

    def _loading_news(self, url: str, shot: m.Shot, event: Event) -> None:
        """Tell the stagger policy when a server's first shot starts (its load began) and when a
        sampler steps (the load is over)."""
        if isinstance(event, ExecutionStart):
            self.pool.stagger.started(url)
        elif isinstance(event, Progress) and shot.labels.get(event.node or "", "").endswith("sampler"):
            self.pool.stagger.loaded(url)

    def _looked(self, url: str, looked: Looked) -> None:
        for note in self.pool.answered(url, looked.states is not None):
            self.emit(note.kind, **note.data)
        for pid, (state, entry) in (looked.states or {}).items():
            shot = self._by_prompt(url, pid)
            if shot is not None:
                self.feed(shot.name, m.ServerSays(state, entry, first=not self.accepted))

    def _by_prompt(self, url: str, prompt_id: str) -> m.Shot | None:
        for shot in self.shots.values():
            if shot.record.prompt_id == prompt_id and shot.record.server == url:
                return shot
        return None

    def _tick(self) -> None:
        for shot in list(self.shots.values()):
            if shot.phase in ("running", "waiting", "collecting") and not self.pool.down(shot.record.server):
                self.feed(shot.name, m.Tick())
        dead, notes, given_up = self.pool.housekeeping()
        for note in notes:
            self.emit(note.kind, **note.data)
        for url in dead:
            for shot in list(self.shots.values()):
                if shot.record.server == url:
                    self.feed(shot.name, m.Moved(f"{url} stopped answering"))
        if given_up:
            self._give_up()
        confirmed: dict[str, list[str]] = {}
        for shot in self.shots.values():
            if shot.phase in ("queued", "running", "unconfirmed", "cancelling"):
                confirmed.setdefault(shot.record.server, []).append(shot.record.prompt_id)
        self.pool.due_lookups(confirmed)

    def _give_up(self) -> None:
        self.ledger.save()
        waiting = [s.name for s in self.shots.values() if s.phase not in SETTLED]
        limit = self.options.shot_timeout
        raise ServerError(f"every server has been unreachable for more than {limit:.0f} s; "
                          f"{len(waiting)} unfinished shot{'s' if len(waiting) != 1 else ''} "
                          f"({', '.join(waiting)}) stay in the ledger: those on a server keep their prompt id",
                          "start ComfyUI again and rerun the same command: it re-attaches to the shots the "
                          "server still has and submits the rest (raise --timeout to wait longer)")

    # -- the machine and its effects ---------------------------------------------------------------
    def feed(self, name: str, event) -> None:
        shot = self.shots[name]
        new, effects = m.step(shot, event, self.clock(), self.rules)
        self.shots[name] = new
        self.ledger.shots[self.positions[name]] = new.record
        for effect in effects:
            self._apply(new, effect)

    def _apply(self, shot: m.Shot, effect) -> None:
        if isinstance(effect, m.SaveLedger):
            self.ledger.save()
        elif isinstance(effect, m.Emit):
            data = dict(effect.data)
            server = data.pop("server", None) or shot.record.server
            if effect.kind == "done" and server in self.pool.servers:
                self.pool.stagger.loaded(server)
            self.on_event(RenderEvent(effect.kind, shot.name, shot.record.index, server, data))
        elif isinstance(effect, m.Refuse):
            self.ledger.save()
            if not effect.validation:
                raise PreflightError(f"shot {effect.shot}: {effect.message}; nothing was rendered",
                                     "look at the ComfyUI console (or the proxy in front of it) for why it "
                                     "fails, then rerun the same command")
            raise PromptRejected(effect.message, node_errors=effect.node_errors, error=effect.error,
                                 shot=effect.shot)
        elif self.sync:
            if not isinstance(effect, m.Lookup):
                self.route(effect.server, self.pool.execute(effect))
        else:
            self.pool.carry_out(effect)

    def emit(self, kind: str, shot: m.Shot | None = None, server: str | None = None, **data) -> None:
        record = shot.record if shot else None
        self.on_event(RenderEvent(kind, record.name if record else None, record.index if record else None,
                                  server or (record.server if record else None), data))
