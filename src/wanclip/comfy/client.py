"""A small ComfyUI client: HTTP through an injected ``requests`` session, websocket through an
injected connect function. Third-party errors are translated here, once, into ``ServerError``.

Credentials (``user:pass@`` in the URL, extra headers) are applied to requests but never appear in
``client.url`` — the printable form — nor in any error message.
"""

from __future__ import annotations

import base64
import errno
import os
import re
import shutil
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import requests
import websocket

from wanclip.errors import LocalIOError, PromptRejected, ServerError, UsageError
from wanclip.files import size_text
from wanclip.urls import redact

WsConnect = Callable[..., "websocket.WebSocket"]

MODEL_FOLDERS = ("diffusion_models", "text_encoders", "loras", "vae")


_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # an HTTP header name (RFC 9110 token)


def parse_header(line: str) -> tuple[str, str]:
    """``'Name: value'`` -> (name, value). A message never repeats the value: it may be a secret."""
    name, sep, value = line.partition(":")
    name = name.strip()
    if not sep:
        raise UsageError("a --header must look like 'Name: value' (this one has no ':'; its text is not "
                         "shown, it may be a secret)", "pass --header 'Authorization: Bearer TOKEN'", "--header")
    if not _TOKEN.match(name):
        raise UsageError("a --header name may only hold letters, digits and -_.!#$%&'*+^`|~ (the header's "
                         "text is not shown, it may be a secret)", "pass --header 'X-Api-Key: KEY'", "--header")
    return name, value.strip()


def split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """``http://u:p@host:8188/`` -> (``http://host:8188``, (u, p)); no trailing slash.

    A malformed URL (no scheme or host, a port past 65535, a broken IPv6 address) is refused with
    the URL shown without its credentials."""
    shown = redact(url)
    hint = "write it like http://127.0.0.1:8188 (or http://user:password@host:8188, https://[::1]:8188)"
    try:
        parts = urlsplit(url.strip())
        port, hostname = parts.port, parts.hostname
    except ValueError as exc:
        why = "its port is not a number from 1 to 65535" if "port" in str(exc).lower() else \
            "its host is not a valid name or IPv6 address"
        raise UsageError(f"{shown!r} is not a server URL: {why}", hint, "--server") from None
    if parts.scheme not in ("http", "https") or not hostname:
        raise UsageError(f"{shown!r} is not a server URL", hint, "--server")
    if port == 0:
        raise UsageError(f"{shown!r} is not a server URL: its port is not a number from 1 to 65535", hint,
                         "--server")
    auth = (unquote(parts.username or ""), unquote(parts.password or "")) if parts.username else None
    host = hostname if ":" not in hostname else f"[{hostname}]"
    netloc = f"{host}:{port}" if port else host
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", "")), auth


def auth_headers(headers: Mapping[str, str] | list[str] | None, auth: tuple[str, str] | None) -> dict[str, str]:
    """The extra headers of every request, HTTP and websocket alike, with exactly one
    ``Authorization``: an explicit ``--header 'Authorization: ...'`` wins over ``user:pass@``.
    ``headers``: a mapping (parsed once where the person gave them), or ``Name: value`` lines."""
    out: dict[str, str] = {}
    pairs = headers.items() if isinstance(headers, Mapping) else map(parse_header, headers or [])
    for name, value in pairs:
        out = {k: v for k, v in out.items() if k.lower() != name.lower()}
        out[name] = value
    if auth and not any(k.lower() == "authorization" for k in out):
        out["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    return out


def save_body(response: requests.Response, dest: Path, limit: int, chunk: int, too_big, broke_off) -> Path:
    """Stream ``response``'s body to ``dest.part``, then rename: ``dest`` is whole or absent, and the
    response is closed. Past ``limit`` bytes ``too_big(bytes written)`` is raised (a buggy or hostile
    server could stream forever); a connection that breaks off raises ``broke_off(exception)``; a
    local write that fails (a full disk) raises ``LocalIOError``. Native and v2 downloads share it."""
    part = dest.with_name(dest.name + ".part")
    try:
        written = 0
        with open(part, "wb") as fh:
            for block in response.iter_content(chunk):
                written += len(block)
                if written > limit:
                    raise too_big(written)
                fh.write(block)
        os.replace(part, dest)
    except requests.RequestException as exc:
        part.unlink(missing_ok=True)
        raise broke_off(exc) from exc
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise LocalIOError.from_os(exc, dest) from exc
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    finally:
        response.close()
    return dest


class ComfyClient:
    """One ComfyUI server. ``url`` is safe to print; credentials live only in the session."""

    def __init__(self, url: str, *, headers: Mapping[str, str] | list[str] | None = None, session: requests.Session | None = None,
                 ws_connect: WsConnect | None = None, timeout: float = 30.0):
        self.url, auth = split_credentials(url)
        self.session = session or requests.Session()
        self.session.auth = _no_auth  # keeps ~/.netrc from adding a second Authorization
        self.headers = auth_headers(headers, auth)
        self.session.headers.update(self.headers)
        self.ws_connect = ws_connect or websocket.create_connection
        self.timeout = timeout
        self.prefix = ""  # "/api" once the server is known to serve its routes there (newer clouds: only there)

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> ComfyClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- plumbing -------------------------------------------------------------------------------
    def _request(self, method: str, path: str, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        if self.prefix and not path.startswith(self.prefix + "/"):
            path = self.prefix + path
        kwargs.setdefault("allow_redirects", False)  # ComfyUI's API never redirects: a header must not travel
        try:
            response = self.session.request(method, self.url + path, **kwargs)
        except requests.RequestException as exc:
            raise ServerError(f"ComfyUI at {self.url} did not answer {method} {path}: {type(exc).__name__}",
                              "is ComfyUI running there? check the address and port (wanclip doctor)",
                              server=self.url, transient=True) from exc
        if response.is_redirect:
            target = redact(response.headers.get("Location", ""))
            response.close()
            raise ServerError(f"ComfyUI at {self.url} answered {method} {path} with a redirect to {target}: "
                              "ComfyUI never redirects its API, so wanclip does not follow it (your headers and "
                              "credentials would go along)", "give the address it redirects to as --server",
                              server=self.url)
        return response

    def _json(self, method: str, path: str, **kwargs):
        response = self._request(method, path, **kwargs)
        if response.status_code >= 400:
            raise ServerError(f"ComfyUI at {self.url} answered {method} {path} with HTTP {response.status_code}",
                              _hint_for_status(response.status_code), server=self.url)
        try:
            return response.json()
        except ValueError as exc:
            raise ServerError(f"ComfyUI at {self.url} answered {method} {path} with something that is not JSON",
                              "is that address a ComfyUI server (and not a login page of a proxy)?",
                              server=self.url) from exc

    def _post(self, path: str, body: dict) -> None:
        response = self._request("POST", path, json=body)
        if response.status_code >= 400:
            raise ServerError(f"ComfyUI at {self.url} answered POST {path} with HTTP {response.status_code}",
                              _hint_for_status(response.status_code), server=self.url)

    # -- read-only endpoints --------------------------------------------------------------------
    def system_stats(self) -> dict:
        return self._json("GET", "/system_stats")

    def object_info(self, node_class: str | None = None) -> dict:
        return self._json("GET", f"/object_info/{node_class}" if node_class else "/object_info")

    def models(self, folder: str) -> list[str]:
        """File names in one models folder; an unknown folder is an empty list (ComfyUI says 404)."""
        response = self._request("GET", f"/models/{folder}")
        if response.status_code == 404:
            return []
        if response.status_code >= 400:
            raise ServerError(f"ComfyUI at {self.url} answered GET /models/{folder} with HTTP "
                              f"{response.status_code}", _hint_for_status(response.status_code), server=self.url)
        try:
            names = response.json()
        except ValueError:
            names = None
        if not isinstance(names, list):
            raise ServerError(f"ComfyUI at {self.url} answered GET /models/{folder} with something that is not "
                              "a list of file names", "is that address a ComfyUI server (and not a login page "
                              "of a proxy)?", server=self.url)
        return [str(n) for n in names]

    def queue(self) -> dict:
        return self._json("GET", "/queue")

    def queued_ids(self) -> tuple[set[str], set[str]]:
        """(running ids, pending ids) from ``/queue``; items are ``[number, prompt_id, ...]``."""
        queue = self.queue()
        running = {item[1] for item in queue.get("queue_running", [])}
        pending = {item[1] for item in queue.get("queue_pending", [])}
        return running, pending

    def history(self, prompt_id: str) -> dict | None:
        """The history entry, or None while it is not there (pending, running, unknown or lost)."""
        return self._json("GET", f"/history/{prompt_id}").get(prompt_id)

    # -- actions --------------------------------------------------------------------------------
    def upload_image(self, path: Path, name: str) -> str:
        """POST /upload/image into ComfyUI's ``input/`` folder as ``name``; the name the server
        stored it under comes back. ComfyUI keeps one file per content: the same bytes under the same
        name are not written again (so a content-addressed name makes a re-upload a no-op)."""
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise LocalIOError(f"cannot read {path} to upload it: {exc.strerror or exc}",
                               "the picture was removed during the render; render again to remake it",
                               path=str(path), errno=exc.errno) from exc
        kind = "video/mp4" if name.lower().endswith(".mp4") else "image/png"  # a clip for the post stage
        response = self._request("POST", "/upload/image", files={"image": (name, data, kind)},
                                 data={"type": "input"})
        if response.status_code >= 400:
            hint = ("the picture is larger than the server's --max-upload-size" if response.status_code == 413
                    else _hint_for_status(response.status_code))
            raise ServerError(f"ComfyUI at {self.url} answered POST /upload/image ({name}) with HTTP "
                              f"{response.status_code}", hint, server=self.url,
                              transient=response.status_code >= 500 or response.status_code == 429)
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict) or not isinstance(answer.get("name"), str):
            raise ServerError(f"ComfyUI at {self.url} answered POST /upload/image without the file's name",
                              "is that address a ComfyUI server?", server=self.url, transient=True)
        sub = answer.get("subfolder") or ""
        return f"{sub}/{answer['name']}" if sub else answer["name"]

    def submit(self, prompt: dict, client_id: str, prompt_id: str | None = None, front: bool = False) -> dict:
        """POST /prompt. A 400 raises ``PromptRejected`` carrying ComfyUI's ``node_errors``.
        ``front``: ahead of the prompts already queued (a chain's next link goes before the rest)."""
        prompt_id = prompt_id or str(uuid.uuid4())
        # no preview images: newer servers read extra_data.preview_method, older ones ignore it
        body = {"prompt": prompt, "client_id": client_id, "prompt_id": prompt_id,
                "extra_data": {"preview_method": "none"}}
        if front:
            body["front"] = True
        response = self._request("POST", "/prompt", json=body)
        if response.status_code == 400:
            try:
                data = response.json()
            except ValueError:
                data = {}
            error = data.get("error") or {}
            message = error.get("message") if isinstance(error, dict) else str(error)
            raise PromptRejected(f"ComfyUI at {self.url} refused the prompt: {message or 'HTTP 400'}",
                                 node_errors=data.get("node_errors") or {},
                                 error=error if isinstance(error, dict) else {"message": str(error)},
                                 server=self.url)
        if response.status_code == 409:  # newer ComfyUI: "prompt_id already exists": it is there
            return {"prompt_id": prompt_id, "existing": True}
        if response.status_code >= 400:
            raise ServerError(f"ComfyUI at {self.url} answered POST /prompt with HTTP {response.status_code}",
                              _hint_for_status(response.status_code), server=self.url)
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise ServerError(f"ComfyUI at {self.url} answered POST /prompt with something that is not JSON",
                              "is that address a ComfyUI server (and not a proxy's error page)?", server=self.url)
        data.setdefault("prompt_id", prompt_id)
        return data

    def interrupt(self, prompt_id: str) -> None:
        """Interrupt ``prompt_id`` only if it is the one running (never someone else's)."""
        self._post("/interrupt", {"prompt_id": prompt_id})

    def delete_pending(self, prompt_ids: list[str]) -> None:
        if prompt_ids:
            self._post("/queue", {"delete": list(prompt_ids)})

    def download(self, filename: str, subfolder: str, kind: str, dest: Path, limit: int,
                 chunk: int = 1 << 20) -> Path:
        """Stream ``/view`` to ``dest.part``, then rename: ``dest`` is whole or absent.

        At most ``limit`` bytes are accepted (a buggy or hostile server could stream forever), and
        the disk must have room for them (or for the announced length) before the first byte."""
        name = f"{subfolder + '/' if subfolder else ''}{filename}"
        params = {"filename": filename, "subfolder": subfolder, "type": kind}
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        response = self._request("GET", "/view", params=params, stream=True)
        try:
            if response.status_code >= 400:
                raise ServerError(f"ComfyUI at {self.url} has no file {name} ({kind}): HTTP {response.status_code}",
                                  "the server may have been restarted or its output folder cleaned; rerun to "
                                  "render the shot again", server=self.url, transient=response.status_code >= 500)
            announced = int(response.headers.get("Content-Length") or 0)
            if announced > limit:
                raise ServerError(_too_big(name, self.url, announced, limit), _TOO_BIG_HINT, server=self.url)
            if announced:
                _check_room(dest.parent, announced)  # unannounced: a full disk fails the write itself
        except OSError as exc:
            response.close()
            raise LocalIOError.from_os(exc, dest) from exc
        except BaseException:
            response.close()
            raise
        return save_body(
            response, dest, limit, chunk,
            too_big=lambda written: ServerError(_too_big(name, self.url, written, limit), _TOO_BIG_HINT,
                                                server=self.url),
            broke_off=lambda exc: ServerError(f"the download of {filename} from {self.url} broke off",
                                              "rerun: finished shots are kept", server=self.url, transient=True))

    # -- websocket ------------------------------------------------------------------------------
    def ws_url(self, client_id: str) -> str:
        scheme = "wss" if self.url.startswith("https") else "ws"
        return f"{scheme}{self.url[self.url.index(':'):]}/ws?clientId={client_id}"

    def open_ws(self, client_id: str, timeout: float | None = None):
        """Connect the event socket (with the same headers, one Authorization, as every request)."""
        headers = [f"{k}: {v}" for k, v in self.headers.items()]
        try:
            return self.ws_connect(self.ws_url(client_id), header=headers, timeout=timeout)
        except (OSError, websocket.WebSocketException) as exc:
            raise ServerError(f"cannot open the event socket of ComfyUI at {self.url}: {type(exc).__name__}",
                              "is ComfyUI running there? check the address and port (wanclip doctor)",
                              server=self.url) from exc


def _no_auth(request):
    return request


_TOO_BIG_HINT = "a ComfyUI output this big is not the clip that was asked for; check the server and its output node"


def _too_big(name: str, url: str, size: int, limit: int) -> str:
    return (f"ComfyUI at {url} sent more than {limit / 1e6:.0f} MB for {name} ({size / 1e6:.0f} MB so far); "
            "the download was stopped and nothing was kept")


def _check_room(folder: Path, need: int) -> None:
    """Refuse before the first byte a clip the disk has no room for (its announced length)."""
    free = shutil.disk_usage(folder).free
    if free < need:
        raise OSError(errno.ENOSPC, f"the clip is {size_text(need)}, {size_text(free)} free")


def _hint_for_status(status: int) -> str:
    if status in (401, 403):
        return "the server (or a proxy in front of it) wants credentials: --header or user:pass@ in the URL"
    if status >= 500:
        return "the server had an internal error; look at the ComfyUI console"
    return "check the server address and that it is ComfyUI"
