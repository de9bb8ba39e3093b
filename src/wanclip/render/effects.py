"""The I/O of one shot's effects: posting its graph, fetching its clip. Answers are machine events.

Errors are translated here, once, into what the shot machine understands: a 400 is
``SubmitRejected``, anything else that leaves a POST unanswered is ``SubmitUnsure`` (the prompt may
or may not be queued: the machine looks it up before ever posting again); a download that met a
restarting server is a ``DownloadFailed`` to retry, a clip that is not what was asked for one to
fail the shot with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from wanclip.comfy.capabilities import Capabilities
from wanclip.comfy.client import ComfyClient
from wanclip.comfy.outputs import fetch_clip
from wanclip.errors import ClipError, LocalIOError, PromptRejected, ServerError, WanclipError
from wanclip.files import sha256_file
from wanclip.planning.workflow import find_roles, image_name, set_image, use_async_output
from wanclip.render import messages as m
from wanclip.render import pictures as continuity

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
    images: dict[str, Path] = field(default_factory=dict)  # role -> the picture to upload (start/end image)
    front: bool = False  # a chain's next link: ahead of the prompts already queued
    last_frame: Path | None = None  # a later shot continues from this one: decode its last frame here


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
        for role, path in spec.images.items():  # to whichever server renders the shot; a re-upload is a no-op
            graph = set_image(graph, role, client.upload_image(path, image_name(sha256_file(path))))
    except (ServerError, LocalIOError) as exc:
        if isinstance(exc, ServerError) and exc.transient:
            return m.SubmitUnsure(exc.message)  # nothing was posted: the machine looks, then posts again
        return m.SubmitRejected(f"{exc.message} ({exc.hint})" if exc.hint else exc.message)
    try:
        client.submit(graph, client_id, prompt_id, front=spec.front)
    except PromptRejected as exc:
        return m.SubmitRejected(exc.message, exc.node_errors, error=exc.error, server=exc.server)
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
    except (ClipError, ServerError, LocalIOError) as exc:
        return m.DownloadFailed(exc.message + (f" ({exc.hint})" if exc.hint else ""),
                                retry=isinstance(exc, ServerError) and exc.transient)
    last = None
    if spec.last_frame is not None:  # off the loop's thread, before the shot counts as done
        try:
            last = continuity.last_frame(clip.path, clip.frames, spec.width, spec.height, spec.last_frame)
        except (ValueError, WanclipError) as exc:
            return m.DownloadFailed(f"the clip's last frame (for the shot that continues from it) could not be "
                                    f"read: {exc}")
        last = last.relative_to(film_dir).as_posix()
    return m.Downloaded(clip.path.relative_to(film_dir).as_posix(), clip.sha256, clip.frames, last)
