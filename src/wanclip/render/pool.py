"""The servers of one render: their backends, event feeds, health, the pick policy, and the I/O.

The pool turns I/O into events for the shot machine (``wanclip.render.shot``) and carries out its
effects. It talks to a server only through its ``Backend`` (``wanclip.render.backend``; ComfyUI's
is ``wanclip.render.comfyui.ComfyBackend``). Everything it learns arrives in one queue, the *sink*, as ``(server_url, item)``:
server events (from each backend's event feed), ``(shot, machine event)`` answers to
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
from functools import partial
from pathlib import Path

from wanclip.checks.preflight import ServerInfo, judge
from wanclip.comfy.capabilities import together
from wanclip.config import stagger_seconds
from wanclip.errors import ServerError
from wanclip.render import shot as m
from wanclip.render.backend import Backend, EventSource, Traits
from wanclip.render.effects import ShotSpec, download, read_history, submit
from wanclip.render.stagger import DEFAULT_STAGGER_SECONDS, Stagger
from wanclip.serve.state import served_warm


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
    backend: Backend
    traits: Traits = Traits()  # what it has that changes the posted graph (asked once preflight passed)
    traits_probe: Future | None = None  # that question while it is on the wire
    stream: EventSource | None = None
    worker: ThreadPoolExecutor | None = None
    down_since: float | None = None
    next_lookup: float = 0.0
    looking: bool = False
    dead: bool = False
    misses: int = 0  # look-ups in a row that got no answer
    noticed: float = 0.0  # when "unreachable for N s" was last said

    @property
    def url(self) -> str:
        return self.backend.url


@dataclass
class PoolTimes:
    server_grace: float = 30.0  # unreachable this long, with another server up: its shots move
    outage_limit: float = 1800.0  # every server unreachable this long: give up (the shots stay in the ledger)
    poll_interval: float = 1.0  # look-ups while a socket is down
    reconcile_interval: float = 5.0  # look-ups while everything looks fine (events can still be lost)
    down_backoff: tuple[float, ...] = (1.0, 2.0, 4.0, 5.0)
    notice_every: float = 5.0


class ServerPool:
    def __init__(self, backends: list[Backend], specs: dict[str, ShotSpec], film_dir: Path,
                 clock: Callable[[], float] = time.monotonic, times: PoolTimes | None = None,
                 inline: bool = False, sink: queue.Queue | None = None):
        self.servers = {b.url: Server(b) for b in backends}
        self.stagger = Stagger(clock, stagger_seconds(DEFAULT_STAGGER_SECONDS))
        warm = served_warm()
        for url in self.servers:
            self.stagger.add(url, warm=url in warm)
        self.specs, self.film_dir = specs, Path(film_dir)  # the client id is each backend's own
        self.clock, self.times, self.inline = clock, times or PoolTimes(), inline
        self.sink: queue.Queue = sink or queue.Queue()
        self.collector = None if inline else ThreadPoolExecutor(max_workers=3, thread_name_prefix="collect")
        self.unsent: dict[int, m.Submit] = {}  # submissions waiting for their server's worker

    # -- lifetime --------------------------------------------------------------------------------
    def preflight(self, graphs: list[dict]) -> list[ServerInfo]:
        """Probe every server at once (each learns what its server speaks); refuse a graph that none
        can run (``PreflightError``, nothing submitted)."""
        return judge(together([partial(server.backend.probe, graphs) for server in self.servers.values()]))

    def learned(self, url: str) -> None:
        """Ask ``url`` what it has that changes the posted graph (answered while its events open)."""
        server = self.servers.get(url)
        if server is None:
            return
        if self.collector is None:
            server.traits = server.backend.traits()
        else:  # open_streams waits for it
            server.traits_probe = self.collector.submit(server.backend.traits)

    def open_streams(self) -> None:
        """Open every server's event feed before any submission: ComfyUI replays no events."""
        for server in self.servers.values():
            server.stream = server.backend.open_events(self.sink)
            if server.traits_probe is not None:
                server.traits, server.traits_probe = server.traits_probe.result(), None
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
            server.backend.close()

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
        """Where each prompt is on ``url`` (``ServerError`` when it cannot be asked)."""
        return self.servers[url].backend.states(prompt_ids)

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
        server = self.servers[effect.server]
        backend = server.backend
        if isinstance(effect, m.Submit):
            return effect.shot, submit(backend, self.specs[effect.shot], effect.prompt_id, server.traits)
        if isinstance(effect, m.FetchHistory):
            return effect.shot, read_history(backend, effect.prompt_id, effect.wait)
        if isinstance(effect, m.Download):
            return effect.shot, download(backend, self.specs[effect.shot], effect.outputs, self.film_dir)
        try:
            if isinstance(effect, m.Delete | m.Interrupt):
                backend.cancel(effect.prompt_id, running=isinstance(effect, m.Interrupt))
        except ServerError as exc:
            return Note("warning", {"shot": effect.shot, "message": f"could not stop shot {effect.shot} on "
                                    f"{effect.server}: {exc.message}"})
        return None
