"""Which backend renders on a server URL: native ComfyUI, or a Comfy API v2 surface.

A URL is a v2 surface when it is Comfy Cloud's or its ``GET /api/v2/health`` answers like one
(comfy-api-proxy, Comfy API deployments); ``--api native|v2`` forces the answer. Native servers
and v2 surfaces mix in one render: each is one pool entry behind the same ``Backend`` seam.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from wanclip.comfy import v2
from wanclip.errors import UsageError
from wanclip.ledger import ShotRecord
from wanclip.render.backend import Backend
from wanclip.render.comfyui import ComfyBackend

APIS = ("auto", "native", "v2")


def is_v2(url: str, headers: Mapping[str, str] | None = None) -> bool:
    """``url`` serves the Comfy API v2 (a native ComfyUI answers the health route with a 404)."""
    return v2.surface(url, headers) is not None


def backend_for(url: str, client_id: str, *, api: str = "auto", headers: Mapping[str, str] | None = None,
                native: Callable[[str], object], records: list[ShotRecord] = (), concurrency: int | None = None,
                poll: float = 0.5) -> Backend:
    """The backend of ``url``: ``native(url)`` makes a native one's ComfyClient; a v2 one learns the
    job ids the ledger holds for it (``records``), so a rerun re-attaches by them."""
    if api not in APIS:
        raise UsageError(f"--api must be one of {', '.join(APIS)}, not {api!r}", "leave it out to detect it", "--api")
    if api == "v2" or api == "auto" and is_v2(url, headers):
        from wanclip.render.v2 import V2Backend  # its machinery (and checks.v2_probe) only for a v2 surface

        client = v2.V2Client(url, headers=headers)
        mine = [r for r in records if r.prompt_id and r.server == client.url and r.status in ("queued", "running")]
        return V2Backend(client, {r.prompt_id: r.job_id for r in mine if r.job_id}, poll=poll, concurrency=concurrency,
                         refs={r.prompt_id: r.output_refs for r in mine if r.output_refs},
                         unconfirmed={r.prompt_id: r.name for r in mine if not r.job_id})
    return ComfyBackend(native(url), client_id)


class Limits(Mapping):
    """url -> the most shots a surface takes at once, read live from its backend (a v2 surface lowers
    its own on a 429); the coordinator's ``limits``. Servers without a limit are absent."""

    def __init__(self, backends: list):
        self.backends = {b.url: b for b in backends if getattr(b, "concurrency", None)}

    def __getitem__(self, url: str) -> int:
        return self.backends[url].concurrency

    def __iter__(self) -> Iterator[str]:
        return iter(self.backends)

    def __len__(self) -> int:
        return len(self.backends)
