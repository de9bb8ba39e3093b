"""The I/O of one shot's effects: posting its graph, fetching its clip. Answers are machine events.

Errors are translated here, once, into what the shot machine understands: a 400 is
``SubmitRejected``, anything else that leaves a POST unanswered is ``SubmitUnsure`` (the prompt may
or may not be queued: the machine looks it up before ever posting again); a download that met a
restarting server is a ``DownloadFailed`` to retry, a clip that is not what was asked for one to
fail the shot with.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from wanclip import messages as m
from wanclip.comfy.capabilities import Capabilities
from wanclip.comfy.client import ComfyClient
from wanclip.errors import ClipError, PromptRejected, ServerError
from wanclip.outputs import fetch_clip
from wanclip.workflow import find_roles, use_async_output

ASYNC_NODE = "WanclipSaveVideo"


@dataclass(frozen=True)
class ShotSpec:
    """What the I/O of one shot needs: its graph, where its clip goes, what the clip must measure."""

    graph: dict
    stem: Path  # film_dir/clips/NN_name (the extension comes from the server's file)
    frames: int
    width: int
    height: int
    fps: float


def fresh_output(graph: dict, prompt_id: str) -> dict:
    """The graph as submitted: the output file named after this prompt (``..._1a2b3c4d``).

    Newer ComfyUI keeps earlier prompts' outputs cached (RAM-pressure cache), so an identical
    resubmit (``--force``, a re-render of the same shot) would come back fully cached, replaying the
    old file name with no new file, or one since deleted. A prefix of its own makes the output node
    write a new file every time (only that node runs again); the ledger's graph hash is unchanged."""
    output = find_roles(graph).output
    node = graph[output]
    prefix = node["inputs"].get("filename_prefix")
    if not isinstance(prefix, str):
        return graph
    return {**graph, output: {**node, "inputs": {**node["inputs"], "filename_prefix": f"{prefix}_{prompt_id[:8]}"}}}


def submit(client: ComfyClient, spec: ShotSpec, client_id: str, prompt_id: str,
           caps: Capabilities | None = None, async_output: bool = False) -> object:
    """Post the shot. ``async_output``: the server has wanclip's node pack, so the clip is encoded
    in the background (``WanclipSaveVideo``) and the GPU goes on to the next shot at once."""
    graph = fresh_output(use_async_output(spec.graph) if async_output else spec.graph, prompt_id)
    try:
        client.submit(graph, client_id, prompt_id)
    except PromptRejected as exc:
        return m.SubmitRejected(exc.message, exc.node_errors, error=exc.error)
    except OSError as exc:  # never expected from requests, but a submission must not kill the loop
        return m.SubmitUnsure(f"{type(exc).__name__}: {exc}")
    except ServerError as exc:
        return m.SubmitUnsure(exc.message)
    return m.Submitted()


def has_async_output(client: ComfyClient) -> bool:
    """Whether the server lists ``WanclipSaveVideo`` (``wanclip setup --nodes``); never fatal."""
    try:
        return bool(client.object_info(ASYNC_NODE).get(ASYNC_NODE))
    except (ServerError, AttributeError):
        return False


def download(client: ComfyClient, spec: ShotSpec, outputs: dict, film_dir: Path) -> object:
    try:
        clip = fetch_clip(client, outputs, spec.stem, spec.frames, spec.width, spec.height, spec.fps)
    except (ClipError, ServerError) as exc:
        return m.DownloadFailed(exc.message + (f" ({exc.hint})" if exc.hint else ""),
                                retry=isinstance(exc, ServerError) and exc.transient)
    return m.Downloaded(clip.path.relative_to(film_dir).as_posix(), clip.sha256, clip.frames)
