"""ComfyUI's own API as a render backend (``wanclip.render.backend.Backend``).

The attempt id is ComfyUI's prompt id (``POST /prompt`` takes the client's), so a lost answer is
found again by that id in ``/queue`` + ``/history``, or in one ``GET /api/jobs/{id}`` where the jobs
API exists. Events come from the ``/ws`` socket. What the server speaks (``/api/`` routes, the jobs
API, feature flags) is learned once, by ``probe``, and used by every later call.
"""

from __future__ import annotations

import queue
from pathlib import Path

from wanclip.checks.preflight import ServerInfo, probe_server
from wanclip.comfy import jobs
from wanclip.comfy.capabilities import Capabilities, object_info, prefix
from wanclip.comfy.client import ComfyClient
from wanclip.comfy.follow import EventStream, prompt_states, wait_for_history
from wanclip.comfy.outputs import Clip, fetch_clip
from wanclip.errors import PreflightError, ServerError
from wanclip.files import sha256_file
from wanclip.planning.postgraph import POST_CLASSES, PostNodes, post_nodes
from wanclip.planning.workflow import ASYNC_OUTPUT, image_name
from wanclip.render.backend import State, Traits, Wanted

VIDEO_SUFFIXES = (".mp4", ".webm", ".mov", ".mkv")


class ComfyBackend:
    def __init__(self, client: ComfyClient, client_id: str):
        self.client, self.client_id = client, client_id
        self.caps: Capabilities | None = None  # what the server speaks (``probe`` detects it)
        self.wants_post = False  # the film has a post stage: ``traits`` also asks what the server has for it

    @property
    def url(self) -> str:
        return self.client.url

    def probe(self, graphs: list[dict]) -> ServerInfo:
        info = probe_server(self.client, graphs)
        self.learned(info.capabilities)
        return info

    def learned(self, caps: Capabilities | None) -> None:
        """Use ``/api/`` routes where they work, the jobs API where it exists."""
        if caps is not None:
            self.caps = caps
            self.client.prefix = prefix(caps)

    def traits(self) -> Traits:
        """The node pack's ``WanclipSaveVideo`` listed (``wanclip setup --nodes``)? And, for a film with
        a post stage (``wants_post``), what the server has for it (``planning.postgraph``). Never fatal."""
        try:
            async_output = bool(self.client.object_info(ASYNC_OUTPUT).get(ASYNC_OUTPUT))
        except (ServerError, AttributeError):
            async_output = False
        return Traits(async_output=async_output, post=self.post_nodes() if self.wants_post else None)

    def post_nodes(self) -> PostNodes | None:
        """What the server lists of the post stage's nodes and models; None when it cannot be asked."""
        try:
            return post_nodes(object_info(self.client, POST_CLASSES, self.caps))
        except (ServerError, AttributeError):
            return None

    def open_events(self, sink: queue.Queue) -> EventStream:
        """Where the server has feature flags, the socket first says wanclip takes no previews (a
        remote render then does not stream preview images it never shows)."""
        flags: dict | None = {} if self.caps is not None and self.caps.features else None
        stream = EventStream(self.client, self.client_id, sink, feature_flags=flags)
        try:
            stream.start()
        except ServerError as exc:
            raise PreflightError(f"{exc.message}; nothing was submitted",
                                 "ComfyUI's HTTP answers but its /ws does not: a proxy in front of it must "
                                 "pass websocket upgrades") from exc
        return stream

    def upload(self, picture: Path) -> str:
        # content-addressed: to whichever server renders the shot; a re-upload is a no-op. A clip (the
        # post stage's input) keeps its extension: the video loaders list input/ files by it.
        name = image_name(sha256_file(picture))
        if Path(picture).suffix.lower() in VIDEO_SUFFIXES:
            name = Path(name).with_suffix(Path(picture).suffix.lower()).name
        return self.client.upload_image(picture, name)

    def submit(self, graph: dict, attempt: str, front: bool = False) -> None:
        self.client.submit(graph, self.client_id, attempt, front=front)

    def states(self, attempts: list[str]) -> dict[str, State]:
        """One ``GET /api/jobs/{id}`` each where the jobs API exists (it tells pending, running,
        done and unknown apart in one read), else ``/queue`` + ``/history``."""
        if self.caps is not None and self.caps.jobs_get:
            return {pid: jobs.job_state(self.client, pid, self.caps) for pid in attempts}
        return prompt_states(self.client, attempts)

    def history(self, attempt: str, wait: float) -> dict:
        return wait_for_history(self.client, attempt, wait)

    def download(self, outputs: dict, wanted: Wanted) -> Clip:
        return fetch_clip(self.client, outputs, wanted.stem, wanted.frames, wanted.width, wanted.height, wanted.fps)

    def cancel(self, attempt: str, running: bool) -> None:
        if self.caps is not None and self.caps.jobs_cancel:  # atomic: it cannot hit a prompt that just started
            jobs.cancel(self.client, [attempt], self.caps)
        elif running:
            self.client.interrupt(attempt)
        else:
            self.client.delete_pending([attempt])

    def close(self) -> None:
        self.client.close()
