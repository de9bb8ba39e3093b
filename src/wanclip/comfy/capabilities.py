"""What one ComfyUI server speaks, learned once by feature detection, never by its version number.

``detect(client)`` reads a handful of cheap, side-effect-free routes and returns ``Capabilities``.
An unknown or future version gets the same probes; the version string is only shown.

How each capability is learned:

- **version**: ``system_stats.system.comfyui_version`` (shown only).
- **/api prefix**: ``GET /api/system_stats`` answers ComfyUI's JSON (every version registers its
  routes twice; Comfy Cloud and the v2 proxy speak only ``/api/...``). ``prefix()`` / ``route()``
  tell the caller which form to use.
- **features**: ``GET /api/features`` (else ``/features``); ``{}`` when neither exists.
- **jobs API**: ``GET /api/jobs?limit=1`` answers ``{"jobs": [...]}`` and ``GET /api/jobs/<a random
  uuid>`` answers 404 ``{"error": "Job not found"}`` (a bare 404 or a 405 means no route).
- **cancel routes**: ``POST /api/jobs/cancel`` with ``{}``: a server with the route refuses that body
  with 400 ("job_ids must be a list") before it looks at any job, so nothing of anyone's can be
  cancelled; 404 (0.3.64) or 405 (0.9.2: only the GET route matches the path) means no route.
  The per-id form ``POST /api/jobs/{id}/cancel`` arrived with the batch form (same commit) and is
  assumed with it.
- **node replacements**: ``GET /api/node_replacements`` (else without prefix) answers a JSON map
  ``{old_class: [{new_node_id, old_node_id, input_mapping, output_mapping}, ...]}``.

Seen, never inferred: four behaviours no route shows. A server's version or its other routes and
flags prove nothing about them (a real 0.33.0 has the jobs cancel routes and ``node_replacements``,
yet re-runs a re-posted id and sends no ``activity``; see ``comfyui-samples-0.33.0/DIFF.md``). Each
is ``None`` ("not known yet") until the server has been seen doing it or not, and every caller
treats ``None`` as the cautious choice:

- **refuses_known_ids**: a re-posted ``prompt_id`` answered 409 (``True``). Seen only when an id is
  posted twice, which wanclip never does on purpose: it looks a lost POST up first (one
  ``GET /api/jobs/{id}`` or ``/queue`` + ``/history``) and treats a 409 as "already there".
- **credential_handshake**: the first ``status`` frame of a socket carries ``credential_key``
  (``observed.handshake`` opens one to see; the server asks for it only over TLS or from a loopback peer,
  so "no" is what this client was shown). ``credential_message`` names the frame to answer with.
- **progress_state** and **progress_activity**: a ``progress_state`` message arrived; its nodes
  carry ``activity`` / ``seconds`` (``Observed`` learns them from a prompt's messages). Seen only
  while a prompt runs: a client reads them per message whenever present and falls back when absent.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from urllib.parse import quote

from wanclip.comfy.client import ComfyClient
from wanclip.comfy.observed import Observed
from wanclip.errors import ServerError

API_PREFIX = "/api"
NOT_KNOWN = "not known yet"


def seen(value: bool | None) -> str:
    """How a behaviour is shown: ``"yes (seen)"``, ``"no (seen)"`` or ``"not known yet"``."""
    return NOT_KNOWN if value is None else ("yes (seen)" if value else "no (seen)")


@dataclass(frozen=True)
class Capabilities:
    """One server's protocol, as ``detect`` found it. ``describe()`` is the one-line summary."""

    url: str
    version: str | None = None
    api_prefix: bool = False  # routes answer under /api/...
    features: dict = field(default_factory=dict)  # /features ({} when the route is missing)
    jobs_list: bool = False  # GET /api/jobs
    jobs_get: bool = False  # GET /api/jobs/{id}
    jobs_cancel: bool = False  # POST /api/jobs/cancel and POST /api/jobs/{id}/cancel
    node_replacements: dict | None = None  # GET /node_replacements; None: no such route
    # seen, never inferred: None = not known yet (see the module's docstring)
    refuses_known_ids: bool | None = None  # a re-posted prompt_id answers 409
    credential_handshake: bool | None = None  # credential_key in a socket's first status
    credential_message: str = "credential_auth"
    progress_state: bool | None = None  # progress_state messages
    progress_activity: bool | None = None  # progress_state nodes carry activity / seconds
    system_stats: dict = field(default_factory=dict, repr=False, compare=False)  # as read

    @property
    def jobs_api(self) -> str:
        """``"no"``, ``"read-only"`` (GET routes only, 0.9.2) or ``"yes"`` (with the cancel routes)."""
        if not self.jobs_get:
            return "no"
        return "yes" if self.jobs_cancel else "read-only"

    def describe(self) -> str:
        """``"ComfyUI 0.9.2: jobs API read-only, cancel routes no, /api prefix yes, node replacements no,
        409 for a re-posted id not known yet, credential handshake no (seen), ..."``: the routes as
        probed, then each behaviour as seen so far."""
        yes = {True: "yes", False: "no"}
        replacements = "no" if self.node_replacements is None else f"yes ({len(self.node_replacements)})"
        return (f"ComfyUI {self.version or '(unknown version)'}: jobs API {self.jobs_api}, "
                f"cancel routes {yes[self.jobs_cancel]}, /api prefix {yes[self.api_prefix]}, "
                f"node replacements {replacements}, 409 for a re-posted id {seen(self.refuses_known_ids)}, "
                f"credential handshake {seen(self.credential_handshake)}, "
                f"progress_state {seen(self.progress_state)}, "
                f"its activity/seconds {seen(self.progress_activity)}")

    def to_dict(self) -> dict:
        """The behaviours are true, false or null (not known yet)."""
        return {"version": self.version, "api_prefix": self.api_prefix, "features": self.features,
                "jobs_api": self.jobs_api, "jobs_list": self.jobs_list, "jobs_cancel": self.jobs_cancel,
                "node_replacements": self.node_replacements, "refuses_known_ids": self.refuses_known_ids,
                "credential_handshake": self.credential_handshake, "progress_state": self.progress_state,
                "progress_activity": self.progress_activity}

    def learned(self, observed: Observed) -> Capabilities:
        """These capabilities with what ``observed`` saw (a behaviour not seen there keeps its value)."""
        changes = {k: v for k, v in observed.seen().items() if v is not None}
        return replace(self, **changes) if changes else self

    def replacement_for(self, class_type: str) -> str | None:
        """The class the server would put in place of ``class_type`` (its first registered rule)."""
        rules = (self.node_replacements or {}).get(class_type)
        if isinstance(rules, list) and rules and isinstance(rules[0], dict):
            new = rules[0].get("new_node_id")
            return str(new) if new else None
        return None


def prefix(caps: Capabilities) -> str:
    """``"/api"`` when the server answers there (preferred), else ``""``."""
    return API_PREFIX if caps.api_prefix else ""


def route(caps: Capabilities, path: str) -> str:
    """``path`` (``"/prompt"``, ``"/history/ID"``) in the form this server answers: ``/api/prompt``
    where the prefix works, else as given. ``/api/...`` paths (the jobs API) are left alone."""
    if path == API_PREFIX or path.startswith(API_PREFIX + "/"):
        return path
    return prefix(caps) + path


def detect(client: ComfyClient) -> Capabilities:
    """Probe ``client``'s server once (about seven small requests, in three round trips: the
    system stats first, then the others at once) and say what it speaks.

    Raises ``ServerError`` only when ``/system_stats`` cannot be read at all (the server is down or
    is not ComfyUI); every other probe that fails counts as "not there"."""
    stats, api_prefix = _system_stats(client)
    version = (stats.get("system") or {}).get("comfyui_version") if isinstance(stats, dict) else None
    pre = API_PREFIX if api_prefix else ""
    features, jobs_list, (jobs_get, jobs_cancel), replacements = together([  # one round trip, not five
        lambda: _first_json(client, [pre + "/features", "/features"] if pre else ["/features"]),
        lambda: _is_jobs_list(probe(client, "GET", "/api/jobs", params={"limit": 1})),
        lambda: _jobs_routes(client),
        lambda: _first_json(client, [pre + "/node_replacements", "/node_replacements"] if pre
                            else ["/node_replacements"]),
    ])
    features = features if isinstance(features, dict) else None
    flags = features or {}
    credentials = flags.get("comfy_api_credentials")  # names the frame, where the server says so
    return Capabilities(
        url=client.url, version=str(version) if version else None, api_prefix=api_prefix, features=flags,
        jobs_list=jobs_list, jobs_get=jobs_get, jobs_cancel=jobs_cancel,
        node_replacements=replacements if isinstance(replacements, dict) else None,
        credential_message=str((credentials or {}).get("websocket_auth_message") or "credential_auth")
        if isinstance(credentials, dict) else "credential_auth",
        system_stats=stats if isinstance(stats, dict) else {},
    )


def object_info(client: ComfyClient, classes, caps: Capabilities | None = None) -> dict:
    """``/object_info/{class}`` for just these classes, merged into one ``/object_info``-shaped dict.

    Never the whole ``/object_info``: on newer servers every full read also starts an asset scan of
    the models, input and output folders, and it is 600+ classes for the dozen a graph uses. A
    class the server does not have is absent from the result (ComfyUI answers ``{}`` for it)."""
    names = sorted({str(c) for c in classes})
    paths = [f"/object_info/{quote(name, safe='')}" for name in names]
    infos = together([lambda path=path: client._json("GET", route(caps, path) if caps else path) for path in paths])
    return {name: info[name] for name, info in zip(names, infos, strict=True)
            if isinstance(info, dict) and isinstance(info.get(name), dict)}


def together(calls: list[Callable[[], object]], workers: int = 8) -> list:
    """Run independent small requests at once (a server far away costs one round trip, not one per
    request) and return their results in order. The first call's error, in that order, is raised
    as soon as the calls before it are over, as a loop that asked one by one would raise it."""
    if len(calls) < 2:
        return [call() for call in calls]
    pool = ThreadPoolExecutor(max_workers=min(workers, len(calls)), thread_name_prefix="probe")
    try:
        futures = [pool.submit(call) for call in calls]
        return [future.result() for future in futures]
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def object_info_for(client: ComfyClient, caps: Capabilities | None = None):
    """``class_type -> its /object_info entry or None``: what ``checks.explain_rejection`` takes."""
    return lambda class_type: object_info(client, [class_type], caps).get(class_type)


# -- probes ---------------------------------------------------------------------------------------
def probe(client: ComfyClient, method: str, path: str, **kwargs) -> tuple[int, object]:
    """(status, parsed JSON or None). A server that does not answer raises ``ServerError``."""
    response = client._request(method, path, **kwargs)
    try:
        try:
            body = response.json()
        except ValueError:
            body = None
        return response.status_code, body
    finally:
        response.close()


def _jobs_routes(client: ComfyClient) -> tuple[bool, bool]:
    """(jobs GET route, cancel routes): the cancel probe only where the jobs API answers."""
    jobs_get = _is_job_not_found(probe(client, "GET", f"/api/jobs/{uuid.uuid4()}"))
    return jobs_get, jobs_get and _route_present(probe(client, "POST", "/api/jobs/cancel", json={}))


def _system_stats(client: ComfyClient) -> tuple[dict, bool]:
    status, body = probe(client, "GET", API_PREFIX + "/system_stats")
    if status == 200 and _is_system_stats(body):
        return body, True
    stats = client._json("GET", "/system_stats")  # its errors say what is wrong and what to do
    if not _is_system_stats(stats):
        raise ServerError(f"{client.url} answered /system_stats with JSON of another shape than ComfyUI's "
                          "(a mapping with 'system' and 'devices')",
                          "is that address a ComfyUI server (and not another service or a proxy's page)?",
                          server=client.url)
    return stats, False


def _is_system_stats(body: object) -> bool:
    """ComfyUI's shape: ``{"system": {...}, "devices": [{...}, ...]}`` (every version since 2023)."""
    return (isinstance(body, dict) and isinstance(body.get("system"), dict)
            and isinstance(body.get("devices", []), list) and all(isinstance(d, dict) for d in body.get("devices", [])))


def _first_json(client: ComfyClient, paths: list[str]) -> object:
    for path in dict.fromkeys(paths):
        try:
            status, body = probe(client, "GET", path)
        except ServerError:
            return None
        if status == 200 and body is not None:
            return body
    return None


def _is_jobs_list(answer: tuple[int, object]) -> bool:
    status, body = answer
    return status == 200 and isinstance(body, dict) and isinstance(body.get("jobs"), list)


def _is_job_not_found(answer: tuple[int, object]) -> bool:
    status, body = answer
    return (status == 404 and isinstance(body, dict) and "error" in body) or (
        status == 200 and isinstance(body, dict) and "status" in body)


def _route_present(answer: tuple[int, object]) -> bool:
    status, _ = answer
    return status in (200, 400, 422)


_REFUSED_AT = re.compile(r"^ComfyUI at (https?://\S+) refused")


def rejection_server(error) -> str | None:
    """The (printable, credential-free) URL of the server that refused a prompt: the error's
    ``server`` where the render set it, else the one ``ComfyClient.submit`` names in its message."""
    server = getattr(error, "server", None)
    if server:
        return str(server)
    match = _REFUSED_AT.match(str(getattr(error, "message", "") or ""))
    return match.group(1) if match else None
