"""A loopback proxy that, like an authenticating reverse proxy, refuses any connection whose first
request lacks a header (401) and pipes the rest to the server behind it, websocket upgrades too."""

from __future__ import annotations

import socket
import socketserver
import threading


class _Pipe(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        proxy: AuthProxy = self.server.owner  # type: ignore[attr-defined]
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.request.recv(65536)
            if not chunk:
                return
            head += chunk
        lines = head.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        allowed = headers.get(proxy.name.lower()) == proxy.value
        proxy.seen.append((lines[0].split(" ")[1], allowed))
        if not allowed:
            self.request.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        with socket.create_connection(proxy.upstream) as upstream:
            upstream.sendall(head)
            back = threading.Thread(target=_copy, args=(upstream, self.request), daemon=True)
            back.start()
            _copy(self.request, upstream)
            back.join(timeout=5)


def _copy(source: socket.socket, dest: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            dest.sendall(chunk)
    except OSError:
        pass
    finally:
        try:
            dest.shutdown(socket.SHUT_WR)
        except OSError:
            pass


class AuthProxy:
    """``with AuthProxy(sim_url, "X-Api-Key", "s3cret") as proxy``: ``proxy.url``; ``proxy.seen``
    lists (path, allowed) for the first request of each connection."""

    def __init__(self, upstream_url: str, name: str, value: str):
        host, port = upstream_url.split("//", 1)[1].rstrip("/").rsplit(":", 1)
        self.upstream, self.name, self.value = (host, int(port)), name, value
        self.seen: list[tuple[str, bool]] = []
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Pipe)
        self.server.daemon_threads = True
        self.server.owner = self  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> AuthProxy:
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
