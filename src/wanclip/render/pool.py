"""The ComfyUI servers of one render: clients, event sockets, health, the pick policy, and the I/O.

The pool turns I/O into events for the shot machine (``wanclip.render.shot``) and carries out its
effects. Everything it learns arrives in one queue, the *sink*, as ``(server_url, item)``:
websocket events (from each server's ``EventStream`` thread), ``(shot, machine event)`` answers to
effects, and ``Looked`` answers to ``/queue`` + ``/history`` look-ups. Effects run off the main
loop: each server has one worker thread (so submissions keep their order), and collecting a
finished shot (history read + download) runs on a shared pool, so a download never holds up
another server's events. With ``inline=True`` effects run on the caller's thread instead, which
makes the pool's tests deterministic; the clock is injected either way.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from wanclip.comfy import jobs
from wanclip.comfy.capabilities import Capabilities, prefix
from wanclip.comfy.client import ComfyClient
from wanclip.comfy.follow import EventStream, prompt_states, wait_for_history
from wanclip.config import served_warm, stagger_seconds
from wanclip.errors import PreflightError, ServerError
from wanclip.render import shot as m
from wanclip.render.effects import ShotSpec, download, has_async_output, submit
from wanclip.render.stagger import DEFAULT_STAGGER_SECONDS, Stagger


@dataclass(frozen=True)
class Looked:
    """The answer to a look-up: ``states`` (prompt id -> (state, history entry)) or an ``error``."""

    states: dict | None = None
    error: str | None = None


@dataclass(frozen=True)
class Note:
    """Something a person should know that changes no shot (a failed delete, say)."""

    kind: str
    data: dict = field(default_factory=dict)


@dataclass
class Server:
    client: ComfyClient
    caps: Capabilities | None = None  # what the server speaks (preflight detects it)
    async_output: bool = False  # it has wanclip's node pack: clips are encoded off the GPU's path
    async_probe: Future | None = None  # the answer to "has it the node pack?" while it is on the wire
    stream: EventStream | None = None
    worker: ThreadPoolExecutor | None = None
    down_since: float | None = None
    next_lookup: float = 0.0
    looking: bool = False
    dead: bool = False
    misses: int = 0  # look-ups in a row that got no answer
    noticed: float = 0.0  # when "unreachable for N s" was last said

    @property
    def url(self) -> str:
        return self.client.url


@dataclass
class PoolTimes:
    server_grace: float = 30.0  # unreachable this long, with another server up: its shots move
    outage_limit: float = 1800.0  # every server unreachable this long: give up (the shots stay in the ledger)
    poll_interval: float = 1.0  # look-ups while a socket is down
    reconcile_interval: float = 5.0  # look-ups while everything looks fine (events can still be lost)
    down_backoff: tuple[float, ...] = (1.0, 2.0, 4.0, 5.0)
    notice_every: float = 5.0


class ServerPool:
    def __init__(self, clients: list[ComfyClient], specs: dict[str, ShotSpec], film_dir: Path, client_id: str,
                 clock: Callable[[], float] = time.monotonic, times: PoolTimes | None = None,
                 inline: bool = False, sink: queue.Queue | None = None):
        self.servers = {c.url: Server(c) for c in clients}
        self.stagger = Stagger(clock, stagger_seconds(DEFAULT_STAGGER_SECONDS))
        warm = served_warm()
        for url in self.servers:
            self.stagger.add(url, warm=url in warm)
        self.specs, self.film_dir, self.client_id = specs, Path(film_dir), client_id
        self.clock, self.times, self.inline = clock, times or PoolTimes(), inline
        self.sink: queue.Queue = sink or queue.Queue()
        self.collector = None if inline else ThreadPoolExecutor(max_workers=3, thread_name_prefix="collect")
        self.unsent: dict[int, m.Submit] = {}  # submissions waiting for their server's worker

    # -- lifetime --------------------------------------------------------------------------------
    def learned(self, url: str, caps: Capabilities | None) -> None:
        """Use what ``url`` speaks: ``/api/`` routes where they work, the jobs API where it exists."""
        server = self.servers.get(url)
        if server is not None and caps is not None:
            server.caps = caps
            server.client.prefix = prefix(caps)
        if server is not None and self.collector is None:
            server.async_output = has_async_output(server.client)
        elif server is not None:  # answered while its event socket opens (open_streams waits for it)
            server.async_probe = self.collector.submit(has_async_output, server.client)

    def open_streams(self) -> None:
        """Open every event socket before any submission: ComfyUI replays no events. Where the server
        has feature flags, the socket first says wanclip takes no previews (a remote render then does
        not stream preview images it never shows)."""
        for server in self.servers.values():
            flags = {} if server.caps is not None and server.caps.features else None
            server.stream = EventStream(server.client, self.client_id, self.sink, feature_flags=flags)
            try:
                server.stream.start()
            except ServerError as exc:
                raise PreflightError(f"{exc.message}; nothing was submitted",
                                     "ComfyUI's HTTP answers but its /ws does not: a proxy in front of it must "
                                     "pass websocket upgrades") from exc
            if server.async_probe is not None:
                server.async_output, server.async_probe = server.async_probe.result(), None
            if not self.inline:
                server.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"server {server.url}")

    def close(self) -> None:
        for server in self.servers.values():
            if server.stream:
                server.stream.stop()
            if server.worker:
                server.worker.shutdown(wait=True, cancel_futures=True)
        if self.collector:
            self.collector.shutdown(wait=True, cancel_futures=True)
        for server in self.servers.values():
            server.client.close()

    # -- the pick policy -----------------------------------------------------------------------------
    def alive(self) -> list[Server]:
        return [s for s in self.servers.values() if not s.dead]

    def pick(self, load: dict[str, int], able: set[str] | None = None) -> str | None:
        """The server for the next shot, among those up that can run it (``able``): least loaded,
        warm ones first. With one server, every shot is queued at once (queue-ahead); with several,
        each is kept one shot ahead (running + one), a cold one holds only its first shot while it
        loads, and cold loads start ``stagger_seconds`` apart (``wanclip.render.stagger``)."""
        up = [s for s in self.alive() if s.down_since is None and (able is None or s.url in able)]
        if not up:
            return None
        if len(self.alive()) == 1:
            return up[0].url
        st = self.stagger
        ready = [s for s in up if load.get(s.url, 0) < st.ahead(s.url, 2) and st.may_take(s.url)]
        if not ready:
            return None
        url = min(ready, key=lambda s: (load.get(s.url, 0), st.rank(s.url))).url
        st.given(url)
        return url

    # -- health ----------------------------------------------------------------------------------------
    def answered(self, url: str, ok: bool) -> list[Note]:
        """Record a look-up's outcome; returns what to tell the person."""
        server, now = self.servers[url], self.clock()
        server.misses = 0 if ok else server.misses + 1
        if ok:
            if server.down_since is not None:
                seconds = now - server.down_since
                server.down_since = None
                self.stagger.cold(url)  # back after an outage: most likely restarted, its models gone
                return [Note("server_back", {"server": url, "seconds": round(seconds, 1)})]
            return []
        if server.down_since is None:
            server.down_since, server.noticed = now, now
        return []

    def housekeeping(self) -> tuple[list[str], list[Note], bool]:
        """(servers to give up on now, notes, every server out for longer than the outage limit)."""
        now, t = self.clock(), self.times
        dead, notes = [], []
        for server in self.alive():
            if server.down_since is None:
                continue
            out_for = now - server.down_since
            others_up = any(s.down_since is None for s in self.alive() if s is not server)
            if others_up and out_for > t.server_grace:
                server.dead = True
                if server.stream:
                    server.stream.stop()
                dead.append(server.url)
                notes.append(Note("server_down", {"server": server.url, "seconds": round(out_for, 1)}))
            elif now - server.noticed >= t.notice_every:
                server.noticed = now
                notes.append(Note("server_unreachable", {"server": server.url, "seconds": round(out_for),
                                                         "limit": round(t.outage_limit)}))
        alive = self.alive()
        given_up = bool(alive) and all(s.down_since is not None and now - s.down_since > t.outage_limit
                                       for s in alive)
        return dead, notes, given_up

    def down(self, url: str) -> bool:
        return self.servers[url].down_since is not None

    # -- look-ups ----------------------------------------------------------------------------------------
    def due_lookups(self, confirmed: dict[str, list[str]]) -> None:
        """Start the look-ups that are due: often while a server or its socket is out, every few
        seconds otherwise (a socket can look healthy and still have lost events)."""
        now, t = self.clock(), self.times
        for server in self.alive():
            ids = confirmed.get(server.url, [])
            if server.looking or now < server.next_lookup:
                continue
            if server.down_since is not None:
                interval = t.down_backoff[min(max(server.misses - 1, 0), len(t.down_backoff) - 1)]
            elif server.stream is not None and not server.stream.connected:
                interval = t.poll_interval
            elif ids:
                interval = t.reconcile_interval
            else:
                continue
            server.next_lookup = now + interval
            self.look(server.url, ids)

    def look(self, url: str, prompt_ids: list[str]) -> None:
        server = self.servers[url]
        server.looking = True

        def job():
            try:
                return Looked(states=self.states(url, list(prompt_ids)))
            except ServerError as exc:
                return Looked(error=exc.message)
            finally:
                server.looking = False

        self._run(server.worker, url, job)

    def states(self, url: str, prompt_ids: list[str]) -> dict[str, tuple[str, dict | None]]:
        """Where each prompt is on ``url``: one ``GET /api/jobs/{id}`` each where the jobs API exists
        (it tells pending, running, done and unknown apart in one read), else ``/queue`` + ``/history``."""
        server = self.servers[url]
        if server.caps is not None and server.caps.jobs_get:
            return {pid: jobs.job_state(server.client, pid, server.caps) for pid in prompt_ids}
        return prompt_states(server.client, prompt_ids)

    def soon(self, url: str) -> None:
        self.servers[url].next_lookup = 0.0

    # -- effects ---------------------------------------------------------------------------------------
    def carry_out(self, effect) -> None:
        """Run an I/O effect of the machine; its answer arrives in the sink."""
        if isinstance(effect, m.Lookup):
            if effect.server in self.servers:
                self.soon(effect.server)
            return
        server = self.servers.get(effect.server)
        if server is None:
            self.sink.put((effect.server, (effect.shot, m.DownloadFailed(f"{effect.server} is not in this run"))))
            return
        worker = self.collector if isinstance(effect, m.FetchHistory | m.Download) else server.worker
        if isinstance(effect, m.Submit) and worker is not None:
            key = id(effect)
            self.unsent[key] = effect

            def job():
                if self.unsent.pop(key, None) is None:
                    return None  # withdrawn by quiesce()
                return self.execute(effect)

            self._run(worker, server.url, job)
            return
        self._run(worker, server.url, lambda: self.execute(effect))

    def quiesce(self) -> list[m.Submit]:
        """Stop the workers (a request already on the wire finishes; its answer reaches the sink)
        and return the submissions that were never sent (Ctrl-C: those shots never reached a server)."""
        withdrawn, self.unsent = list(self.unsent.values()), {}
        for server in self.servers.values():
            if server.worker:
                server.worker.shutdown(wait=True, cancel_futures=True)
                server.worker = None
        return withdrawn

    def _run(self, worker: ThreadPoolExecutor | None, url: str, job: Callable) -> None:
        if worker is None:
            self.sink.put((url, job()))
        else:
            worker.submit(lambda: self.sink.put((url, job())))

    def execute(self, effect):
        """Carry out one effect now, on this thread: ``(shot, machine event)``, or a ``Note``."""
        client = self.servers[effect.server].client
        if isinstance(effect, m.Submit):
            server = self.servers[effect.server]
            return effect.shot, submit(client, self.specs[effect.shot], self.client_id, effect.prompt_id,
                                       server.caps, server.async_output)
        if isinstance(effect, m.FetchHistory):
            try:
                return effect.shot, m.HistoryRead(wait_for_history(client, effect.prompt_id, effect.wait))
            except ServerError as exc:
                return effect.shot, m.HistoryMissing(exc.message)
        if isinstance(effect, m.Download):
            return effect.shot, download(client, self.specs[effect.shot], effect.outputs, self.film_dir)
        caps = self.servers[effect.server].caps
        try:
            if caps is not None and caps.jobs_cancel:  # atomic: it cannot hit a prompt that just started
                jobs.cancel(client, [effect.prompt_id], caps)
            elif isinstance(effect, m.Delete):
                client.delete_pending([effect.prompt_id])
            elif isinstance(effect, m.Interrupt):
                client.interrupt(effect.prompt_id)
        except ServerError as exc:
            return Note("warning", {"shot": effect.shot, "message": f"could not stop shot {effect.shot} on "
                                    f"{effect.server}: {exc.message}"})
        return None
