"""The ComfyUI client's edges: credentials, one Authorization, answers that are not JSON (issue #9)."""

from __future__ import annotations

import base64

import pytest
import requests

from wanclip.comfy.client import ComfyClient
from wanclip.errors import ServerError


class Recording(requests.Session):
    """Answers every request itself with ``body`` and keeps the headers that would have been sent."""

    def __init__(self, body: bytes = b"{}", status: int = 200):
        super().__init__()
        self.body, self.status, self.sent = body, status, []

    def send(self, request, **kwargs):
        self.sent.append(dict(request.headers))
        response = requests.Response()
        response.status_code, response._content, response.request = self.status, self.body, request
        return response


def test_exactly_one_authorization_the_same_on_http_and_the_websocket():
    """#7: with user:pass@ and -H 'Authorization: ...', HTTP sent only Basic, the websocket both."""
    seen = {}

    def ws_connect(url, header, timeout):
        seen["ws"] = header
        raise OSError("no socket here")

    for headers, expected in ((["Authorization: Bearer TOKEN"], "Bearer TOKEN"),
                              ([], "Basic " + base64.b64encode(b"alice:pw").decode())):
        session = Recording()
        with ComfyClient("http://alice:pw@127.0.0.1:8188", headers=headers, session=session,
                         ws_connect=ws_connect) as client:
            client.system_stats()
            with pytest.raises(ServerError):
                client.open_ws("c1")
        http = [v for k, v in session.sent[0].items() if k.lower() == "authorization"]
        ws = [h.split(": ", 1)[1] for h in seen["ws"] if h.lower().startswith("authorization:")]
        assert http == [expected] and ws == [expected]


@pytest.mark.parametrize("call", ["submit", "models"])
def test_an_answer_that_is_not_json_is_a_message_not_a_traceback(call):
    """#8: a proxy's HTML page where JSON belongs."""
    with ComfyClient("http://127.0.0.1:8188", session=Recording(b"<html>login</html>")) as client:
        with pytest.raises(ServerError, match="not JSON|not a list") as err:
            client.submit({}, "c1", "p1") if call == "submit" else client.models("vae")
    assert "proxy" in err.value.hint


def test_a_409_for_a_known_prompt_id_means_it_is_already_there():
    """#10.3: newer ComfyUI refuses a re-posted id with 409: re-attach, never fail."""
    with ComfyClient("http://127.0.0.1:8188", session=Recording(b'{"error": "prompt_id already exists"}', 409)) as c:
        assert c.submit({}, "c1", "p1") == {"prompt_id": "p1", "existing": True}


def test_a_redirect_is_refused_and_no_header_reaches_the_other_host():
    """ComfyUI never redirects its API; following one would carry a custom header (X-Api-Key) to
    whatever host the Location names, which requests strips only for Authorization."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[dict] = []

    class Other(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            seen.append(dict(self.headers))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    other = ThreadingHTTPServer(("127.0.0.1", 0), Other)

    class Redirecting(Other):
        def do_GET(self):  # noqa: N802
            self.send_response(302)
            self.send_header("Location", f"http://u:pw@127.0.0.1:{other.server_port}/system_stats")
            self.end_headers()

    first = ThreadingHTTPServer(("127.0.0.1", 0), Redirecting)
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (other, first)]
    for t in threads:
        t.start()
    client = ComfyClient(f"http://127.0.0.1:{first.server_port}", headers={"X-Api-Key": "KEY-123"})
    try:
        with pytest.raises(ServerError) as caught:
            client.system_stats()
    finally:
        client.close()
        for s in (other, first):
            s.shutdown()
            s.server_close()
    assert seen == []
    assert "redirect to http://***@127.0.0.1" in caught.value.message and "pw" not in caught.value.message
