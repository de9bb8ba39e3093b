"""The ComfyUI servers of one render: clients, event sockets, and the I/O (the film coordinator,
``wanclip.render.coordinator``, decides health, picks and look-ups).

The pool turns I/O into events for the shot machine (``wanclip.render.shot``) and carries out its
effects. Everything it learns arrives in one queue, the *sink*, as ``(server_url, item)``:
websocket events (from each server's ``EventStream`` thread), ``(shot, machine event)`` answers to
effects, and ``Looked`` answers to ``/queue`` + ``/history`` look-ups. Effects run off the main
loop: each server has one worker thread (so submissions keep their order), and collecting a
finished shot (history read + download) runs on a shared pool, so a download never holds up
another server's events. With ``inline=True`` (the tests' synchronous pool) effects run on the
caller's thread instead, and so do a server's effects once ``quiesce`` stopped its worker (a stop).
The pool reads no clock and decides nothing.
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from wanclip.comfy import jobs
from wanclip.comfy.capabilities import Capabilities, prefix
from wanclip.comfy.client import ComfyClient
from wanclip.comfy.follow import EventStream, prompt_states, wait_for_history
from wanclip.errors import PreflightError, ServerError
from wanclip.render import shot as m
from wanclip.render.effects import ShotSpec, download, has_async_output, submit
from wanclip.render.messages import Looked, Note


@dataclass
class Server:
    client: ComfyClient
    caps: Capabilities | None = None  # what the server speaks (preflight detects it)
    async_output: bool = False  # it has wanclip's node pack: clips are encoded off the GPU's path
    async_probe: Future | None = None  # the answer to "has it the node pack?" while it is on the wire
    stream: EventStream | None = None
    worker: ThreadPoolExecutor | None = None
    looking: bool = False

    @property
    def url(self) -> str:
        return self.client.url


class ServerPool:
    def __init__(self, clients: list[ComfyClient], specs: dict[str, ShotSpec], film_dir: Path, client_id: str,
                 inline: bool = False, sink: queue.Queue | None = None):
        self.servers = {c.url: Server(c) for c in clients}
        self.specs, self.film_dir, self.client_id = specs, Path(film_dir), client_id
        self.inline = inline
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

        self._run(server.worker, url, job)

    def states(self, url: str, prompt_ids: list[str]) -> dict[str, tuple[str, dict | None]]:
        """Where each prompt is on ``url``: one ``GET /api/jobs/{id}`` each where the jobs API exists
        (it tells pending, running, done and unknown apart in one read), else ``/queue`` + ``/history``."""
        server = self.servers[url]
        if server.caps is not None and server.caps.jobs_get:
            return {pid: jobs.job_state(server.client, pid, server.caps) for pid in prompt_ids}
        return prompt_states(server.client, prompt_ids)

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
