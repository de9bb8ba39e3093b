"""Render a planned film on one or many ComfyUI servers: queue ahead, follow, download, resume.

``render_film(plan, options, on_event)`` is the whole job. It never prints: it emits
``RenderEvent``s (the CLI draws them, or prints them as JSON lines) and returns a ``RenderResult``.

- Queue ahead: the event socket is opened first, then every pending shot is submitted (with several
  servers, each is kept one shot ahead, least loaded first), so a GPU never waits for the client.
- Never lose work: the ledger is written atomically after every state change, *before* a prompt is
  posted (its id is ours), so a killed client can always re-attach instead of rendering twice.
- A dropped socket is reopened with the same ``client_id`` while ``/queue`` + ``/history`` are
  polled; a prompt found in neither was lost to a restart and is submitted again.
- A server that stops answering for ``server_grace`` seconds has its shots moved to the others.
"""

from __future__ import annotations

import queue
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from wanclip import media
from wanclip.comfy.client import ComfyClient, split_credentials
from wanclip.comfy.events import (
    Event,
    Executed,
    Executing,
    ExecutionCached,
    ExecutionError,
    ExecutionInterrupted,
    ExecutionStart,
    ExecutionSuccess,
    Progress,
    history_error,
    history_timestamps,
)
from wanclip.comfy.follow import Disconnected, EventStream, Reconnected, prompt_states, wait_for_history
from wanclip.errors import ClipError, Interrupted, PreflightError, PromptRejected, ServerError, WanclipError
from wanclip.files import sha256_file
from wanclip.ledger import Ledger, ShotRecord, film_lock, ledger_path, load_ledger
from wanclip.outputs import fetch_clip
from wanclip.plan import Plan, PlannedShot
from wanclip.preflight import preflight
from wanclip.workflow import canonical_json, find_roles

ACTIVE = ("queued", "running")
LOADERS = ("UNETLoader", "CLIPLoader", "VAELoader", "LoraLoaderModelOnly", "LoraLoader", "ModelSamplingSD3")


@dataclass
class RenderOptions:
    servers: list[str]
    headers: list[str] = field(default_factory=list)
    only: list[str] = field(default_factory=list)
    force: bool = False
    stitch: bool = True
    shot_timeout: float = 1800.0  # seconds without any event for the running shot
    server_grace: float = 30.0  # seconds a server may be unreachable before its shots move
    poll_interval: float = 1.0  # /queue + /history while a socket is down
    history_timeout: float = 30.0
    session_factory: Callable | None = None  # I/O injection: a requests.Session factory
    ws_connect: Callable | None = None  # I/O injection: websocket.create_connection's stand-in


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
    film: object | None = None  # StitchResult when stitched
    stitch_note: str | None = None
    stitch_failed: bool = False

    @property
    def exit_code(self) -> int:
        """0 when every selected shot is done (and the film, when asked for, was written), else 1."""
        done = all(s.status == "done" for s in self.ledger.shots if s.name in self.selected)
        return 0 if done and not self.stitch_failed else 1


@dataclass
class _Tracking:
    """What the client knows of a shot while it is on a server (not saved: rebuilt from events)."""

    labels: dict[str, str]
    last_event: float
    node: str | None = None
    node_started: float = 0.0
    outputs: dict = field(default_factory=dict)
    started: float | None = None


@dataclass
class _Server:
    client: ComfyClient
    stream: EventStream | None = None
    outstanding: list[str] = field(default_factory=list)  # prompt ids, in submission order
    down_since: float | None = None
    last_poll: float = 0.0
    dead: bool = False

    @property
    def url(self) -> str:
        return self.client.url


def node_labels(graph: dict) -> dict[str, str]:
    """Node id -> what the person watching should read (and ``node_seconds`` is keyed by)."""
    roles = find_roles(graph)
    labels = {}
    for node_id, node in graph.items():
        cls = node["class_type"]
        if node_id == roles.high_sampler:
            labels[node_id] = "high-noise sampler"
        elif node_id == roles.low_sampler:
            labels[node_id] = "low-noise sampler"
        elif cls in LOADERS:
            labels[node_id] = "model load"
        elif cls == "CLIPTextEncode":
            labels[node_id] = "text encode"
        elif cls.startswith("VAEDecode"):
            labels[node_id] = "decode"
        elif node_id == roles.output or cls == "CreateVideo":
            labels[node_id] = "combine"
        else:
            labels[node_id] = "other"
    return labels


class RenderSession:
    def __init__(self, plan: Plan, options: RenderOptions, on_event: Callable[[RenderEvent], None]):
        self.plan, self.options, self.on_event = plan, options, on_event
        self.planned = {s.name: s for s in plan.shots}
        self.events: queue.Queue = queue.Queue()
        self.servers: dict[str, _Server] = {}
        self.by_prompt: dict[str, ShotRecord] = {}
        self.tracking: dict[str, _Tracking] = {}
        self.ledger = self._open_ledger()
        self.selected = [s.name for s in plan.shots if not options.only or s.name in options.only]
        self.selected_names = set(self.selected)
        self.submitted_this_run = False

    # -- the ledger ------------------------------------------------------------------------------
    def _open_ledger(self) -> Ledger:
        path = ledger_path(self.plan.out_dir)
        old = load_ledger(path) if path.exists() else Ledger(path=path)
        previous = {s.name: s for s in old.shots}
        film = self.plan.film
        client_id = old.film.get("client_id") or f"wanclip-{uuid.uuid4().hex[:12]}"
        ledger = Ledger(path=path, film={
            "title": film.title, "slug": film.slug, "shots_file": str(self.plan.shots_file), "fps": film.fps,
            "width": film.width, "height": film.height, "seconds": round(self.plan.seconds, 4),
            "workflow": str(self.plan.workflow), "client_id": client_id, "stitched": old.film.get("stitched")})
        for shot in self.plan.shots:
            ledger.shots.append(self._merge(shot, previous.get(shot.name), ledger))
        ledger.save()
        return ledger

    def _merge(self, shot: PlannedShot, old: ShotRecord | None, ledger: Ledger) -> ShotRecord:
        fresh = ShotRecord(index=shot.index, name=shot.name, graph_sha256=shot.graph_sha256, seed=shot.seed,
                           frames=shot.frames, width=shot.width, height=shot.height, fps=shot.fps,
                           transition=shot.transition.model_dump() if shot.transition else None)
        if old is None or old.graph_sha256 != shot.graph_sha256:
            return fresh
        forced = self.options.force or shot.name in self.options.only
        old.index, old.transition = shot.index, fresh.transition
        if old.status == "done" and not forced and self._clip_intact(old, ledger):
            return old
        if old.status in ACTIVE and old.prompt_id:
            return old  # re-attach: it may still be rendering (or be done) on its server
        fresh.attempts = old.attempts
        return fresh

    def _clip_intact(self, record: ShotRecord, ledger: Ledger) -> bool:
        path = ledger.folder / record.clip if record.clip else None
        return bool(path and path.is_file() and sha256_file(path) == record.clip_sha256)

    def save(self) -> None:
        self.ledger.save()

    def emit(self, kind: str, record: ShotRecord | None = None, server: str | None = None, **data) -> None:
        self.on_event(RenderEvent(kind, record.name if record else None, record.index if record else None,
                                  server, data))

    # -- the run ---------------------------------------------------------------------------------
    def run(self) -> RenderResult:
        selected = [self.ledger.shot(n) for n in self.selected]
        for record in selected:
            if record.status == "done":
                self.emit("skipped", record, record.server, clip=record.clip)
        todo = [r for r in selected if r.status != "done"]
        servers = [split_credentials(url)[0] for url in self.options.servers]
        self.emit("plan", shots=len(selected), todo=len(todo), servers=servers)
        if todo:
            self._preflight()
            self._connect()
            try:
                self._reattach(todo)
                self._loop()
            except KeyboardInterrupt as exc:
                self._cancel()
                raise Interrupted("interrupted: our running prompt was interrupted and our queued ones "
                                  f"removed; the ledger is saved in {self.ledger.path}",
                                  "run the same command again to resume") from exc
            finally:
                for server in self.servers.values():
                    if server.stream:
                        server.stream.stop()
        return RenderResult(self.ledger, self.selected)

    def _preflight(self) -> None:
        for url in dict.fromkeys(self.options.servers):
            session = self.options.session_factory() if self.options.session_factory else None
            client = ComfyClient(url, headers=self.options.headers, session=session,
                                 ws_connect=self.options.ws_connect)
            self.servers[client.url] = _Server(client)
        clients = [s.client for s in self.servers.values()]
        for info in preflight(clients, [self.planned[n].graph for n in self.selected]):
            self.emit("server", server=info.url, version=info.version, device=info.device)

    def _connect(self) -> None:
        for server in self.servers.values():
            server.stream = EventStream(server.client, self.ledger.film["client_id"], self.events)
            try:
                server.stream.start()  # before any submission: events are never replayed
            except ServerError as exc:
                raise PreflightError(f"{exc.message}; nothing was submitted",
                                     "ComfyUI's HTTP answers but its /ws does not: a proxy in front of it must "
                                     "pass websocket upgrades") from exc

    def _with_status(self, *statuses: str) -> list[ShotRecord]:
        return [s for s in self.ledger.shots if s.status in statuses and s.name in self.selected_names]

    def _pending(self) -> list[ShotRecord]:
        return self._with_status("pending", "lost")

    def _active(self) -> list[ShotRecord]:
        return self._with_status(*ACTIVE)

    def _loop(self) -> None:
        while True:
            self._dispatch()
            if not self._pending() and not self._active():
                return
            try:
                url, event = self.events.get(timeout=0.2)
            except queue.Empty:
                url, event = None, None
            if event is not None:
                self._handle(self.servers.get(url), event)
            self._housekeeping()

    # -- submitting ------------------------------------------------------------------------------
    def _alive(self) -> list[_Server]:
        return [s for s in self.servers.values() if not s.dead]

    def _pick_server(self) -> _Server | None:
        alive = [s for s in self._alive() if s.down_since is None]
        if not alive:
            return None
        ahead = None if len(self._alive()) == 1 else 2  # one running + one queued on each
        ready = [s for s in alive if ahead is None or len(s.outstanding) < ahead]
        return min(ready, key=lambda s: len(s.outstanding)) if ready else None

    def _dispatch(self) -> None:
        for record in self._pending():
            server = self._pick_server()
            if server is None:
                return
            self._submit(record, server)

    def _submit(self, record: ShotRecord, server: _Server) -> None:
        record.prompt_id, record.server, record.status = str(uuid.uuid4()), server.url, "queued"
        record.error, record.attempts = None, record.attempts + 1
        record.node_seconds, record.execution_start_ms, record.execution_success_ms = {}, None, None
        self.save()  # before posting: the id is ours, so a crash here can only mean "lost", never "twice"
        self._track(record, server)
        try:
            server.client.submit(self.planned[record.name].graph, self.ledger.film["client_id"], record.prompt_id)
        except PromptRejected as exc:
            self._untrack(record, server)
            self._rejected(record, exc)
            return
        except ServerError:
            server.down_since = server.down_since or time.monotonic()
            return  # it may have been queued: the next reconcile tells
        self.submitted_this_run = True
        self.emit("submitted", record, server.url, prompt_id=record.prompt_id, attempt=record.attempts)

    def _rejected(self, record: ShotRecord, exc: PromptRejected) -> None:
        exc.shot = record.name
        record.status, record.prompt_id, record.server = "pending", None, None
        if not self.submitted_this_run and not self._active():
            self.save()
            raise exc  # refused before any GPU work: exit 2
        self._fail(record, {"node": None, "class": None, "message": exc.message, "node_errors": exc.node_errors})

    def _track(self, record: ShotRecord, server: _Server) -> None:
        self.by_prompt[record.prompt_id] = record
        self.tracking[record.prompt_id] = _Tracking(node_labels(self.planned[record.name].graph), time.monotonic())
        server.outstanding.append(record.prompt_id)

    def _untrack(self, record: ShotRecord, server: _Server | None) -> None:
        self.by_prompt.pop(record.prompt_id, None)
        self.tracking.pop(record.prompt_id, None)
        if server and record.prompt_id in server.outstanding:
            server.outstanding.remove(record.prompt_id)

    # -- re-attaching after a restart of the client ----------------------------------------------
    def _reattach(self, todo: list[ShotRecord]) -> None:
        for record in todo:
            if record.status not in ACTIVE:
                continue
            server = self.servers.get(record.server or "")
            if server is None:
                self._lose(record, None, "its server is not in this run's --server list")
                continue
            self._track(record, server)
            self.emit("reattached", record, server.url, prompt_id=record.prompt_id)
        for server in self.servers.values():
            self._reconcile(server)

    # -- events ----------------------------------------------------------------------------------
    def _handle(self, server: _Server | None, event: Event) -> None:
        if server is None:
            return
        if isinstance(event, Disconnected):
            self.emit("socket_lost", server=server.url, reason=event.reason)
            return
        if isinstance(event, Reconnected):
            self.emit("socket_back", server=server.url)
            self._reconcile(server)
            return
        record = self.by_prompt.get(event.prompt_id or "")
        if record is None or record.server != server.url:
            return
        track = self.tracking[record.prompt_id]
        track.last_event = time.monotonic()
        self._on_shot_event(server, record, track, event)

    def _on_shot_event(self, server: _Server, record: ShotRecord, track: _Tracking, event: Event) -> None:
        if isinstance(event, ExecutionStart):
            self._started(record, track, event.timestamp)
        elif isinstance(event, ExecutionCached):
            self.emit("cached", record, server.url, nodes=list(event.nodes))
        elif isinstance(event, Executing) and event.node is None:
            self._finish(server, record)
        elif isinstance(event, Executing):
            self._close_node(record, track)
            track.node, track.node_started = event.node, time.monotonic()
            label = track.labels.get(event.node, "other")
            self.emit("node", record, server.url, node=event.node, label=label)
        elif isinstance(event, Progress):
            self.emit("progress", record, server.url, node=event.node,
                      label=track.labels.get(event.node or "", "other"), value=event.value, max=event.max)
        elif isinstance(event, Executed):
            track.outputs[event.node] = event.output
        elif isinstance(event, ExecutionSuccess):
            record.execution_success_ms = event.timestamp
        elif isinstance(event, ExecutionError):
            record.error = {"node": event.node_id, "class": event.node_type, "type": event.exception_type,
                            "message": event.exception_message}
        elif isinstance(event, ExecutionInterrupted):
            record.error = {"node": event.node_id, "class": event.node_type, "type": "interrupted",
                            "message": "the prompt was interrupted on the server"}

    def _started(self, record: ShotRecord, track: _Tracking, timestamp: int | None) -> None:
        if record.status != "running":
            record.status, record.execution_start_ms = "running", timestamp
            track.started = time.monotonic()
            self.save()
            self.emit("started", record, record.server)

    def _close_node(self, record: ShotRecord, track: _Tracking) -> None:
        if track.node is not None:
            label = track.labels.get(track.node, "other")
            spent = time.monotonic() - track.node_started
            record.node_seconds[label] = round(record.node_seconds.get(label, 0.0) + spent, 3)
            track.node = None

    # -- finishing -------------------------------------------------------------------------------
    def _finish(self, server: _Server, record: ShotRecord, entry: dict | None = None) -> None:
        track = self.tracking.get(record.prompt_id)
        if track:
            self._close_node(record, track)
        seen = track.outputs if track else {}
        if entry is None:
            # With the outputs already seen in `executed` events, a history lost to a restart
            # right after the prompt finished costs a short wait, not a re-render.
            wait = min(self.options.history_timeout, 2.0) if seen else self.options.history_timeout
            try:
                entry = wait_for_history(server.client, record.prompt_id, wait)
            except ServerError:
                if not seen:
                    server.down_since = server.down_since or time.monotonic()
                    return  # reconcile will find it in history later
                entry = {"outputs": seen, "status": {"status_str": "success", "messages": []}}
        start, success = history_timestamps(entry)
        record.execution_start_ms = record.execution_start_ms or start
        record.execution_success_ms = record.execution_success_ms or success
        failure = history_error(entry)
        if failure is not None or record.error or (entry.get("status") or {}).get("status_str") == "error":
            self._untrack(record, server)
            self._fail(record, record.error or _error_dict(failure))
            return
        self._download(server, record, entry.get("outputs") or seen)

    def _download(self, server: _Server, record: ShotRecord, outputs: dict) -> None:
        stem = self.ledger.folder / "clips" / self.planned[record.name].stem
        try:
            clip = fetch_clip(server.client, outputs, stem, record.frames, record.width, record.height, record.fps)
        except (ClipError, ServerError) as exc:
            self._untrack(record, server)
            self._fail(record, {"node": None, "class": None, "message": exc.message})
            return
        self._untrack(record, server)
        record.status, record.clip = "done", clip.path.relative_to(self.ledger.folder).as_posix()
        record.clip_sha256, record.error = clip.sha256, None
        self.save()
        seconds = ((record.execution_success_ms or 0) - (record.execution_start_ms or 0)) / 1000
        self.emit("done", record, server.url, clip=record.clip, seconds=round(max(seconds, 0.0), 3),
                  node_seconds=record.node_seconds, frames=clip.frames)

    def _fail(self, record: ShotRecord, error: dict) -> None:
        record.status, record.error = "failed", error
        self.save()
        self.emit("failed", record, record.server, error=error)

    def _lose(self, record: ShotRecord, server: _Server | None, why: str) -> None:
        """The prompt is gone (server restart or server dead): submit it again, same seed and graph."""
        self._untrack(record, server)
        old = record.server
        record.status, record.prompt_id, record.server = "lost", None, None
        self.save()
        self.emit("lost", record, old, reason=why)

    # -- reconciling and timeouts ----------------------------------------------------------------
    def _reconcile(self, server: _Server) -> None:
        server.last_poll = time.monotonic()
        if server.dead or not server.outstanding:
            return
        try:
            states = prompt_states(server.client, list(server.outstanding))
        except ServerError:
            server.down_since = server.down_since or time.monotonic()
            return
        server.down_since = None
        for pid, (state, entry) in states.items():
            record = self.by_prompt.get(pid)
            if record is None:
                continue
            if state == "running" and record.status != "running":
                self._started(record, self.tracking[pid], None)
            elif state == "done":
                self._finish(server, record, entry)
            elif state == "missing" and self.tracking[pid].outputs:
                self._finish(server, record)  # finished, then the server restarted: the file is still there
            elif state == "missing":
                self._lose(record, server, "the server no longer knows the prompt (restarted?)")

    def _housekeeping(self) -> None:
        now = time.monotonic()
        if not self.events.empty():
            return  # events already received say more than a poll would; handle them first
        for server in self._alive():
            socket_down = server.stream is not None and not server.stream.connected
            if (socket_down or server.down_since) and now - server.last_poll >= self.options.poll_interval:
                self._reconcile(server)
            if server.down_since and now - server.down_since > self.options.server_grace:
                self._server_dead(server)
        for pid, record in list(self.by_prompt.items()):
            track = self.tracking.get(pid)
            if record.status == "running" and track and now - track.last_event > self.options.shot_timeout:
                self._timed_out(record, track)

    def _server_dead(self, server: _Server) -> None:
        server.dead = True
        if server.stream:
            server.stream.stop()
        self.emit("server_down", server=server.url, seconds=round(self.options.server_grace, 1))
        for pid in list(server.outstanding):
            self._lose(self.by_prompt[pid], server, f"{server.url} stopped answering")
        if not self._alive():
            self.save()
            raise ServerError("every server stopped answering; unfinished shots are saved as pending",
                              "start ComfyUI again and rerun the same command to resume")

    def _timed_out(self, record: ShotRecord, track: _Tracking) -> None:
        server = self.servers[record.server]
        try:
            server.client.interrupt(record.prompt_id)
        except ServerError:
            pass
        self._untrack(record, server)
        self._fail(record, {"node": track.node, "class": None,
                            "message": f"no progress for {self.options.shot_timeout:.0f} s"})

    # -- Ctrl-C ----------------------------------------------------------------------------------
    def _cancel(self) -> None:
        """Touch only our own prompts: remove the queued ones, then interrupt the running one.

        Queued ones go first, or the server would start the next of ours the moment the running
        one stops; the queue is read again in case one started meanwhile anyway.
        """
        for server in self._alive():
            ours = set(server.outstanding)
            try:
                for _ in range(3):
                    running, pending = server.client.queued_ids()
                    server.client.delete_pending(sorted(pending & ours))
                    for pid in sorted(running & ours):
                        server.client.interrupt(pid)
                    if not (running | pending) & ours:
                        break
                    time.sleep(0.05)
            except ServerError:
                pass
        for record in self._active():
            record.status, record.prompt_id, record.server = "pending", None, None
        self.save()


def _error_dict(failure) -> dict:
    if failure is None:
        return {"node": None, "class": None, "message": "the server reported an error"}
    if isinstance(failure, ExecutionInterrupted):
        return {"node": failure.node_id, "class": failure.node_type, "type": "interrupted",
                "message": "the prompt was interrupted on the server"}
    return {"node": failure.node_id, "class": failure.node_type, "type": failure.exception_type,
            "message": failure.exception_message}


def render_film(plan: Plan, options: RenderOptions,
                on_event: Callable[[RenderEvent], None] = lambda event: None) -> RenderResult:
    """Render every selected shot of ``plan``; then stitch the film when every shot is done."""
    with film_lock(plan.out_dir):
        session = RenderSession(plan, options, on_event)
        result = session.run()
        if options.stitch:
            _stitch(result, session)
    return result


def _stitch(result: RenderResult, session: RenderSession) -> None:
    from wanclip.stitch import FILM_NAME, StitchResult, stitch_film

    not_done = [s.name for s in result.ledger.shots if s.status != "done"]
    if not_done:
        result.stitch_note = f"film not stitched: not done yet: {', '.join(not_done)}"
        return
    ledger = result.ledger
    key = canonical_json([[s.clip_sha256, s.transition] for s in ledger.shots])
    film_file = ledger.folder / FILM_NAME
    if ledger.film.get("stitched") == key and film_file.is_file():
        sheet = ledger.folder / "contact_sheet.png"
        result.film = StitchResult.measured(media.probe(film_file), "xfade", len(ledger.shots),
                                            contact_sheet=sheet if sheet.is_file() else None)
        session.emit("stitch_kept", output=str(film_file), seconds=result.film.seconds)
        return  # same clips, same cuts: the film on disk is already this one
    session.emit("stitching", shots=len(ledger.shots))
    try:
        result.film = stitch_film(ledger.folder)
    except WanclipError as exc:
        result.stitch_note = f"film not stitched: {exc.message}" + (f" ({exc.hint})" if exc.hint else "")
        result.stitch_failed = True
        return
    ledger.film["stitched"] = key
    ledger.save()
    session.emit("stitched", output=str(result.film.output), seconds=result.film.seconds)

