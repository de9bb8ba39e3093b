"""The I/O of one shot's effects over any backend: posting its graph, fetching its clip.

Errors are translated here, once and for every backend (``wanclip.render.backend``), into what
the shot machine understands: a refused graph is ``SubmitRejected``, anything else that leaves a
POST unanswered is ``SubmitUnsure`` (the prompt may or may not be queued: the machine looks it up
before ever posting again); a download that met a restarting server is a ``DownloadFailed`` to
retry, a clip that is not what was asked for one to fail the shot with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from wanclip.errors import ClipError, LocalIOError, PromptRejected, ServerError, WanclipError
from wanclip.planning.post import PostJob
from wanclip.planning.postgraph import OUTPUT, post_graph, unavailable
from wanclip.planning.workflow import Roles, graph_sha256, posted_graph, use_async_output
from wanclip.render import messages as m
from wanclip.render import pictures as continuity
from wanclip.render.backend import Backend, Traits, Wanted


@dataclass(frozen=True)
class ShotSpec:
    """What the I/O of one shot needs: its graph and roles (found at plan), where its clip goes,
    what the clip must measure."""

    graph: dict
    roles: Roles  # the graph's roles, found once at plan (PlannedShot.roles)
    stem: Path  # film_dir/clips/NN_name (the extension comes from the server's file)
    frames: int
    width: int
    height: int
    fps: float
    images: dict[str, Path] = field(default_factory=dict)  # role -> the picture to upload (start/end image)
    front: bool = False  # a chain's next link: ahead of the prompts already queued
    last_frame: Path | None = None  # a later shot continues from this one: decode its last frame here
    post: PostJob | None = None  # a post prompt (render.posts): its graph is built for the server at submit

    @property
    def wanted(self) -> Wanted:
        return Wanted(self.stem, self.frames, self.width, self.height, self.fps)


def submit(backend: Backend, spec: ShotSpec, prompt_id: str, traits: Traits = Traits()) -> object:
    """Upload the shot's pictures, then post its graph as ``posted_graph`` edits it for this
    attempt and server; ``Submitted`` carries the sha256 of exactly what was posted."""
    try:
        names = {role: backend.upload(path) for role, path in spec.images.items()}
    except (ServerError, LocalIOError) as exc:
        if isinstance(exc, ServerError) and exc.transient:
            return m.SubmitUnsure(exc.message)  # nothing was posted: the machine looks, then posts again
        return m.SubmitRejected(f"{exc.message} ({exc.hint})" if exc.hint else exc.message)
    if spec.post is not None:
        graph = _post_graph(spec, traits, names.get("video"), prompt_id)
        if isinstance(graph, m.SubmitRejected):
            return graph
    else:
        graph = posted_graph(spec.graph, spec.roles, prompt_id, async_output=traits.async_output, pictures=names)
    posted = graph_sha256(graph)
    try:
        job_id = backend.submit(graph, prompt_id, front=spec.front)  # the server's id, where it picks one
    except PromptRejected as exc:
        return m.SubmitRejected(exc.message, exc.node_errors, error=exc.error, server=exc.server)
    except OSError as exc:  # never expected from a backend, but a submission must not kill the loop
        return m.SubmitUnsure(f"{type(exc).__name__}: {exc}", posted)
    except ServerError as exc:
        return m.SubmitUnsure(exc.message, posted)
    if isinstance(job_id, str):
        return m.Submitted(posted, job_id=job_id, backend=getattr(backend, "kind", None))
    return m.Submitted(posted)


def _post_graph(spec: ShotSpec, traits: Traits, video: str | None, prompt_id: str) -> dict | m.SubmitRejected:
    """The post prompt's graph for this server (``planning.postgraph``), or why it cannot run here."""
    nodes = traits.post
    why = "the server was not asked what it has for the post stage" if nodes is None or video is None \
        else unavailable(spec.post, nodes)
    if why:
        return m.SubmitRejected(why)
    graph = post_graph(spec.post, nodes, video, f"wanclip/post/{spec.stem.name}_{prompt_id[:8]}")
    # wanclip's node pack: the post clip is encoded off the GPU's path too (its CreateVideo -> SaveVideo)
    return use_async_output(graph, POST_ROLES) if traits.async_output else graph


# The post graph's roles, as ``use_async_output`` reads them (its output node and the node with its fps).
POST_ROLES = Roles(high_sampler="", low_sampler="", positive="", negative="", latent="", output=OUTPUT,
                   output_kind="core", video_fps_node="video")


def read_history(backend: Backend, prompt_id: str, wait: float) -> object:
    try:
        return m.HistoryRead(backend.history(prompt_id, wait))
    except ServerError as exc:
        return m.HistoryMissing(exc.message)


def download(backend: Backend, spec: ShotSpec, outputs: dict, film_dir: Path) -> object:
    try:
        clip = backend.download(outputs, spec.wanted)
    except (ClipError, ServerError, LocalIOError) as exc:
        if isinstance(exc, LocalIOError) and exc.no_space:
            return m.DownloadFailed(exc.message, no_space=exc.path or str(spec.stem.parent))
        return m.DownloadFailed(exc.message + (f" ({exc.hint})" if exc.hint else ""),
                                retry=isinstance(exc, ServerError) and exc.transient)
    last = None
    if spec.last_frame is not None:  # off the loop's thread, before the shot counts as done
        try:
            picture = continuity.last_frame(clip.path, clip.frames, spec.width, spec.height, spec.last_frame)
        except LocalIOError as exc:
            if exc.no_space:
                return m.DownloadFailed(exc.message, no_space=exc.path or str(spec.last_frame))
            return m.DownloadFailed(f"the clip's last frame (for the shot that continues from it) could not be "
                                    f"written: {exc}")
        except (ValueError, WanclipError) as exc:
            return m.DownloadFailed(f"the clip's last frame (for the shot that continues from it) could not be "
                                    f"read: {exc}")
        last = picture.relative_to(film_dir).as_posix()
    return m.Downloaded(clip.path.relative_to(film_dir).as_posix(), clip.sha256, clip.frames, last)
