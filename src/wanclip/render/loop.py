"""Render a planned film's shots on one or many ComfyUI servers: the thin loop.

``render_film(plan, options, on_event)`` renders; it never stitches and never prints. It emits
``RenderEvent``s (the CLI draws them, or prints them as JSON lines) and returns a ``RenderResult``.
The parts: ``resume`` merges the ledger with the plan, the film coordinator (``coordinator``,
pure) decides everything film-level and each shot's next step (through the shot machine), the
``pool`` owns the servers and does the I/O. This loop is the thin shell between them: it feeds the
coordinator what the pool heard, the time and any stop request, and carries out the effects it
returns, one way: through the pool. ``film.make_film`` renders, then stitches.

- Queue ahead: the event sockets are opened first, then every pending shot is submitted (with
  several servers, each is kept one shot ahead), so a GPU never waits for the client.
- Never lose work: the ledger is written atomically after every state change, *before* a prompt
  is posted (its id is ours), so a killed client re-attaches instead of rendering twice.
- Ctrl-C / SIGTERM: recorded by a signal handler, handed to the coordinator between two steps
  (never raised into one): our queued prompts are removed and our running one interrupted; a
  prompt keeps its id in the ledger until the server confirms it is gone.
- A full disk (a clip, a last frame or the ledger that cannot be written): the first one stops
  the render the same way, except that a running prompt is left to finish; it ends with a
  ``LocalIOError`` (exit 1) saying how much room the shots not rendered need (``room``).
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from wanclip.checks.preflight import fit_key
from wanclip.comfy.client import ComfyClient, split_credentials
from wanclip.config import stagger_seconds
from wanclip.errors import Interrupted, LocalIOError, PreflightError, PromptRejected, ServerError
from wanclip.ledger import Ledger, film_lock
from wanclip.planning.plan import Plan
from wanclip.planning.postgraph import unavailable
from wanclip.render import shot as m
from wanclip.render import stopping
from wanclip.render.chains import Chains
from wanclip.render.comfyui import ComfyBackend
from wanclip.render.coordinator import Film, Times
from wanclip.render.events import RenderEvent
from wanclip.render.messages import (
    DropServer,
    GiveUp,
    Heard,
    Look,
    NoSpace,
    Quiesce,
    Refuse,
    SaveLedger,
    Start,
    Stop,
    Submit,
    Tell,
    Turn,
    UseStartImage,
    Withdrawn,
)
from wanclip.render.pool import JobCrashed, ServerPool, ShotSpec
from wanclip.render.posts import AFTER_EACH, AT_END, Posts, Readiness, base_name, is_post, post_record
from wanclip.render.resume import open_ledger
from wanclip.render.room import no_space_error
from wanclip.render.stagger import DEFAULT_STAGGER_SECONDS
from wanclip.render.state import Phase
from wanclip.render.surfaces import Limits, backend_for
from wanclip.render.takes import take_stem
from wanclip.render.tracking import node_labels
from wanclip.signals import StopRequests, exit_code_for_signal, signal_of
from wanclip.urls import redact


@dataclass
class RenderOptions:
    servers: list[str]
    headers: dict[str, str] = field(default_factory=dict)  # extra HTTP headers (a proxy's), parsed
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
    backend_factory: Callable | None = None  # (url, client_id) -> a render.backend.Backend (default: ComfyUI's)
    warm: frozenset[str] = frozenset()  # servers whose models are loaded already (`wanclip serve --warm`)
    submit_backoff: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 15.0)
    api: str = "auto"  # native | v2 | auto: a Comfy API v2 surface when its /api/v2/health answers
    concurrency: int | None = None  # jobs in flight on one v2 surface (None: its default)
    post_order: str = AT_END  # a post prompt goes behind the queued shots (at-end) or right after its shot (after-each)


@dataclass
class RenderResult:
    ledger: Ledger
    selected: list[str]

    @property
    def exit_code(self) -> int:
        """0 when every selected shot is done (with its post clip, where the film wants one), else 1."""
        return 0 if all(s.status == "done" and not self.ledger.post_wanted(s)
                        for s in self.ledger.shots if s.name in self.selected) else 1


def render_film(plan: Plan, options: RenderOptions,
                on_event: Callable[[RenderEvent], None] = lambda event: None) -> RenderResult:
    """Render every selected shot of ``plan`` (one render per film folder at a time)."""
    plan.check_folder()  # another film's folder, or the user's files: refused before the lock writes there
    with film_lock(plan.out_dir):
        return Render(plan, options, on_event).run()


class Render:
    """One render: the coordinator (``film``), the pool, the ledger, and the stop requests.

    ``inline=True`` gives the pool that runs effects on this thread (the tests' synchronous pool);
    the loop itself runs every effect the same way either way."""

    def __init__(self, plan: Plan, options: RenderOptions, on_event: Callable[[RenderEvent], None],
                 inline: bool = False):
        self.plan, self.options, self.on_event, self.inline = plan, options, on_event, inline
        self.clock = options.clock
        # the servers for the page's re-render command (never a password: user:pass@ is ***@)
        self.ledger = open_ledger(plan, options.force, options.only,
                                  film={"servers": [redact(u) for u in options.servers]})
        self.chains = Chains(plan, self.ledger)
        self.selected = self.chains.with_chains([s.name for s in plan.shots
                                                 if not options.only or s.name in options.only])
        now = self.clock()
        shots = {s.name: m.attached(self.ledger.shot(s.name), node_labels(s.graph, s.roles), now)
                 for s in plan.shots if s.name in self.selected}
        self.posts = Posts(plan, self.ledger)
        for name in self.posts.wanted(self.selected):  # after every shot: the dispatch goes in this order
            record = post_record(self.ledger.shot(name), self.posts.job(name), self.posts.start_sha256(name))
            shots[record.name] = m.attached(record, {}, now)
        o = options
        rules = m.Rules(shot_timeout=o.shot_timeout, history_timeout=o.history_timeout,
                        submit_tries=o.submit_tries, backoff=o.submit_backoff)
        times = Times(server_grace=o.server_grace, outage_limit=o.shot_timeout, poll_interval=o.poll_interval,
                      reconcile_interval=o.reconcile_interval, cancel_wait=o.cancel_wait)
        self.film = Film(shots, self.ledger.shots, list(o.servers), Readiness(self.chains, self.posts),
                         rules=rules, times=times,
                         warm=set(o.warm), stagger_seconds=stagger_seconds(DEFAULT_STAGGER_SECONDS))
        self.stops = StopRequests()
        self.pool: ServerPool | None = None

    @property
    def shots(self) -> dict[str, m.Shot]:
        return self.film.shots

    @property
    def settled(self) -> bool:
        return self.film.settled

    # -- the run ---------------------------------------------------------------------------------
    def run(self) -> RenderResult:
        for shot in self.shots.values():
            if shot.record.status == "done":
                used = self.ledger.film_take(shot.record)  # the take the film uses: maybe pinned, maybe edited
                if used and used.get("edited_sha256"):
                    self.emit("warning", shot, message=f"clip {shot.record.name} changed since it was rendered: "
                              "using your version")
                self.emit("skipped", shot, clip=used["clip"] if used else shot.record.clip)
        todo = [s for s in self.shots.values() if s.record.status != "done" and not is_post(s.name)]
        posts = [s for s in self.shots.values() if is_post(s.name)]
        self.emit("plan", shots=len(self.shots) - len(posts), todo=len(todo), posts=len(posts) or None,
                  servers=[split_credentials(u)[0] for u in self.options.servers])
        if not todo and not posts:
            return RenderResult(self.ledger, self.selected)
        with self.stops.installed():
            try:
                self.start()
                while not self.film.finished:
                    self.advance(timeout=0.2)
            finally:
                self.close()
        if self.film.no_space is not None and (self.film.stop is None or self.film.stop.keep_running):
            raise self.no_space()
        if self.film.stop is not None:
            raise self.interrupted()
        return RenderResult(self.ledger, self.selected)

    def start(self, check: bool = True) -> None:
        """Check the servers (``check``), open their event sockets, re-attach to shots already there."""
        self.pool = self._pool()
        self.film.use_servers(list(self.pool.servers))
        if check:
            graphs = [s.graph for s in self.plan.shots if s.name in self.shots]
            infos = self.pool.preflight(graphs)
            for shot in self.plan.shots:
                key = fit_key(shot.graph)
                self.film.able[shot.name] = {i.url for i in infos if key not in i.unfit}
            for info in infos:
                self.pool.learned(info.url)
                for lacks in info.unfit.values():
                    self.emit("warning", server=info.url, message=f"{info.url} gets no shot that needs what it "
                              f"lacks: {'; '.join(lacks)}")
                features = info.capabilities.describe() if info.capabilities else None
                self.emit("server", server=info.url, version=info.version, device=info.device, features=features)
        self.pool.open_streams()
        self._post_servers()
        self.feed(Start())

    def request_stop(self, signum: int) -> None:
        """Stop as SIGINT/SIGTERM would: taken at the next ``advance``."""
        self.stops.request(signum)

    def advance(self, timeout: float = 0.0) -> None:
        """One turn of the loop: a stop request, then what the pool heard (waiting up to ``timeout``
        for the first), then what the clock says and what can be submitted."""
        try:
            signum = self.stops.take()
            if signum is not None:
                self.feed(Stop(signum))
            self._heard(timeout)
            if not self.film.finished:
                self.feed(Turn())
        except KeyboardInterrupt as exc:  # not through our handler (off the main thread): still a stop
            self.stops.request(signal_of(exc))

    def close(self) -> None:
        try:
            self.ledger.save()
        except LocalIOError as exc:
            if not (exc.no_space and self.film.no_space is not None):
                raise  # on a full disk the ledger on disk is the last one written whole: a rerun resumes from it
        finally:
            if self.pool is not None:
                self.pool.close()

    def no_space(self) -> LocalIOError:
        """The closing error of a render a full disk stopped: what the rest needs, what is free."""
        assert self.film.no_space is not None
        left = self.film.stop.left if self.film.stop is not None else set()
        shots = list(self.shots.values())
        on_server = [(s.name, "left to finish" if s.name in left else stopping.how(s), s.record.server)
                     for s in shots if s.phase in stopping.UNRESOLVED and s.phase != Phase.WAITING]
        return no_space_error(self.film.no_space.path, [s.record for s in shots], self.ledger.folder,
                              self.ledger.shots, [s.name for s in shots if s.phase == Phase.KEPT], on_server)

    def interrupted(self) -> Interrupted:
        stop = self.film.stop
        code = exit_code_for_signal(stop.signum) if stop is not None else 130
        return Interrupted(self.film.interrupted_message(self.ledger.path), "run the same command again to resume",
                           exit_code=code)

    def _pool(self) -> ServerPool:
        o = self.options
        def make(url: str) -> ComfyClient:
            if o.client_factory:
                return o.client_factory(url)
            return ComfyClient(url, headers=o.headers, ws_connect=o.ws_connect,
                               session=o.session_factory() if o.session_factory else None)

        client_id = self.ledger.film["client_id"]
        backends = [o.backend_factory(url, client_id) if o.backend_factory else ComfyBackend(make(url), client_id)
                    if o.client_factory or o.session_factory else
                    backend_for(url, client_id, api=o.api, headers=o.headers, native=make, records=self.ledger.shots,
                                concurrency=o.concurrency) for url in dict.fromkeys(o.servers)]
        self.film.limits = Limits(backends)  # a v2 surface's concurrency, lowered live on a 429
        if any(is_post(name) for name in self.shots):
            for backend in backends:
                if hasattr(backend, "wants_post"):
                    backend.wants_post = True
        folder = self.ledger.folder
        stems = {r.name: take_stem(r, folder) for r in self.ledger.shots}  # each take has its own file
        specs = {s.name: ShotSpec(s.graph, s.roles, folder / "clips" / stems[s.name], s.frames, s.width, s.height,
                                  s.fps, images=self.chains.keyframes(s), front=bool(s.continues),
                                  last_frame=self.chains.last_frame_path(s))
                 for s in self.plan.shots}
        front = self.options.post_order == AFTER_EACH
        for name in (n for n in self.shots if is_post(n)):
            job = self.posts.job(name)
            specs[name] = ShotSpec({}, None, self.posts.stem(name), job.frames, job.width, job.height, job.fps,
                                   front=front, post=job)
        return ServerPool(backends, specs, folder, inline=self.inline)

    def _post_servers(self) -> None:
        """Which servers can run the post prompts (each their own nodes and models); none: refused
        before any GPU work, with what is missing and how to get it."""
        posts = [n for n in self.shots if is_post(n)]
        if not posts:
            return
        assert self.pool is not None
        servers = self.pool.servers
        for name in posts:
            job = self.posts.job(name)
            why = {url: ("it could not be asked which nodes it has (a Comfy API v2 surface has no /object_info)"
                         if s.traits.post is None else unavailable(job, s.traits.post)) for url, s in servers.items()}
            able = {url for url, problem in why.items() if problem is None}
            if not able:
                reasons = "; ".join(f"{url}: {problem}" for url, problem in why.items())
                raise PreflightError(f"no server can run the post step of shot {base_name(name)} "
                                     f"({job.describe()}): {reasons}; nothing was submitted",
                                     "install what it names, or render without `post:` (the rendered clips "
                                     "stay; a later render with `post:` makes only the post clips)")
            self.film.able[name] = able

    def _heard(self, timeout: float) -> None:
        """Hand the coordinator what has arrived (waiting up to ``timeout`` for the first)."""
        sink = self._sink()
        try:
            item = sink.get(timeout=timeout) if timeout else sink.get_nowait()
        except queue.Empty:
            return
        while True:
            if isinstance(item[1], JobCrashed):
                raise item[1].error
            self.feed(Heard(*item))
            try:
                item = sink.get_nowait()
            except queue.Empty:
                return

    def _sink(self) -> queue.Queue:
        assert self.pool is not None, "start() first"
        return self.pool.sink

    # -- the coordinator and its effects ------------------------------------------------------------
    def feed(self, event: object) -> None:
        """One step of the coordinator, then every effect it asked for, in order."""
        for effect in self.film.step(event, self.clock()):
            self._carry_out(effect)

    def _carry_out(self, effect: object) -> None:
        pool = self.pool
        assert pool is not None, "start() first"
        match effect:
            case SaveLedger():
                self._save()
            case Submit() if self.film.stop is not None:  # a full disk stopped the render in this very step
                self.feed(Withdrawn((effect.shot,)))
            case Tell():
                self._tell(effect)
            case Look(server=url, prompt_ids=ids):
                pool.look(url, list(ids))
            case DropServer(server=url):
                pool.drop(url)
            case UseStartImage(shot=name, picture=picture) if is_post(name):
                pool.specs[name] = replace(pool.specs[name], images={"video": picture},
                                           stem=self.posts.stem(name, picture))
            case UseStartImage(shot=name, picture=picture):
                spec = pool.specs[name]
                pool.specs[name] = replace(spec, images={**spec.images, "start_image": picture})
            case Quiesce():
                withdrawn = pool.quiesce()  # the request on the wire answers into the sink
                self.feed(Withdrawn(tuple(e.shot for e in withdrawn)))
            case Refuse():
                self.ledger.save()
                raise _refused(effect)
            case GiveUp():
                raise _given_up(effect)
            case _:
                pool.carry_out(effect)

    def _save(self) -> None:
        """Save the ledger; a full disk stops the render (the file on disk stays the last whole one)."""
        for record in self.film.extra.values():  # the post prompts' records live in their shots' records
            self.posts.keep(record)
        try:
            self.ledger.save()
        except LocalIOError as exc:
            if not exc.no_space:
                raise
            self.feed(NoSpace(exc.message, exc.path or str(self.ledger.path)))

    def _tell(self, tell: Tell) -> None:
        if is_post(tell.shot):  # a post prompt speaks as its shot: post_submitted, post_started, post_done...
            kind = tell.kind if tell.kind in ("warning", "server_down", "server_back") else f"post_{tell.kind}"
            self._send(RenderEvent(kind, base_name(tell.shot), tell.index, tell.server, dict(tell.data)))
            return
        self._send(RenderEvent(tell.kind, tell.shot, tell.index, tell.server, dict(tell.data)))

    def emit(self, kind: str, shot: m.Shot | None = None, server: str | None = None, **data) -> None:
        record = shot.record if shot else None
        self._send(RenderEvent(kind, record.name if record else None, record.index if record else None,
                               server or (record.server if record else None), data))

    def _send(self, event: RenderEvent) -> None:
        try:
            self.on_event(event)
        except KeyboardInterrupt as exc:  # a caller's way to say stop: taken after this step
            self.stops.request(signal_of(exc))


def _refused(effect: Refuse) -> Exception:
    if not effect.validation:
        return PreflightError(f"shot {effect.shot}: {effect.message}; nothing was rendered",
                              "look at the ComfyUI console (or the proxy in front of it) for why it "
                              "fails, then rerun the same command")
    return PromptRejected(effect.message, node_errors=effect.node_errors, error=effect.error, shot=effect.shot,
                          server=effect.server)


def _given_up(effect: GiveUp) -> ServerError:
    waiting, limit = effect.waiting, effect.limit
    return ServerError(f"every server has been unreachable for more than {limit:.0f} s; "
                       f"{len(waiting)} unfinished shot{'s' if len(waiting) != 1 else ''} "
                       f"({', '.join(waiting)}) stay in the ledger: those on a server keep their prompt id",
                       "start ComfyUI again and rerun the same command: it re-attaches to the shots the "
                       "server still has and submits the rest (raise --timeout to wait longer)")
