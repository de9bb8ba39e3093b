"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# xdist's workers start with COLUMNS=80 in their environment; rich's consoles (cli/base.py, made at
# import) would keep that width for good, and the tests that pass COLUMNS=400 to one command would
# get 80. Without it the width is read per command, as in a plain pytest run.
os.environ.pop("COLUMNS", None)

ROOT = Path(__file__).resolve().parent.parent
# The real ComfyUI recordings and templates the tests read, copied (minified) from ../shared/reference
# so that a user's fresh clone runs every test: nothing skips for lack of a folder outside the repo.
DATA = ROOT / "tests" / "data"
SAMPLES = DATA / "comfyui-samples"


@pytest.fixture(autouse=True)
def wanclip_home(tmp_path, monkeypatch):
    """All of wanclip's own state goes under the test's temporary folder."""
    home = tmp_path / "wanclip-home"
    monkeypatch.setenv("WANCLIP_HOME", str(home))
    for name in ("WANCLIP_SERVER", "WANCLIP_HEADERS", "WANCLIP_FFMPEG", "HF_ENDPOINT", "HF_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def reference() -> Path:
    """The reference recordings the tests read (tests/data mirrors ../shared/reference's layout)."""
    return DATA


@pytest.fixture
def samples() -> Path:
    """The ComfyUI 0.3.64 recordings the tests read."""
    return SAMPLES


# ---- the simulated ComfyUI (wanclip.sim), shared per session, reset per test ----------------


@pytest.fixture(scope="session")
def sim_server(tmp_path_factory):
    """One simulator for the whole session: fast (tiny load/step times), on a free loopback port."""
    from wanclip.sim import serve_in_thread

    handle = serve_in_thread(tmp_path_factory.mktemp("sim") / "output", load_seconds=0.02, step_seconds=0.005)
    yield handle
    handle.stop()


@pytest.fixture
def sim(sim_server, tmp_path):
    """A freshly reset simulator: empty queue/history/cache/log, no faults, outputs under tmp_path.

    Handle: .url, .ws_url, .engine, .faults (fail_prompt, stall_prompt, restart_during,
    close_ws_after, delay_route, fail_route), .log(), .output_dir, .restart().
    """
    sim_server.reset(tmp_path / "comfy" / "output")
    sim_server.output_dir.mkdir(parents=True, exist_ok=True)
    yield sim_server
    sim_server.reset()


class SimClient:
    """Talks to the simulator like a plain ComfyUI client would: one websocket per client_id."""

    def __init__(self, handle):
        self.handle = handle
        self.url = handle.url

    def connect(self, client_id: str = "client-test"):
        import websocket

        ws = websocket.create_connection(f"{self.handle.ws_url}?clientId={client_id}", timeout=30)
        return ws

    def post(self, path: str, body=None, **kwargs):
        import requests

        return requests.post(self.url + path, json=body, timeout=30, **kwargs)

    def get(self, path: str, **kwargs):
        import requests

        return requests.get(self.url + path, timeout=30, **kwargs)

    @staticmethod
    def until_done(ws, prompt_id: str) -> list[dict]:
        """Messages up to and including `executing` with node null for prompt_id."""
        import json

        msgs = []
        while True:
            msg = json.loads(ws.recv())
            msgs.append(msg)
            data = msg.get("data", {})
            if msg["type"] == "executing" and data.get("node") is None and data.get("prompt_id") == prompt_id:
                return msgs

    def run(self, prompt: dict, client_id: str = "client-test", **extra):
        """Connect, submit, wait: (POST response, ws messages including the connect status)."""
        ws = self.connect(client_id)
        try:
            msgs = [__import__("json").loads(ws.recv())]
            resp = self.post("/prompt", {"prompt": prompt, "client_id": client_id, **extra})
            if resp.status_code == 200:
                msgs += self.until_done(ws, resp.json()["prompt_id"])
            return resp, msgs
        finally:
            ws.close()


@pytest.fixture
def sim_client(sim) -> SimClient:
    return SimClient(sim)


@pytest.fixture
def tiny_workflow():
    """The shipped graphs shrunk to 64x64x5: `tiny_workflow(core=False, text=..., seed=...)`."""
    import json

    def make(core: bool = False, text: str | None = None, seed: int | None = None, length: int = 5) -> dict:
        name = "wan22_t2v_lightx2v_4step_core.json" if core else "wan22_t2v_lightx2v_4step.json"
        graph = json.loads((ROOT / "workflows" / name).read_text(encoding="utf-8"))
        for node in graph.values():
            if node["class_type"] == "EmptyHunyuanLatentVideo":
                node["inputs"].update(width=64, height=64, length=length)
            if node["class_type"] == "KSamplerAdvanced" and seed is not None:
                node["inputs"]["noise_seed"] = seed
        if text is not None:
            graph["89"]["inputs"]["text"] = text
        return graph

    return make


# ---- the simulator per ComfyUI version (wanclip.sim profiles) --------------------------------


@pytest.fixture
def samples_092() -> Path:
    """The ComfyUI 0.9.2 recordings the tests read, copied (minified) into tests/data."""
    return DATA / "comfyui-samples-0.9.2"


@pytest.fixture(scope="session")
def samples_033() -> Path:
    """The ComfyUI 0.33.0 recordings the tests read, copied (minified) into tests/data."""
    return DATA / "comfyui-samples-0.33.0"


@pytest.fixture(scope="session")
def sim_servers(tmp_path_factory):
    """`sim_servers(version)`: one fast simulator per ComfyUI version for the session, started on first use."""
    from wanclip.sim import serve_in_thread

    handles = {}

    def get(version: str):
        if version not in handles:
            out = tmp_path_factory.mktemp(f"sim-{version}") / "output"
            handles[version] = serve_in_thread(out, load_seconds=0.02, step_seconds=0.005, comfy_version=version)
        return handles[version]

    yield get
    for handle in handles.values():
        handle.stop()


@pytest.fixture
def sim_profile(request, sim_servers, tmp_path):
    """A freshly reset simulator speaking one ComfyUI version, chosen per test:

        @pytest.mark.parametrize("sim_profile", ["0.9", "0.38"], indirect=True)
        def test_x(sim_profile): ...

    Without parametrization it speaks 0.3.64 (like `sim`). Same handle API as `sim`.
    """
    handle = sim_servers(getattr(request, "param", "0.3.64"))
    handle.reset(tmp_path / "comfy" / "output")
    handle.output_dir.mkdir(parents=True, exist_ok=True)
    yield handle
    handle.reset()


@pytest.fixture
def profile_client(sim_profile) -> SimClient:
    return SimClient(sim_profile)


# ---- the real comfy-api-proxy (the Comfy API v2) in front of the simulator, one per test module ----


class Proxy:
    """A running comfy-api-proxy: ``url``, ``state_dir`` (None: started without one), ``restart()``."""

    def __init__(self, upstream: str, state_dir: Path | None, log: Path, token: str | None = None):
        self.upstream, self.state_dir, self.log_path, self.token = upstream, state_dir, log, token
        self.proc = None
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        import subprocess
        import sys

        from helpers import wait_until

        argv = [sys.executable, "-c", "from comfy_api_proxy.cli import main; raise SystemExit(main())", "run",
                "--comfyui", self.upstream, "--port", str(self.port)]
        if self.state_dir is not None:
            argv += ["--state-dir", str(self.state_dir)]
        if self.token is not None:
            argv += ["--token", self.token]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=log)
        wait_until(self.healthy, interval=0.05, message=lambda: f"comfy-api-proxy did not start: "
                   f"{self.log_path.read_text(errors='replace')[-2000:]}")

    def healthy(self) -> bool:
        import requests

        if self.proc.poll() is not None:
            raise AssertionError(f"comfy-api-proxy exited: {self.log_path.read_text(errors='replace')[-2000:]}")
        try:
            return requests.get(self.url + "/api/v2/health", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def bare_proxy(sim, tmp_path):
    """comfy-api-proxy in front of the test's simulator (``sim``, or a module's own ``sim`` fixture: one
    per profile), started without --state-dir, so a restart forgets its jobs and keys."""
    proxy = Proxy(sim.url, None, tmp_path / "proxy.log")
    proxy.start()
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def v2_proxy(sim_server, tmp_path_factory):
    """comfy-api-proxy (with ``--state-dir``) in front of the session's simulator, for one module."""
    folder = tmp_path_factory.mktemp("v2-proxy")
    proxy = Proxy(sim_server.url, folder / "state", folder / "proxy.log")
    proxy.start()
    yield proxy
    proxy.stop()
