"""`wanclip review --serve` as a browser meets it: byte ranges (Safari and iOS play a video only from a
server that answers them), HEAD, and nothing served from outside the film folder. A real server
process on a free loopback port, asked with http.client."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from helpers import ROOT
from test_storyboard import film_folder, shot

CLIP = bytes(range(256)) * 40 + b"tail"  # 10244 bytes, each offset telling


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """``(folder, port)`` of a `wanclip review FOLDER --serve --port 0` running in its own process."""
    tmp_path = tmp_path_factory.mktemp("served")
    folder, _ = film_folder(tmp_path, [shot(1, "one"), shot(2, "番茄")])
    (folder / "clips").mkdir()
    (folder / "clips" / "01_one.mp4").write_bytes(CLIP)
    (folder / "clips" / "02_番茄.mp4").write_bytes(CLIP[:100])
    (tmp_path / "out" / "secret.txt").write_text("outside the film folder", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    with subprocess.Popen([sys.executable, "-m", "wanclip", "review", str(folder), "--serve", "--port", "0", "--json"],
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            line = proc.stdout.readline()  # printed (and flushed) once the server listens
            assert line, proc.stderr.read()
            url = json.loads(line)["url"]
            yield folder, int(url.split(":")[2].split("/")[0])
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def ask(port: int, path: str, method: str = "GET", **headers) -> tuple[int, dict, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, headers={k.replace("_", "-"): v for k, v in headers.items()})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def test_a_clip_is_served_whole_and_says_it_takes_ranges(served):
    _, port = served
    status, headers, body = ask(port, "/clips/01_one.mp4")
    assert status == 200 and body == CLIP
    assert headers["accept-ranges"] == "bytes" and headers["content-length"] == str(len(CLIP))
    assert headers["content-type"] == "video/mp4" and "content-range" not in headers


@pytest.mark.parametrize(("wanted", "first", "last"), [
    ("bytes=0-1", 0, 1),  # what Safari asks first
    ("bytes=0-9", 0, 9),
    ("bytes=100-", 100, len(CLIP) - 1),
    ("bytes=-4", len(CLIP) - 4, len(CLIP) - 1),
    ("bytes=-99999", 0, len(CLIP) - 1),  # more than there is: all of it
    ("bytes=10000-20000", 10000, len(CLIP) - 1),  # past the end: up to the end
    ("bytes=10243-10243", 10243, 10243),
])
def test_a_byte_range_is_answered_206_with_exactly_those_bytes(served, wanted, first, last):
    _, port = served
    status, headers, body = ask(port, "/clips/01_one.mp4", Range=wanted)
    assert status == 206, (wanted, status)
    assert headers["content-range"] == f"bytes {first}-{last}/{len(CLIP)}"
    assert headers["content-length"] == str(last - first + 1) and body == CLIP[first:last + 1]
    assert headers["accept-ranges"] == "bytes"


@pytest.mark.parametrize("wanted", ["bytes=10244-", "bytes=20000-20010", "bytes=-0"])
def test_a_range_past_the_end_is_416_with_the_size(served, wanted):
    _, port = served
    status, headers, body = ask(port, "/clips/01_one.mp4", Range=wanted)
    assert status == 416 and headers["content-range"] == f"bytes */{len(CLIP)}"
    assert headers["content-length"] == "0" and body == b""


@pytest.mark.parametrize("wanted", ["bytes=0-1,5-6", "items=0-1", "bytes=5-2", "bytes=x-"])
def test_several_ranges_or_a_malformed_one_get_the_whole_file(served, wanted):
    _, port = served
    status, headers, body = ask(port, "/clips/01_one.mp4", Range=wanted)
    assert status == 200 and body == CLIP and headers["content-length"] == str(len(CLIP))


def test_head_says_what_get_would_send_without_the_bytes(served):
    _, port = served
    status, headers, body = ask(port, "/clips/01_one.mp4", "HEAD")
    assert (status, headers["content-length"], headers["accept-ranges"], body) == (200, str(len(CLIP)), "bytes", b"")
    status, headers, body = ask(port, "/clips/01_one.mp4", "HEAD", Range="bytes=10-19")
    assert (status, headers["content-range"], headers["content-length"], body) == (206, f"bytes 10-19/{len(CLIP)}",
                                                                                   "10", b"")
    status, headers, _ = ask(port, "/clips/01_one.mp4", "HEAD", Range="bytes=99999-")
    assert status == 416 and headers["content-range"] == f"bytes */{len(CLIP)}"


def test_a_range_of_a_clip_with_a_chinese_name_and_of_the_page(served):
    _, port = served
    status, headers, body = ask(port, "/" + quote("clips/02_番茄.mp4"), Range="bytes=90-")
    assert status == 206 and body == CLIP[90:100] and headers["content-range"] == "bytes 90-99/100"
    status, headers, body = ask(port, "/", Range="bytes=0-14")  # the folder is its page
    assert status == 206 and body == b"<!doctype html>" and headers["content-type"].startswith("text/html")


def test_a_stale_if_range_gets_the_whole_file(served):
    _, port = served
    status, _, body = ask(port, "/clips/01_one.mp4", Range="bytes=0-9", If_Range="Wed, 01 Jan 2020 00:00:00 GMT")
    assert status == 200 and body == CLIP
    _, headers, _ = ask(port, "/clips/01_one.mp4", "HEAD")
    status, _, body = ask(port, "/clips/01_one.mp4", Range="bytes=0-9", If_Range=headers["last-modified"])
    assert status == 206 and body == CLIP[:10]


def test_nothing_outside_the_folder_is_served_ranges_or_not(served):
    folder, port = served
    outside = folder.parent / "secret.txt"
    (folder / "clips" / "link.mp4").symlink_to(outside)
    for path in ("/../secret.txt", "/%2e%2e/secret.txt", "/clips/../../secret.txt", "/clips/%2E%2E/%2E%2E/secret.txt",
                 "/clips/link.mp4", "/" + quote(str(outside))):
        for method in ("GET", "HEAD"):
            status, _, body = ask(port, path, method, Range="bytes=0-5")
            assert status == 404 and b"outside" not in body, (path, method, status)
    assert ask(port, "/ledger.json")[0] == 200


def test_the_served_page_of_a_killed_render_stops_refreshing(served):
    """A render killed without cleanup leaves a page that says it runs; the server writes it again
    before serving it."""
    folder, port = served
    from wanclip.ledger import OWNER_NAME
    from wanclip.review.page import LIVE_MARK
    from wanclip.review.storyboard import write_page

    write_page(folder, rendering=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (folder / OWNER_NAME).write_text(f"render (pid {int(dead.stdout)})", encoding="utf-8")
    status, _, body = ask(port, "/index.html")
    assert status == 200 and LIVE_MARK.encode() not in body
    assert LIVE_MARK not in Path(folder / "index.html").read_text(encoding="utf-8")
