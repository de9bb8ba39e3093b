"""A small ComfyUI client: HTTP through an injected ``requests`` session, websocket through an
injected connect function. Third-party errors are translated here, once, into ``ServerError``.

Credentials (``user:pass@`` in the URL, extra headers) are applied to requests but never appear in
``client.url`` — the printable form — nor in any error message.
"""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests
import websocket

from wanclip.errors import PromptRejected, ServerError

WsConnect = Callable[..., "websocket.WebSocket"]

MODEL_FOLDERS = ("diffusion_models", "text_encoders", "loras", "vae")


def parse_header(line: str) -> tuple[str, str]:
    name, sep, value = line.partition(":")
    if not sep or not name.strip():
        raise ServerError(f"a header must look like 'Name: value' (got {name.strip() or 'an empty name'!r})",
                          "pass --header 'Authorization: Bearer TOKEN'", exit_code=2)
    return name.strip(), value.strip()


def split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """``http://u:p@host:8188/`` -> (``http://host:8188``, (u, p)); no trailing slash."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ServerError(f"{url!r} is not a server URL", "write it like http://127.0.0.1:8188", exit_code=2)
    auth = (parts.username or "", parts.password or "") if parts.username else None
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", "")), auth


class ComfyClient:
    """One ComfyUI server. ``url`` is safe to print; credentials live only in the session."""

    def __init__(self, url: str, *, headers: list[str] | None = None, session: requests.Session | None = None,
                 ws_connect: WsConnect | None = None, timeout: float = 30.0):
        self.url, auth = split_credentials(url)
        self.session = session or requests.Session()
        if auth:
            self.session.auth = auth
        self.headers = dict(parse_header(h) for h in headers or [])
        self.session.headers.update(self.headers)
        self.ws_connect = ws_connect or websocket.create_connection
        self.timeout = timeout

    # -- plumbing -------------------------------------------------------------------------------
    def _request(self, method: str, path: str, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        try:
            return self.session.request(method, self.url + path, **kwargs)
        except requests.RequestException as exc:
            raise ServerError(f"ComfyUI at {self.url} did not answer {method} {path}: {type(exc).__name__}",
                              "is ComfyUI running there? check the address and port (wanclip doctor)",
                              server=self.url) from exc

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
        return list(response.json())

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
    def submit(self, prompt: dict, client_id: str, prompt_id: str | None = None) -> dict:
        """POST /prompt. A 400 raises ``PromptRejected`` carrying ComfyUI's ``node_errors``."""
        prompt_id = prompt_id or str(uuid.uuid4())
        body = {"prompt": prompt, "client_id": client_id, "prompt_id": prompt_id}
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
                                 error=error if isinstance(error, dict) else {"message": str(error)})
        if response.status_code >= 400:
            raise ServerError(f"ComfyUI at {self.url} answered POST /prompt with HTTP {response.status_code}",
                              _hint_for_status(response.status_code), server=self.url)
        data = response.json()
        data.setdefault("prompt_id", prompt_id)
        return data

    def interrupt(self, prompt_id: str) -> None:
        """Interrupt ``prompt_id`` only if it is the one running (never someone else's)."""
        self._post("/interrupt", {"prompt_id": prompt_id})

    def delete_pending(self, prompt_ids: list[str]) -> None:
        if prompt_ids:
            self._post("/queue", {"delete": list(prompt_ids)})

    def download(self, filename: str, subfolder: str, kind: str, dest: Path, chunk: int = 1 << 20) -> Path:
        """Stream ``/view`` to ``dest.part``, then rename: ``dest`` is whole or absent."""
        params = {"filename": filename, "subfolder": subfolder, "type": kind}
        response = self._request("GET", "/view", params=params, stream=True)
        if response.status_code >= 400:
            raise ServerError(f"ComfyUI at {self.url} has no file {subfolder + '/' if subfolder else ''}"
                              f"{filename} ({kind}): HTTP {response.status_code}",
                              "the server may have been restarted or its output folder cleaned; rerun to "
                              "render the shot again", server=self.url)
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_name(dest.name + ".part")
        try:
            with open(part, "wb") as fh:
                for block in response.iter_content(chunk):
                    fh.write(block)
            os.replace(part, dest)
        except requests.RequestException as exc:
            part.unlink(missing_ok=True)
            raise ServerError(f"the download of {filename} from {self.url} broke off",
                              "rerun: finished shots are kept", server=self.url) from exc
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        finally:
            response.close()
        return dest

    # -- websocket ------------------------------------------------------------------------------
    def ws_url(self, client_id: str) -> str:
        scheme = "wss" if self.url.startswith("https") else "ws"
        return f"{scheme}{self.url[self.url.index(':'):]}/ws?clientId={client_id}"

    def open_ws(self, client_id: str, timeout: float | None = None):
        """Connect the event socket (with our headers and credentials)."""
        headers = [f"{k}: {v}" for k, v in self.headers.items()]
        if self.session.auth:
            user, password = self.session.auth
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            headers.append(f"Authorization: Basic {token}")
        try:
            return self.ws_connect(self.ws_url(client_id), header=headers, timeout=timeout)
        except (OSError, websocket.WebSocketException) as exc:
            raise ServerError(f"cannot open the event socket of ComfyUI at {self.url}: {type(exc).__name__}",
                              "is ComfyUI running there? check the address and port (wanclip doctor)",
                              server=self.url) from exc


def _hint_for_status(status: int) -> str:
    if status in (401, 403):
        return "the server (or a proxy in front of it) wants credentials: --header or user:pass@ in the URL"
    if status >= 500:
        return "the server had an internal error; look at the ComfyUI console"
    return "check the server address and that it is ComfyUI"
