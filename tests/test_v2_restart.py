"""comfy-api-proxy killed and restarted mid-film WITHOUT ``--state-dir``: it forgets its jobs and its
Idempotency-Keys, so a POST whose answer died with it cannot be proved to have made no job. The render
must still finish, and say plainly which shot may have rendered twice, and of no other shot."""

from __future__ import annotations

import json
import queue
import uuid

import pytest
import requests

from test_v2_proxy import executed, tiny_film
from wanclip.ledger import load_ledger


def shot_of(body: dict) -> str | None:
    """Which tiny_film shot a POST /prompt body is ("test shot number N")."""
    text = json.dumps(body)
    return next((f"shot-{n}" for n in range(1, 10) if f"test shot number {n}'" in text
                 or f"test shot number {n}\"" in text), None)


class Unsent(requests.Session):
    """Once armed (``refused = 0``), the next POST of a job never reaches the proxy: no answer."""

    def __init__(self):
        super().__init__()
        self.refused = 1

    def request(self, method, url, *args, **kwargs):
        if method == "POST" and url.endswith("/api/v2/jobs") and not self.refused:
            self.refused += 1
            raise requests.ConnectionError("refused")
        return super().request(method, url, *args, **kwargs)


def test_a_post_without_answer_to_a_proxy_that_kept_its_state_is_not_doubted(sim, bare_proxy, tmp_path):
    """The same proxy still labels our earlier job: its keys are intact, so the retry's 201 proves the
    first POST made no job, and nothing is said."""
    from test_v2_proxy import graph
    from wanclip.comfy import v2
    from wanclip.errors import ServerError
    from wanclip.render.v2 import V2Backend

    backend, sink = V2Backend(v2.V2Client(bare_proxy.url, session=Unsent())), queue.Queue()
    backend.sink = sink
    backend.submit(graph(tmp_path, "an earlier shot"), str(uuid.uuid4()))
    attempt, g = str(uuid.uuid4()), graph(tmp_path, "a shot whose first post was lost")
    backend.client.session.refused = 0
    with pytest.raises(ServerError):
        backend.submit(g, attempt)
    job = backend.submit(g, attempt)
    assert backend.find(attempt) == job and sink.empty()
    bare_proxy.restart()  # now it forgot: the same story is told
    other = str(uuid.uuid4())
    backend.client.session.refused = 0
    with pytest.raises(ServerError):
        backend.submit(g, other)
    backend.submit(g, other)
    assert "may have rendered twice" in sink.get_nowait()[1].data["message"]


def test_stopping_the_poller_ends_an_event_stream_that_sends_nothing_without_waiting_for_it(tmp_path):
    """A running job's event stream is silent between heartbeats (15 s on comfy-api-proxy): a stop
    (Ctrl-C, SIGTERM, the render's end) must not wait for the next one. Here it never comes."""
    import socket
    import threading

    from helpers import wait_until
    from wanclip.comfy import v2
    from wanclip.render.v2 import Poller, V2Backend

    server, held = socket.socket(), []
    server.bind(("127.0.0.1", 0))
    server.listen()

    def silent():
        conn, _ = server.accept()
        conn.recv(65536)
        event = b'event: progress\ndata: {"current_node": "3", "step": 1, "steps": 4}\n\n'
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                     + f"{len(event):x}\r\n".encode() + event + b"\r\n")
        held.append(conn)  # open, and nothing more after one event

    threading.Thread(target=silent, daemon=True).start()
    backend = V2Backend(v2.V2Client(f"http://127.0.0.1:{server.getsockname()[1]}"))
    sink = queue.Queue()
    poller = Poller(backend, sink)
    response = backend.client.stream(v2.events_request("job-1"))
    assert response is not None
    poller.streams["attempt-1"] = response
    reader = threading.Thread(target=poller._read, args=("attempt-1", response), daemon=True)
    reader.start()
    sink.get(timeout=30)  # the reader read the one event: now it waits in the next read
    stopper = threading.Thread(target=poller.stop, daemon=True)
    stopper.start()
    try:
        wait_until(lambda: not stopper.is_alive() and not reader.is_alive(), timeout=20,
                   message=lambda: "the stop waited on the silent stream")
        assert poller.streams == {}
    finally:
        for conn in held:
            conn.close()
        server.close()
        backend.close()


class RestartsOnDownload(requests.Session):
    """The first download of an output breaks off because the proxy is killed (restarted here without
    --state-dir): the output URLs it signed before are unknown to the new one."""

    def __init__(self, proxy):
        super().__init__()
        self.proxy, self.restarted = proxy, False

    def request(self, method, url, *args, **kwargs):
        if method == "GET" and url.endswith("/content") and not self.restarted:
            self.restarted = True
            self.proxy.restart()
            raise requests.ConnectionError("the download broke off")
        return super().request(method, url, *args, **kwargs)


def test_a_download_broken_off_by_a_bare_proxy_restart_is_fetched_again_from_the_jobs_new_output_url(
        sim, bare_proxy, tmp_path):
    from wanclip.comfy import v2
    from wanclip.planning.plan import plan_film
    from wanclip.render.loop import RenderOptions, render_film
    from wanclip.render.v2 import V2Backend

    sessions = []

    def backend(url, client_id):
        sessions.append(RestartsOnDownload(bare_proxy))
        return V2Backend(v2.V2Client(url, session=sessions[-1]))

    plan = plan_film(tiny_film(tmp_path, 1), out=tmp_path / "out")
    result = render_film(plan, RenderOptions(servers=[bare_proxy.url], stitch=False, backend_factory=backend))
    assert sessions[0].restarted and result.exit_code == 0
    [shot] = load_ledger(tmp_path / "out").shots
    assert shot.status == "done" and (tmp_path / "out" / shot.clip).is_file()
    assert [e["prompt_id"] for e in executed(sim)] == [shot.job_id]  # fetched, not rendered again
