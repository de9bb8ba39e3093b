"""``wanclip review --serve``: the film folder over HTTP on loopback, with byte ranges.

Safari and iOS play a video only from a server that answers ``Range: bytes=a-b`` with ``206
Partial Content``; so every file is served with ``Accept-Ranges: bytes`` and a single range
(``a-b``, ``a-``, ``-n``) is answered with its bytes and ``Content-Range`` (``416`` with
``Content-Range: bytes */SIZE`` when it lies past the end). Several ranges in one request, or a
malformed header, get the whole file (200), as RFC 9110 allows. Only files inside the folder are
served: a path that leaves it (``..``, a link pointing out) is 404.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
from collections.abc import Callable
from http import HTTPStatus
from pathlib import Path

RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.I)


def byte_range(header: str | None, size: int) -> tuple[int, int] | None | bool:
    """The ``(first, last)`` bytes (inclusive) ``header`` asks of a file of ``size`` bytes.

    None: serve the whole file (no header, a malformed one, several ranges). False: the range cannot
    be satisfied (416)."""
    match = RANGE.match(header or "")
    if not match or match.group(1) == match.group(2) == "":
        return None
    first, last = match.group(1), match.group(2)
    if first == "":  # -n: the last n bytes
        count = int(last)
        if count == 0 or size == 0:
            return False
        return max(0, size - count), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last != "" else size - 1
    if last != "" and int(last) < start:
        return None  # "bytes=5-2" is invalid, not unsatisfiable: ignore it
    if start >= size:
        return False
    return start, end


class _Slice:
    """``length`` bytes of an open file from where it stands (what ``copyfile`` reads for a 206)."""

    def __init__(self, file, length: int):
        self.file, self.left = file, length

    def read(self, size: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        data = self.file.read(self.left if size < 0 else min(size, self.left))
        self.left -= len(data)
        return data

    def close(self) -> None:
        self.file.close()


class FolderHandler(http.server.SimpleHTTPRequestHandler):
    """The folder's files, byte ranges included; quiet (the console stays for the URL and Ctrl-C).

    ``before_page`` (set by ``serve``) is called before the page itself is served."""

    before_page: Callable[[], None] | None = None

    def log_message(self, fmt, *args) -> None:
        pass

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")  # a refreshing page must see the new ledger
        super().end_headers()

    def send_head(self):
        path = self.translate_path(self.path)
        bare = self.path.split("?", 1)[0].split("#", 1)[0]
        if bare == "/favicon.ico" and not os.path.isfile(path):
            self.send_response(204)  # browsers ask for one; a 404 would log an error in the console
            self.end_headers()
            return None
        if not self._inside(path):
            self.send_error(HTTPStatus.NOT_FOUND, "File not found")
            return None
        if os.path.isdir(path):
            index = os.path.join(path, "index.html")
            if not bare.endswith("/") or not os.path.isfile(index):
                return super().send_head()  # the redirect to "dir/", or the folder's listing
            path = index
        if os.path.basename(path) == "index.html" and self.before_page is not None:
            self.before_page()
        return self._send_file(path)

    def _inside(self, path: str) -> bool:
        root = os.path.realpath(self.directory)
        try:
            return os.path.commonpath([root, os.path.realpath(path)]) == root
        except ValueError:  # another drive (Windows)
            return False

    def _send_file(self, path: str):
        if path.endswith("/"):
            self.send_error(HTTPStatus.NOT_FOUND, "File not found")
            return None
        try:
            file = open(path, "rb")  # noqa: SIM115 - returned to the caller, which closes it
        except OSError:
            self.send_error(HTTPStatus.NOT_FOUND, "File not found")
            return None
        try:
            stat = os.fstat(file.fileno())
            size, modified = stat.st_size, self.date_time_string(stat.st_mtime)
            wanted = self.headers.get("Range")
            if_range = self.headers.get("If-Range")
            span = byte_range(wanted, size) if wanted and (not if_range or if_range.strip() == modified) else None
            if span is False:
                file.close()
                self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            first, last = span if span else (0, size - 1)
            self.send_response(HTTPStatus.PARTIAL_CONTENT if span else HTTPStatus.OK)
            self.send_header("Content-type", self.guess_type(path))
            self.send_header("Accept-Ranges", "bytes")
            if span:
                self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
            self.send_header("Content-Length", str(last - first + 1 if size else 0))
            self.send_header("Last-Modified", modified)
            self.end_headers()
            file.seek(first)
            return _Slice(file, last - first + 1)
        except BaseException:
            file.close()
            raise


def serve(folder: Path, port: int, before_page: Callable[[], None] | None = None) -> http.server.ThreadingHTTPServer:
    """A server for ``folder`` only, on 127.0.0.1 only (port 0: a free one); raises OSError."""
    handler = type("Handler", (FolderHandler,), {"before_page": staticmethod(before_page) if before_page else None})
    return http.server.ThreadingHTTPServer(("127.0.0.1", port),
                                           functools.partial(handler, directory=str(Path(folder).resolve())))
