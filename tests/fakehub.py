"""A loopback fake of the Hugging Face hub's ``/resolve`` route (model-download.md section 3).

Tests (and the benchmark) start it in a thread, add small files under the real repo ids and paths,
and inject faults per file: cut the connection after N bytes, serve wrong bytes of the right size,
answer 404 / 401 / gated. It counts requests and the bytes it served per file, so a test can say
"the rerun fetched only the missing half" with an exact number.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COMMIT = "0123456789abcdef0123456789abcdef01234567"
_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")
_CDN = re.compile(r"^/cdn/(?P<repo>[^/]+/[^/]+)/(?P<path>.+)$")
_RANGE = re.compile(r"^bytes=(\d+)-$")


@dataclass
class Fault:
    cut_at: int | None = None    # close the socket once the body reaches this absolute offset
    cuts: int | None = None      # how many responses to cut (None: every one)
    wrong_bytes: bool = False    # same size, other bytes, the true sha256 still in the ETag
    error: str | None = None     # "missing" (404), "unauthorized" (401), "gated" (403)
    size: int | None = None      # the size the metadata (HEAD) states instead of the true one


@dataclass
class FakeHub:
    redirect: bool = False       # HEAD/GET answer 302 to a second "CDN" port, like LFS files
    files: dict = field(default_factory=dict)
    faults: dict = field(default_factory=dict)
    requests: list = field(default_factory=list)
    served: Counter = field(default_factory=Counter)
    cdn_saw_authorization: bool = False

    def add(self, repo: str, path: str, data: bytes) -> None:
        self.files[(repo, path)] = data

    def fault(self, path: str, **kwargs) -> Fault:
        self.faults[path] = Fault(**kwargs)
        return self.faults[path]

    def resolve_requests(self) -> list:
        return [r for r in self.requests if "/resolve/" in r[1] or r[1].startswith("/cdn/")]

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> FakeHub:
        self._lock = threading.Lock()
        self._servers = [self._serve(), self._serve()] if self.redirect else [self._serve()]
        self.url = _address(self._servers[0])
        self.cdn_url = _address(self._servers[-1])
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()

    def _serve(self) -> ThreadingHTTPServer:
        hub = self

        class Handler(_Handler):
            pass

        Handler.hub = hub
        server = _QuietServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        return server


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:  # clients killed mid-body are expected
        pass


def _address(server: ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hub: FakeHub

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def do_GET(self) -> None:
        self._answer(body=True)

    def _answer(self, body: bool) -> None:
        hub = self.hub
        with hub._lock:
            hub.requests.append((self.command, self.path, self.headers.get("Range")))
        cdn = _CDN.match(self.path)
        if cdn:
            hub.cdn_saw_authorization |= "Authorization" in self.headers
            return self._content(cdn["repo"], cdn["path"], body)
        match = _RESOLVE.match(self.path)
        if not match:
            return self._status(404, "RepoNotFound")
        repo, path = match["repo"], match["path"]
        if (repo, path) not in hub.files:
            return self._status(404, "EntryNotFound")
        fault = hub.faults.get(path) or Fault()
        if fault.error:
            return self._status(*{"missing": (404, "EntryNotFound"), "unauthorized": (401, "RepoNotFound"),
                                  "gated": (403, "GatedRepo")}[fault.error])
        if hub.redirect:
            return self._redirect(repo, path)
        return self._content(repo, path, body)

    def _status(self, code: int, error_code: str) -> None:
        self.send_response(code)
        self.send_header("X-Error-Code", error_code)
        self.send_header("X-Error-Message", f"{error_code} (fake hub)")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _redirect(self, repo: str, path: str) -> None:
        data = self.hub.files[(repo, path)]
        self.send_response(302)
        self.send_header("Location", f"{self.hub.cdn_url}/cdn/{repo}/{path}")
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("X-Linked-Etag", f'"{hashlib.sha256(data).hexdigest()}"')
        self.send_header("X-Linked-Size", str(_stated_size(self.hub, path, data)))
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _content(self, repo: str, path: str, body: bool) -> None:
        data = self.hub.files[(repo, path)]
        fault = self.hub.faults.get(path) or Fault()
        start = _range_start(self.headers.get("Range"), len(data))
        self.send_response(206 if start else 200)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        self.send_header("Accept-Ranges", "bytes")
        length = len(data) - start if body else _stated_size(self.hub, path, data) - start
        self.send_header("Content-Length", str(length))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if body:
            self._send_body(path, _served_bytes(data, fault), start, fault)

    def _send_body(self, path: str, data: bytes, start: int, fault: Fault) -> None:
        end = len(data)
        if fault.cut_at is not None and fault.cuts != 0:
            end = max(start, min(end, fault.cut_at))
            if fault.cuts:
                fault.cuts -= 1
        view = memoryview(data)
        try:
            for offset in range(start, end, 1 << 16):
                piece = view[offset:min(end, offset + (1 << 16))]
                self.wfile.write(piece)
                with self.hub._lock:
                    self.hub.served[path] += len(piece)
        except (BrokenPipeError, ConnectionResetError):
            return
        if end < len(data):  # the cut: the client sees a body shorter than Content-Length
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)


def _stated_size(hub: FakeHub, path: str, data: bytes) -> int:
    fault = hub.faults.get(path) or Fault()
    return len(data) if fault.size is None else fault.size


def _served_bytes(data: bytes, fault: Fault) -> bytes:
    return bytes(b ^ 0xFF for b in data) if fault.wrong_bytes else data


def _range_start(header: str | None, size: int) -> int:
    match = _RANGE.match(header or "")
    return min(int(match[1]), size) if match else 0
