"""The servers of one render: their backends, event feeds and the I/O (the film coordinator,
``wanclip.render.coordinator``, decides health, picks and look-ups).

The pool turns I/O into events for the shot machine (``wanclip.render.shot``) and carries out its
effects. It talks to a server only through its ``Backend`` (``wanclip.render.backend``; ComfyUI's
is ``wanclip.render.comfyui.ComfyBackend``). Everything it learns arrives in one queue, the *sink*,
as ``(server_url, item)``: server events (from each backend's event feed), ``(shot, machine event)``
answers to effects, and ``Looked`` answers to look-ups. Effects run off the main loop: each server
has one worker thread (so submissions keep their order), and collecting a finished shot (history
read + download) runs on a shared pool, so a download never holds up another server's events. With
``inline=True`` (the tests' synchronous pool) effects run on the caller's thread instead, and so do a
server's effects once ``quiesce`` stopped its worker (a stop). The pool reads no clock and decides
nothing.
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from wanclip.checks.preflight import ServerInfo, judge
from wanclip.comfy.capabilities import together
from wanclip.errors import ServerError
from wanclip.render import shot as m
from wanclip.render.backend import Backend, EventSource, Traits
from wanclip.render.effects import ShotSpec, download, read_history, submit
from wanclip.render.messages import Looked, Note


@dataclass
class Server:
    backend: Backend
    traits: Traits = Traits()  # what it has that changes the posted graph (asked once preflight passed)
    traits_probe: Future | None = None  # that question while it is on the wire
    stream: EventSource | None = None
    worker: ThreadPoolExecutor | None = None
    looking: bool = False

    @property
    def url(self) -> str:
        return self.backend.url


@dataclass(frozen=True)
class JobCrashed:
    """What a job raised that no server answer explains (a bug): the render loop raises it again on
    its own thread. In a worker it was lost (the executor's future kept it), and the render waited
    for that answer for ever."""

    error: Exception


class ServerPool:
    def __init__(self, backends: list[Backend], specs: dict[str, ShotSpec], film_dir: Path,
                 inline: bool = False, sink: queue.Queue | None = None):
        self.servers = {b.url: Server(b) for b in backends}
        self.specs, self.film_dir = specs, Path(film_dir)  # the client id is each backend's own
        self.inline = inline
        self.sink: queue.Queue = sink or queue.Queue()
        self.collector = None if inline else ThreadPoolExecutor(max_workers=3, thread_name_prefix="collect")
        self.unsent: dict[int, m.Submit] = {}  # submissions waiting for their server's worker
        self.looks: dict[str, Future] = {}  # each server's look-up on its worker (answered, or cancelled by a stop)

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

    def drop(self, url: str) -> None:
        """Give ``url`` up for this run (the coordinator decided): its events stop."""
        server = self.servers.get(url)
        if server is not None and server.stream:
            server.stream.stop()

    # -- look-ups ----------------------------------------------------------------------------------------
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

        future = self._run(server.worker, url, job)
        if future is not None:
            self.looks[url] = future

    def states(self, url: str, prompt_ids: list[str]) -> dict[str, tuple[str, dict | None]]:
        """Where each prompt is on ``url`` (``ServerError`` when it cannot be asked)."""
        return self.servers[url].backend.states(prompt_ids)

    # -- effects ---------------------------------------------------------------------------------------
    def carry_out(self, effect) -> None:
        """Run an I/O effect of the machine; its answer arrives in the sink."""
        if isinstance(effect, m.Lookup):
            return  # the coordinator schedules look-ups
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
        for url, future in self.looks.items():  # a look-up still queued is never asked: say so, or the
            if future.cancelled():  # coordinator would wait for its answer (and never ask again) until the stop gives up
                self.servers[url].looking = False
                self.sink.put((url, Looked(error="not asked: the render is stopping")))
        self.looks = {}
        return withdrawn

    def _run(self, worker: ThreadPoolExecutor | None, url: str, job: Callable) -> Future | None:
        def answered() -> None:
            try:
                answer = job()
            except Exception as exc:  # a bug, not a server's answer: the render must stop, not wait for it
                answer = JobCrashed(exc)
            self.sink.put((url, answer))

        if worker is None:
            answered()
            return None
        return worker.submit(answered)

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
