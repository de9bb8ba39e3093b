"""Following a running prompt: what ComfyUI's websocket events mean for its shot.

The part of the shot machine (``wanclip.render.shot``) that reads a prompt's live events: start,
cached nodes, each node as it starts (and ``progress_state``'s own timings on newer servers),
sampler steps, outputs, success, errors. Pure, like the rest of the machine; ``node_labels`` says
what each node of a graph is, for the person watching and for ``node_seconds``.
"""

from __future__ import annotations

from wanclip.comfy.events import (
    Executed,
    Executing,
    ExecutionCached,
    ExecutionError,
    ExecutionInterrupted,
    ExecutionStart,
    ExecutionSuccess,
    Progress,
    ProgressState,
    VideoSaved,
)
from wanclip.ledger import BACKGROUND_ENCODE
from wanclip.planning.workflow import Roles, find_roles
from wanclip.render.state import Phase, StepState

LOADERS = ("UNETLoader", "CLIPLoader", "VAELoader", "LoraLoaderModelOnly", "LoraLoader", "ModelSamplingSD3")


def node_labels(graph: dict, roles: Roles | None = None) -> dict[str, str]:
    """Node id -> what the person watching should read (and ``node_seconds`` is keyed by).
    ``roles``: the graph's, found at plan (``PlannedShot.roles``)."""
    roles = roles or find_roles(graph)
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


class Following(StepState):
    """The websocket half of ``shot._Step`` (``StepState`` declares what it uses)."""

    def _live(self) -> bool:
        # An event for its id: the server has it, even when the POST's reply is not read yet (ComfyUI
        # starts a prompt at once; a loaded client read those events first and dropped them).
        if self.shot.phase in (Phase.SUBMITTING, Phase.UNCONFIRMED):
            found = {"found": True} if self.shot.phase == Phase.UNCONFIRMED else {}
            self.rec.error, self.shot.phase = None, Phase.QUEUED
            self.emit("submitted", prompt_id=self.rec.prompt_id, attempt=self.rec.attempts, **found)
        if self.shot.phase not in (Phase.QUEUED, Phase.RUNNING):
            return False
        self.shot.last_event = self.now
        return True

    def on_execution_start(self, ev: ExecutionStart) -> None:
        if self._live():
            self._started(ev.timestamp)

    def on_execution_cached(self, ev: ExecutionCached) -> None:
        if self._live():
            self.emit("cached", nodes=list(ev.nodes))

    def on_executing(self, ev: Executing) -> None:
        if not self._live():
            return
        if ev.node is None:
            self._finish(None)
            return
        self._started(None)
        self._close_node()
        node = ev.display_node or ev.node  # "54:73" inside a subgraph: the graph's id is display_node
        self.shot.node, self.shot.node_started, self.shot.loading = node, self.now, False
        self.emit("node", node=node, label=self.shot.labels.get(node, "other"))

    def on_progress_state(self, ev: ProgressState) -> None:
        """Newer servers say what a node spends its time on and, when it finishes, for how long."""
        if not self._live():
            return
        for node in ev.nodes:
            if node.seconds:
                self.shot.server_seconds[node.node] = dict(node.seconds)
            if node.activity == "loading" and node.state == "running" and not self.shot.loading:
                self.shot.loading = True
                self.emit("node", node=node.node, label="model load")

    def on_progress(self, ev: Progress) -> None:
        if self._live():
            self.emit("progress", node=ev.node, label=self.shot.labels.get(ev.node or "", "other"),
                      value=ev.value, max=ev.max)

    def on_executed(self, ev: Executed) -> None:
        if self._live() and ev.node is not None:
            self.shot.outputs[ev.node] = ev.output

    def on_execution_success(self, ev: ExecutionSuccess) -> None:
        if self._live():
            self.rec.execution_success_ms = ev.timestamp
            self._close_node()  # what follows (ComfyUI's gc and cache flush) is no node's time

    def on_video_saved(self, ev: VideoSaved) -> None:
        """wanclip's node pack encoded the clip in the background, off the GPU's path: how long."""
        if ev.status == "done" and BACKGROUND_ENCODE not in self.rec.node_seconds and self.shot.phase in (
                Phase.RUNNING, Phase.COLLECTING, Phase.DONE):
            self.rec.node_seconds[BACKGROUND_ENCODE] = round(ev.seconds, 3)
            self.save()

    def on_execution_error(self, ev: ExecutionError) -> None:
        if self._live():
            self.rec.error = {"node": ev.node_id, "class": ev.node_type, "type": ev.exception_type,
                              "message": ev.exception_message}

    def on_execution_interrupted(self, ev: ExecutionInterrupted) -> None:
        if self._live():
            self.rec.error = _interrupted(ev)

    def _started(self, timestamp: int | None) -> None:
        if self.rec.status != "running":
            self.rec.status, self.shot.phase = "running", Phase.RUNNING
            self.rec.execution_start_ms = self.rec.execution_start_ms or timestamp
            self.save()
            self.emit("started")
        elif timestamp and not self.rec.execution_start_ms:
            self.rec.execution_start_ms = timestamp
        self.shot.phase = Phase.RUNNING

    def _close_node(self) -> None:
        if self.shot.node is not None:
            label = self.shot.labels.get(self.shot.node, "other")
            spent = self.now - self.shot.node_started
            self.rec.node_seconds[label] = round(self.rec.node_seconds.get(label, 0.0) + spent, 3)
            self.shot.node = None


def _server_node_seconds(server_seconds: dict, labels: dict[str, str]) -> dict[str, float]:
    """``node_seconds`` from the server's own per-node timings: each node's total under its label,
    but the time it reported as "loading" under "model load" (where a cold load really goes)."""
    out: dict[str, float] = {}
    for node, seconds in server_seconds.items():
        loading = float(seconds.get("loading", 0.0))
        label = labels.get(node, "other")
        out[label] = out.get(label, 0.0) + max(float(seconds.get("total", 0.0)) - loading, 0.0)
        if loading:
            out["model load"] = out.get("model load", 0.0) + loading
    return {label: round(value, 3) for label, value in out.items()}


def _interrupted(ev: ExecutionInterrupted) -> dict:
    return {"node": ev.node_id, "class": ev.node_type, "type": "interrupted",
            "message": "the prompt was interrupted on the server"}
