"""`wanclip serve` on the CPU: simulated ComfyUIs as the servers, started, used by render, restarted, stopped."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from helpers import run_cli
from test_render import tiny_film
from wanclip import config
from wanclip.errors import PromptRejected, ServeError, ServerError
from wanclip.ledger import load_ledger
from wanclip.planning.workflow import find_roles
from wanclip.serve import state as serve_state
from wanclip.serve.supervisor import (
    DEFAULT_COMMAND,
    SIM_COMMAND,
    ServeOptions,
    Supervisor,
    nvidia_smi_gpus,
    parse_gpus,
    warm_graph,
    warm_up,
)

FAST_SIM = SIM_COMMAND + " --load-seconds 0.05 --step-seconds 0.05"


def free_ports(n: int) -> int:
    """A port P with P .. P+n-1 free on loopback."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base + n >= 65535:
            continue
        socks = []
        try:
            for port in range(base, base + n):
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError("no free ports")


def gone(pid: int) -> bool:
    """The process has exited (and been reaped, or is a zombie waiting for it)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def wait_for(predicate, timeout: float = 60.0, what: str = "condition"):  # ends at the predicate
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Served:
    """A `wanclip serve --json` subprocess and the JSON events it printed."""

    def __init__(self, proc: subprocess.Popen, log: Path):
        self.proc, self.log = proc, log
        self.events: queue.Queue = queue.Queue()
        self.seen: list[dict] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            if line.startswith("{"):
                self.events.put(json.loads(line))

    def until(self, kind: str, timeout: float = 60.0, **match) -> dict:  # ends at the event
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                event = self.events.get(timeout=0.1)
            except queue.Empty:
                if self.proc.poll() is not None and self.events.empty():
                    break
                continue
            self.seen.append(event)
            if event["event"] == kind and all(event.get(k) == v for k, v in match.items()):
                return event
        raise AssertionError(f"no {kind} event {match}; saw {[e['event'] for e in self.seen]}; "
                             f"stderr: {self.log.read_text()[-2000:]}")


@contextmanager
def serving(tmp_path: Path, n: int, *args: str, command: str = FAST_SIM):
    port = free_ports(n)
    cmd = [sys.executable, "-m", "wanclip", "serve", "--comfy-dir", str(tmp_path), "--gpus",
           ",".join(str(i) for i in range(n)), "--port", str(port), "--json", *args]
    env = dict(os.environ, WANCLIP_SERVE_COMMAND=command)
    log = tmp_path / "serve.stderr"
    with open(log, "w") as err, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env) as proc:
        served = Served(proc, log)
        try:
            yield served
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            served.reader.join(timeout=5)


def served_state() -> dict:
    return json.loads(serve_state.state_path().read_text())


def test_serve_starts_warm_servers_render_uses_them_and_sigterm_stops_all(tmp_path):
    with serving(tmp_path, 2, "--warm") as served:
        urls = served.until("serving")["urls"]
        assert len(urls) == 2 and urls[0] != urls[1]
        state = served_state()
        assert state["pid"] == served.proc.pid
        assert [s["status"] for s in state["servers"]] == ["ready", "ready"]
        assert [s["warm"] for s in state["servers"]] == [True, True]  # the warm-up ran on each before "serving"
        pids = [s["pid"] for s in state["servers"]]
        for server in state["servers"]:
            assert Path(server["log"]).is_file() and Path(server["log"]).parent == config.home() / "serve"
            assert Path(server["output_dir"]).parent == tmp_path / "output"
        assert serve_state.served_urls() == urls and serve_state.default_servers() == urls

        out = tmp_path / "film"
        # no --server; the stitch is stitch's own tests' business
        result = run_cli("render", tiny_film(tmp_path, 4), "--out", out, "--json", "--no-stitch")
        assert result.exit_code == 0, result.output
        ledger = load_ledger(out)
        assert [s.status for s in ledger.shots] == ["done"] * 4
        assert {s.server for s in ledger.shots} == set(urls)  # both servers rendered
        assert all("model load" not in s.node_seconds for s in ledger.shots)  # warm: no shot paid the load

        served.proc.send_signal(signal.SIGTERM)
        assert served.proc.wait(timeout=30) == 143
    assert all(gone(pid) for pid in pids)
    assert not serve_state.state_path().exists()
    assert serve_state.served_urls() == [] and serve_state.default_servers() == [serve_state.DEFAULT_SERVER]
    for url in urls:
        with pytest.raises(requests.ConnectionError):
            requests.get(url + "/system_stats", timeout=2)


def test_a_server_killed_mid_film_is_restarted_and_the_film_finishes(tmp_path):
    with serving(tmp_path, 2, command=SIM_COMMAND + " --load-seconds 0.05 --step-seconds 1.5") as served:
        urls = served.until("serving")["urls"]
        victim = served_state()["servers"][0]
        killed = threading.Event()

        def kill_when_busy():
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    running = requests.get(victim["url"] + "/queue", timeout=2).json()["queue_running"]
                except requests.RequestException:
                    return
                if running:
                    os.kill(victim["pid"], signal.SIGKILL)
                    killed.set()
                    return
                time.sleep(0.02)

        killer = threading.Thread(target=kill_when_busy)
        killer.start()
        out = tmp_path / "film"
        try:
            result = run_cli("render", tiny_film(tmp_path, 5), "--out", out, "--json", "--no-stitch")
        finally:
            killer.join()
        assert killed.is_set()

        exited = served.until("exited", server=victim["name"])
        assert exited["reason"] == "killed by SIGKILL" and exited["exit_code"] == -9
        assert any("simulated ComfyUI" in line for line in exited["log_tail"])  # the end of its log, for the why
        assert served.until("restarting", server=victim["name"])["in_seconds"] == 1.0
        assert served.until("ready", server=victim["name"])
        after = wait_for(lambda: (s := served_state()["servers"][0])["status"] == "ready" and s, what="restart")
        assert after["restarts"] == 1 and after["pid"] != victim["pid"] and after["last_exit"] == -9
        assert requests.get(after["url"] + "/system_stats", timeout=5).status_code == 200
        assert serve_state.served_urls() == urls
        log = Path(victim["log"]).read_text()
        assert log.count("[wanclip serve") == 2  # one log per GPU, both starts in it

        served.proc.send_signal(signal.SIGINT)  # Ctrl-C
        assert served.proc.wait(timeout=30) == 130
    assert gone(after["pid"]) and not serve_state.state_path().exists()

    assert result.exit_code == 0, result.output + result.stderr
    assert [s.status for s in load_ledger(out).shots] == ["done"] * 5


def test_extra_flags_reach_every_server_and_a_failing_server_stops_the_start(tmp_path):
    options = ServeOptions(tmp_path, ["0", "1"], port=free_ports(2), command=FAST_SIM,
                           extra=["--comfy-version", "0.9"])
    events = []
    with Supervisor(options, on_event=lambda kind, data: events.append((kind, data))) as supervisor:
        urls = supervisor.start()
        for url in urls:
            stats = requests.get(url + "/system_stats", timeout=5).json()
            assert stats["system"]["comfyui_version"].startswith("0.9")
        started = [d for k, d in events if k == "started"]
        assert [d["command"][-2:] for d in started] == [["--comfy-version", "0.9"]] * 2
        pids = [d["pid"] for d in started]
    assert all(gone(pid) for pid in pids)
    assert not serve_state.state_path().exists()

    bad = ServeOptions(tmp_path, ["0"], port=free_ports(1),
                       command=[sys.executable, "-c", "import sys; print('CUDA error: no device'); sys.exit(3)"])
    with pytest.raises(ServeError) as info:
        Supervisor(bad).start()
    assert info.value.exit_code == 1
    assert "exit code 3" in info.value.message and "CUDA error: no device" in info.value.message
    assert not serve_state.state_path().exists()


def test_refusals_before_anything_starts(tmp_path, monkeypatch):
    port = free_ports(2)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port + 1))
        taken.listen()
        result = run_cli("serve", "--comfy-dir", tmp_path, "--gpus", "0,1", "--port", port,
                         env={"WANCLIP_SERVE_COMMAND": FAST_SIM})
    assert result.exit_code == 2 and f"port {port + 1}" in result.stderr

    result = run_cli("serve", "--comfy-dir", tmp_path, "--gpus", "0", "--port", port)  # the default command
    assert result.exit_code == 2 and "no main.py" in result.stderr

    result = run_cli("serve", "--comfy-dir", tmp_path, "--gpus", "0,0", env={"WANCLIP_SERVE_COMMAND": FAST_SIM})
    assert result.exit_code == 2 and "twice" in result.stderr

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "no-such-bin"))  # no nvidia-smi
    result = run_cli("serve", "--comfy-dir", tmp_path, env={"WANCLIP_SERVE_COMMAND": FAST_SIM})
    assert result.exit_code == 2 and "nvidia-smi" in result.stderr and "--gpus" in result.stderr

    # a live serve is refused, a stale one (its supervisor dead) is not in the way
    state = serve_state.state_path()
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text(json.dumps({"pid": os.getppid(), "servers": [{"url": "http://127.0.0.1:1", "status": "ready"}]}))
    assert serve_state.served_urls() == ["http://127.0.0.1:1"]
    result = run_cli("serve", "--comfy-dir", tmp_path, "--gpus", "0", "--port", port,
                     env={"WANCLIP_SERVE_COMMAND": FAST_SIM})
    assert result.exit_code == 2 and "already running" in result.stderr
    with subprocess.Popen([sys.executable, "-c", "pass"]) as dead:
        dead.wait()
    state.write_text(json.dumps({"pid": dead.pid, "servers": [{"url": "http://127.0.0.1:1", "status": "ready"}]}))
    assert serve_state.read_state() is None and serve_state.served_urls() == []


def test_served_urls_skip_restarting_servers_and_the_environment_wins(tmp_path, monkeypatch):
    state = serve_state.state_path()
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text(json.dumps({"pid": os.getpid(), "servers": [
        {"url": "http://127.0.0.1:8188", "status": "ready"}, {"url": "http://127.0.0.1:8189", "status": "restarting"},
        {"url": "http://127.0.0.1:8190", "status": "ready"}]}))
    assert serve_state.default_servers() == ["http://127.0.0.1:8188", "http://127.0.0.1:8190"]
    monkeypatch.setenv("WANCLIP_SERVER", "http://gpu-box:8188")
    assert serve_state.default_servers() == ["http://gpu-box:8188"]
    state.write_text("not json")
    monkeypatch.delenv("WANCLIP_SERVER")
    assert serve_state.default_servers() == [serve_state.DEFAULT_SERVER]


def test_gpus_all_reads_nvidia_smi_or_cuda_visible_devices(monkeypatch):
    listing = ("GPU 0: NVIDIA H200 (UUID: GPU-aaaa)\nGPU 1: NVIDIA H200 (UUID: GPU-bbbb)\n"
               "  MIG 1g.18gb Device 0: (UUID: MIG-cccc)\nGPU 3: NVIDIA H200 (UUID: GPU-dddd)\n")

    def run(cmd, **kwargs):
        assert cmd == ["nvidia-smi", "-L"]
        return subprocess.CompletedProcess(cmd, 0, stdout=listing, stderr="")

    assert nvidia_smi_gpus(run) == ["0", "1", "3"]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert parse_gpus("all", smi=lambda: ["0", "1"]) == ["0", "1"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert parse_gpus("all", smi=lambda: ["0", "1", "2", "3"]) == ["2", "3"]
    assert parse_gpus(" 0, 1,3 ") == ["0", "1", "3"]

    def failing(cmd, **kwargs):
        return subprocess.CompletedProcess(cmd, 9, stdout="", stderr="NVIDIA-SMI has failed because it couldn't "
                                           "communicate with the NVIDIA driver")

    with pytest.raises(ServeError, match="couldn't communicate") as info:
        nvidia_smi_gpus(failing)
    assert "--gpus" in info.value.hint


def test_the_warm_up_graph_is_the_shipped_one_at_five_frames():
    graph = warm_graph()
    latent = graph[find_roles(graph).latent]["inputs"]
    assert (latent["length"], latent["width"], latent["height"]) == (5, 832, 480)


def test_the_warm_up_speaks_through_the_render_client_and_fails_with_a_serve_error(sim):
    graph = warm_graph()
    assert warm_up(sim.url, graph, timeout=30, interval=0.01) >= 0  # the simulator runs it
    broken = {**graph, "999": {"class_type": "NoSuchNode", "inputs": {}}}
    with pytest.raises(ServeError, match="refused the warm-up prompt") as info:
        warm_up(sim.url, broken, timeout=30, interval=0.01)
    assert "doctor" in info.value.hint and isinstance(info.value.__cause__, PromptRejected)
    with pytest.raises(ServeError, match="could not be posted") as info:
        warm_up("http://127.0.0.1:9", graph, timeout=5, interval=0.01)  # nothing listens on the discard port
    assert isinstance(info.value.__cause__, ServerError)


def test_python_is_comfyuis_own_venv_when_the_comfy_folder_has_one(tmp_path):
    """#19.15: installed with pipx, `serve` started ComfyUI with wanclip's own Python: "No module named
    'torch'". {python} is now the ComfyUI folder's venv (or portable build) when it has one."""
    from wanclip.serve.supervisor import comfy_python

    assert comfy_python(tmp_path) == sys.executable  # none there: the Python running wanclip
    venv = tmp_path / "venv" / "bin" / "python"
    venv.parent.mkdir(parents=True)
    venv.write_text("#!/bin/sh\n")
    venv.chmod(0o755)
    assert comfy_python(tmp_path) == str(venv)
    # and the server really starts with it: the fake venv Python runs the simulator in ComfyUI's place
    venv.write_text(f"#!/bin/sh\n# main.py --listen H --port P --output-directory O\nexec {sys.executable} -m "
                    "wanclip sim --port \"$5\" --output-dir \"$7\" --load-seconds 0 --step-seconds 0.001\n")
    (tmp_path / "main.py").write_text("# ComfyUI\n")
    options = ServeOptions(tmp_path, ["0"], port=free_ports(1), command=DEFAULT_COMMAND)
    supervisor = Supervisor(options)
    try:
        [url] = supervisor.start()
        assert requests.get(url + "/system_stats", timeout=5).status_code == 200
    finally:
        supervisor.stop()


def test_a_server_that_dies_for_a_missing_module_names_the_python_and_command(tmp_path):
    bad = ServeOptions(tmp_path, ["0"], port=free_ports(1),
                       command=[sys.executable, "-c", "raise ModuleNotFoundError(\"No module named 'torch'\")"])
    with pytest.raises(ServeError) as info:
        Supervisor(bad).start()
    assert "No module named 'torch'" in info.value.message and "--command" in info.value.hint
    assert "venv" in info.value.hint


def test_a_stop_signal_is_taken_between_steps_and_every_server_is_reaped(tmp_path):
    """Ctrl-C / SIGTERM are recorded by the handler and raised by the supervisor between two steps:
    raised by the handler itself, one landed inside the state write holding its lock, and the stop
    then waited for that lock forever (a `serve` that did not exit after Ctrl-C)."""
    import signal as signals

    from wanclip.signals import StopRequests, Terminated

    stops = StopRequests()
    options = ServeOptions(tmp_path, ["0", "1"], port=free_ports(2), command=FAST_SIM)
    supervisor = Supervisor(options, stops=stops)
    supervisor.start()
    pids = [s.proc.pid for s in supervisor.servers]
    stops.request(signals.SIGTERM)
    with pytest.raises(Terminated):
        supervisor.run()
    assert all(gone(pid) for pid in pids) and not serve_state.state_path().exists()
