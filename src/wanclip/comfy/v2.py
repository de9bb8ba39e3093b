"""The Comfy API v2 (Comfy Cloud, Comfy API deployments, comfy-api-proxy): requests and answers.

Sans-I/O where it pays: ``Request`` values are built by plain functions (``submit_request``,
``job_request`` ...) and answers are parsed by plain functions (``parse_job``, ``parse_error``), so
the protocol is tested without a server. ``V2Client`` is the thin transport over ``requests``; its
errors form one small tree (``V2Error``: ``V2NoAnswer`` when no answer came, ``V2Refused`` for an
answer with the spec's ``{error: {code, message, details}}``), translated into wanclip's own
errors only at the boundary (``wanclip_error``).

The key comes from ``COMFY_API_KEY`` (comfy-sdk's convention) and is sent as ``Authorization:
Bearer``; it lives only in the session's headers, never in a message, the ledger or a log (an explicit
``--header 'Authorization: ...'`` or a ``user:pass@`` in the URL wins over it, as for native). A
redirect (Comfy Cloud answers an output's content with a 302 to a signed URL) is followed by hand,
without the ``Authorization`` header when it leaves the surface's host.
"""

from __future__ import annotations

import email.utils
import json
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import urljoin, urlsplit

import requests

from wanclip.comfy.client import auth_headers, save_body, split_credentials
from wanclip.errors import PromptRejected, ServerError, WanclipError
from wanclip.urls import redact

KEY_VARIABLE = "COMFY_API_KEY"
PREFIX = "/api/v2"
CLOUD_HOSTS = ("cloud.comfy.org",)  # a v2 surface without asking
TERMINAL = ("succeeded", "failed", "canceled", "expired")
VIDEO_SUFFIXES = (".mp4", ".webm", ".mkv", ".mov")
DEFAULT_CONCURRENCY = 2  # jobs in flight on one surface: one running, one waiting (a plan's limit where known)
LABEL_PREFIX = "wanclip:"  # a job's metadata (an opaque label): the attempt id after it


# -- the exception tree (translated at the boundary) -------------------------------------------------
class V2Error(Exception):
    """Anything the v2 transport met; ``method``/``path`` name the request."""

    def __init__(self, message: str, method: str = "", path: str = ""):
        super().__init__(message)
        self.message, self.method, self.path = message, method, path


class V2NoAnswer(V2Error):
    """No HTTP answer (refused, reset, timed out): the request may or may not have been acted on,
    except where ``sent`` is False (the connection itself was refused or never made)."""

    def __init__(self, message: str, method: str = "", path: str = "", sent: bool = True):
        super().__init__(message, method, path)
        self.sent = sent


def never_sent(exc: requests.RequestException) -> bool:
    """``exc`` happened before a byte of the request left: no connection was made."""
    from urllib3.exceptions import ConnectTimeoutError  # NewConnectionError (refused) is one too

    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(exc, requests.ConnectTimeout) or isinstance(reason, ConnectTimeoutError)


class V2Refused(V2Error):
    """An HTTP error answer: ``status``, the spec's ``code`` and ``details``, ``retry_after`` s."""

    def __init__(self, status: int, code: str, message: str, details: dict | None = None,
                 retry_after: float | None = None, method: str = "", path: str = ""):
        super().__init__(message, method, path)
        self.status, self.code, self.details, self.retry_after = status, code, details or {}, retry_after


# -- requests, as values --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Request:
    method: str
    path: str  # below the surface's base URL, /api/v2/...
    json: dict | None = None
    params: dict = field(default_factory=dict)
    headers: dict = field(default_factory=dict)
    files: dict | None = None  # multipart parts: name -> (filename, bytes, content type)
    form: dict | None = None  # multipart plain fields


def health_request() -> Request:
    return Request("GET", f"{PREFIX}/health")


def submit_request(graph: dict, key: str, label: str | None = None) -> Request:
    """``POST /jobs`` with the client's ``Idempotency-Key`` (single use: a reuse is a 422, never a
    replay); ``label`` goes in ``metadata`` where the surface takes labels."""
    body: dict = {"workflow": graph}
    if label is not None:
        body["metadata"] = label
    return Request("POST", f"{PREFIX}/jobs", json=body, headers={"Idempotency-Key": key})


def job_request(job_id: str) -> Request:
    return Request("GET", f"{PREFIX}/jobs/{job_id}")


def cancel_request(job_id: str) -> Request:
    return Request("POST", f"{PREFIX}/jobs/{job_id}/cancel")


def list_request(limit: int = 100) -> Request:
    return Request("GET", f"{PREFIX}/jobs", params={"limit": str(limit)})


def upload_request(name: str, data: bytes, content_type: str = "image/png") -> Request:
    """``POST /assets``: an input picture (the surface deduplicates by its hash)."""
    return Request("POST", f"{PREFIX}/assets", files={"file": (name, data, content_type)},
                   form={"file_path": f"input/{name}"})


def asset_ref(asset_id: str) -> dict:
    """How a graph's input names an uploaded asset: the surface resolves it to its file."""
    return {"__type": "core/ASSET", "info": {"id": asset_id}}


def events_request(job_id: str) -> Request:
    return Request("GET", f"{PREFIX}/jobs/{job_id}/events", headers={"Accept": "text/event-stream"})


def parse_sse(lines) -> Iterator[tuple[str, dict]]:
    """``(event, data)`` of each Server-Sent Event in ``lines`` (text lines, without their ends);
    comments (heartbeats) and frames whose data is not a JSON object are skipped."""
    event, data = "message", []
    for line in lines:
        if line == "":
            if data:
                try:
                    body = json.loads("\n".join(data))
                except ValueError:
                    body = None
                if isinstance(body, dict):
                    yield event, body
            event, data = "message", []
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)


def label_for(attempt: str) -> str:
    return LABEL_PREFIX + attempt


# -- answers -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Output:
    id: str
    name: str
    url: str
    content_type: str = ""
    node: str = ""

    @property
    def is_video(self) -> bool:
        return (self.content_type.startswith("video/")
                or PurePosixPath(self.name).suffix.lower() in VIDEO_SUFFIXES)

    def ref(self) -> dict:
        return {"id": self.id, "name": self.name, "url": self.url, "content_type": self.content_type,
                "node": self.node}


@dataclass(frozen=True)
class Job:
    id: str
    status: str  # queued running succeeded failed canceling canceled expired
    outputs: tuple[Output, ...] = ()
    error: dict | None = None
    metadata: str | None = None
    progress: dict | None = None

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    @property
    def attempt(self) -> str | None:
        """The attempt id of a job wanclip labelled (``label_for``)."""
        meta = self.metadata or ""
        return meta[len(LABEL_PREFIX):] if meta.startswith(LABEL_PREFIX) else None


def parse_job(data: object) -> Job:
    if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not isinstance(data.get("status"), str):
        raise V2Error("the answer is not a v2 job (no id or status)")
    outputs = tuple(Output(str(o.get("id", "")), str(o.get("name", "")), str(o.get("url", "")),
                           str(o.get("content_type") or ""), str(o.get("node_id") or ""))
                    for o in data.get("outputs") or [] if isinstance(o, dict) and o.get("url"))
    error = data.get("error") if isinstance(data.get("error"), dict) else None
    metadata = data.get("metadata") if isinstance(data.get("metadata"), str) else None
    progress = data.get("progress") if isinstance(data.get("progress"), dict) else None
    return Job(data["id"], data["status"], outputs, error, metadata, progress)


def parse_jobs(data: object) -> list[Job]:
    jobs = data.get("jobs") if isinstance(data, dict) else None
    if not isinstance(jobs, list):
        raise V2Error("the answer is not a v2 job list")
    return [parse_job(j) for j in jobs]


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After``: seconds, or an HTTP date (then seconds from ``now``)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def parse_error(status: int, headers: Mapping[str, str], body: object, method: str = "", path: str = "") -> V2Refused:
    """The spec's ``{error: {code, message, details}}`` (or ComfyUI's own shape behind a plain
    proxy, or no body) as one ``V2Refused``."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code = str(error.get("code") or f"http_{status}")
        message = str(error.get("message") or f"HTTP {status}")
        details = error.get("details") if isinstance(error.get("details"), dict) else {}
        if isinstance(body, dict) and isinstance(body.get("node_errors"), dict) and "node_errors" not in details:
            details = {**details, "node_errors": body["node_errors"]}  # ComfyUI's own 400
    elif isinstance(error, str):
        code, message, details = f"http_{status}", error, {}
    else:
        code, message, details = f"http_{status}", f"HTTP {status}", {}
    return V2Refused(status, code, message, details, parse_retry_after(headers.get("Retry-After")), method, path)


def lost_outcome(exc: V2Error) -> bool:
    """A refusal that is really an unknown outcome: comfy-api-proxy (0.1.6) answers a 422
    ``invalid_workflow`` "Workflow rejected." with no node errors when ComfyUI's answer was not JSON
    (a 502 of a gateway in between): ComfyUI may have queued the prompt, and the key was released."""
    return (isinstance(exc, V2Refused) and exc.status == 422 and exc.code == "invalid_workflow"
            and not exc.details.get("node_errors") and exc.message == "Workflow rejected.")


# -- the boundary: V2Error -> wanclip.errors --------------------------------------------------------
def key_hint() -> str:
    if os.environ.get(KEY_VARIABLE):
        return (f"the key in ${KEY_VARIABLE} was refused: check it (Comfy Cloud: Settings > API keys), "
                "or pass the header the surface wants with --header")
    return f"set ${KEY_VARIABLE} to your Comfy API key (or pass --header 'Authorization: Bearer ...')"


def wanclip_error(exc: V2Error, url: str) -> WanclipError:
    """One ``V2Error`` as wanclip's own error (``url``: printable, without credentials)."""
    doing = f"{exc.method} {exc.path}".strip()
    if isinstance(exc, V2NoAnswer):
        return ServerError(f"the Comfy API v2 at {url} did not answer {doing}: {exc.message}",
                           "is it running there? check the address (wanclip doctor -s URL)",
                           server=url, transient=True)
    if isinstance(exc, V2Refused):
        said = f"the Comfy API v2 at {url} answered {doing} with HTTP {exc.status} {exc.code}: {exc.message}"
        if exc.status in (401, 403):
            return ServerError(said, key_hint(), server=url)
        if exc.status == 422 and exc.code in ("invalid_workflow", "workflow_validation_failed") or exc.status == 400 \
                and isinstance(exc.details.get("node_errors"), dict):
            return PromptRejected(said, node_errors=exc.details.get("node_errors") or {},
                                  error={"type": exc.code, "message": exc.message}, server=url)
        if exc.status == 402:
            return ServerError(said, "the account is out of credits: add credits, then rerun the same command",
                               server=url)
        transient = exc.status >= 500 or exc.status == 429
        hint = ("it is busy; wanclip waits and tries again" if exc.status == 429 else
                "the ComfyUI behind it may be down; rerun once it is back" if exc.status >= 500 else
                "check the address and that it is a Comfy API v2 surface")
        return ServerError(said, hint, server=url, transient=transient)
    return ServerError(f"the Comfy API v2 at {url} answered {doing} with something unusable: {exc.message}",
                       "is that address a Comfy API v2 surface?", server=url)


def is_auth_error(exc: WanclipError) -> bool:
    return isinstance(exc, ServerError) and KEY_VARIABLE in exc.hint


# -- the transport ------------------------------------------------------------------------------------
class V2Client:
    """One v2 surface over a ``requests`` session. ``url`` is printable; the key is in the session."""

    def __init__(self, url: str, *, headers: Mapping[str, str] | None = None, session: requests.Session | None = None,
                 key: str | None = None, timeout: float = 30.0):
        self.base, credentials = split_credentials(url)  # user:pass@ becomes a Basic header, as native
        self.url = redact(self.base)
        self.session = session or requests.Session()
        self.session.auth = lambda request: request  # keeps ~/.netrc from adding a second Authorization
        key = os.environ.get(KEY_VARIABLE) if key is None else key
        auth = {"Authorization": f"Bearer {key}"} if key else {}
        given = auth_headers(headers, credentials)
        if any(k.lower() == "authorization" for k in given):
            auth = {}  # an explicit --header wins
        self.session.headers.update({**auth, **given})
        self.timeout = timeout

    @property
    def has_key(self) -> bool:
        return any(k.lower() == "authorization" for k in self.session.headers)

    @property
    def is_cloud(self) -> bool:
        return (urlsplit(self.base).hostname or "") in CLOUD_HOSTS

    def close(self) -> None:
        self.session.close()

    def _send(self, req: Request, stream: bool = False, url: str | None = None) -> requests.Response:
        try:
            return self.session.request(req.method, url or self.base + req.path, json=req.json, params=req.params,
                                        headers=req.headers, files=req.files, data=req.form, timeout=self.timeout,
                                        allow_redirects=False, stream=stream)
        except requests.RequestException as exc:
            raise V2NoAnswer(type(exc).__name__, req.method, req.path, sent=not never_sent(exc)) from exc

    def call(self, req: Request) -> object:
        """Send ``req``; its JSON answer, or ``V2Error``."""
        response = self._send(req)
        try:
            body = response.json() if response.content else None
        except ValueError:
            body = None
        if response.status_code >= 400:
            raise parse_error(response.status_code, response.headers, body, req.method, req.path)
        if response.status_code >= 300:
            raise V2Refused(response.status_code, "redirect", "an API call was redirected", method=req.method,
                            path=req.path)
        if body is None and response.status_code != 204:
            raise V2Error("the answer is not JSON", req.method, req.path)
        return body

    def stream(self, req: Request, read_timeout: float = 60.0) -> requests.Response | None:
        """An open event stream (``stream=True``), or None when the surface will not give one now
        (429 ``too_many_streams``, no such route): polling still says everything that matters."""
        try:
            response = self.session.request(req.method, self.base + req.path, headers=req.headers, stream=True,
                                            timeout=(self.timeout, read_timeout), allow_redirects=False)
        except requests.RequestException:
            return None
        if response.status_code != 200:
            response.close()
            return None
        return response

    def download(self, url: str, dest: Path, limit: int, chunk: int = 1 << 20) -> Path:
        """``url`` (an output's content, maybe a 302 to a signed URL) to ``dest.part``, then rename.
        At most ``limit`` bytes; the key never travels to another host."""
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shown = redact(url)
        req, target, hops = Request("GET", urlsplit(url).path), url, 0
        while True:
            own = urlsplit(target).netloc == urlsplit(self.base).netloc
            response = self._send(req, stream=True, url=target) if own else self._foreign(req, target)
            if response.is_redirect and hops < 5:
                target, hops = urljoin(target, response.headers.get("Location", "")), hops + 1
                response.close()
                continue
            break
        if response.status_code >= 400:
            try:
                raise parse_error(response.status_code, response.headers, _json_or_none(response), "GET", shown)
            finally:
                response.close()
        return save_body(
            response, dest, limit, chunk,
            too_big=lambda written: V2Refused(200, "too_big", f"more than {limit / 1e6:.0f} MB for one clip",
                                              method="GET", path=shown),
            broke_off=lambda exc: V2NoAnswer(f"the download broke off ({type(exc).__name__})", "GET", shown))

    def _foreign(self, req: Request, target: str) -> requests.Response:
        """A signed URL elsewhere: no session headers (no key) go along."""
        try:
            return requests.get(target, timeout=self.timeout, allow_redirects=False, stream=True)
        except requests.RequestException as exc:
            raise V2NoAnswer(type(exc).__name__, req.method, redact(target)) from exc


def surface(url: str, headers: Mapping[str, str] | None = None, session: requests.Session | None = None,
            timeout: float = 10.0) -> dict | None:
    """What ``url`` is, when it serves the Comfy API v2 (``{"kind": "Comfy Cloud" | "comfy-api-proxy" |
    "Comfy API v2", "upstream": ...}``); None for anything else (a native ComfyUI answers the health
    route with a 404, a down server not at all)."""
    client = V2Client(url, headers=headers, session=session, key="", timeout=timeout)
    try:
        if client.is_cloud:
            return {"kind": "Comfy Cloud"}
        body = client.call(health_request())
    except V2Error:
        return None
    finally:
        client.close()
    if not isinstance(body, dict) or "status" not in body:
        return None
    upstream = body.get("upstream")
    return {"kind": "comfy-api-proxy" if upstream else "Comfy API v2",
            **({"upstream": redact(str(upstream))} if upstream else {})}


def _json_or_none(response: requests.Response) -> object:
    try:
        return response.json()
    except ValueError:
        return None
