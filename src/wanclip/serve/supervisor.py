"""`wanclip serve`: one ComfyUI per GPU, supervised. A library; ``cli/cmd_serve.py`` is its face.

``Supervisor(options).start()`` starts one server per GPU (its own ``CUDA_VISIBLE_DEVICES``, port
``port + i`` and output folder; the user's extra flags passed through, none added), waits until
each answers ``GET /system_stats``, optionally warms each with a tiny prompt, and writes the state
file (``serve.state``: the supervisor's pid and every server's url, gpu, pid, log,
status) that ``wanclip render`` reads when it has no ``--server``. ``run()`` then supervises: a
server that exits is started again after a backoff (1, 2, 5, 10, 30, 60 s; back to 1 s once it
stayed up a minute), with its exit code and the last lines of its log reported. ``stop()``
terminates every server's process group, waits, kills what is left, and removes the state file.

The command that starts a server is a template (``DEFAULT_COMMAND``; ``--command`` or
``$WANCLIP_SERVE_COMMAND``) with ``{python} {wanclip_python} {port} {output_dir} {gpu} {comfy_dir} {host}``
filled in, run in the ComfyUI folder; the tests run the simulator through it. Every request to a
server goes through ``comfy.client.ComfyClient``, the render's client.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from wanclip import config
from wanclip.comfy.client import ComfyClient
from wanclip.comfy.events import history_error
from wanclip.errors import PromptRejected, ServeError, ServerError
from wanclip.serve import state as serve_state
from wanclip.signals import StopRequests, Terminated

DEFAULT_COMMAND = "{python} main.py --listen {host} --port {port} --output-directory {output_dir}"
SIM_COMMAND = "{wanclip_python} -m wanclip sim --port {port} --output-dir {output_dir}"
PLACEHOLDERS = ("python", "wanclip_python", "port", "output_dir", "gpu", "comfy_dir", "host")
BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
LOG_TAIL_LINES = 12


@dataclass
class ServeOptions:
    comfy_dir: Path
    gpus: list[str]
    port: int = 8188
    extra: list[str] = field(default_factory=list)  # flags after `--`, appended to every server's command
    command: str | list[str] | None = None  # a template; None: $WANCLIP_SERVE_COMMAND, else DEFAULT_COMMAND
    warm: bool = False
    warm_workflow: Path | None = None  # the graph warmed (default: the shipped one)
    output_dir: Path | None = None  # each server writes to OUTPUT_DIR/<name> (default COMFY_DIR/output)
    log_dir: Path | None = None  # each server logs to LOG_DIR/<name>.log (default WANCLIP_HOME/serve)
    host: str = "127.0.0.1"
    ready_timeout: float = 600.0  # a server not answering this long after its start has failed to start
    warm_timeout: float = 1800.0
    stop_timeout: float = 15.0  # SIGTERM, then this long, then SIGKILL
    backoff: tuple[float, ...] = BACKOFF
    healthy_after: float = 60.0  # up this long: its next restart starts from the first backoff again
    poll_interval: float = 0.2


@dataclass
class Managed:
    """One supervised server."""

    name: str  # gpu0, gpu1, ... (server0 ... for a GPU given by UUID)
    gpu: str
    port: int
    url: str
    log: Path
    output_dir: Path
    proc: subprocess.Popen | None = None
    status: str = "starting"  # starting, ready, restarting, stopped
    warm: bool = False
    restarts: int = 0
    failures: int = 0  # deaths in a row without staying up healthy_after
    started_at: float = 0.0
    next_start: float = 0.0
    last_exit: int | None = None

    def to_json(self) -> dict:
        return {"name": self.name, "gpu": self.gpu, "url": self.url, "port": self.port, "status": self.status,
                "pid": self.proc.pid if self.proc else None, "log": str(self.log),
                "output_dir": str(self.output_dir), "warm": self.warm, "restarts": self.restarts,
                "last_exit": self.last_exit}


# -- what the options mean ----------------------------------------------------------------------------------
def parse_gpus(spec: str, smi: Callable[[], list[str]] | None = None) -> list[str]:
    """``all`` (the GPUs ``nvidia-smi -L`` lists, or those of $CUDA_VISIBLE_DEVICES when set) or a
    comma-separated list of GPU indices or UUIDs."""
    spec = (spec or "").strip()
    if spec.lower() == "all":
        visible = config.cuda_visible_devices()
        gpus = visible if visible else (smi or nvidia_smi_gpus)()
    else:
        gpus = [g.strip() for g in spec.split(",") if g.strip()]
    if not gpus:
        raise ServeError(f"--gpus {spec!r} names no GPU", "pass --gpus all, or indices like --gpus 0,1,3")
    dupes = sorted({g for g in gpus if gpus.count(g) > 1})
    if dupes:
        raise ServeError(f"--gpus names GPU {', '.join(dupes)} twice",
                         "one ComfyUI per GPU: two on one GPU share its memory and each loads the 38 GB of models")
    return gpus


def nvidia_smi_gpus(run: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> list[str]:
    """GPU indices from ``nvidia-smi -L`` (``GPU 0: NVIDIA H200 (UUID: ...)``)."""
    hint = "pass the GPUs explicitly, e.g. --gpus 0 or --gpus 0,1,2,3"
    try:
        done = run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    except FileNotFoundError as exc:
        raise ServeError("--gpus all needs nvidia-smi to list the GPUs, and it is not on PATH", hint) from exc
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ServeError(f"--gpus all: nvidia-smi -L failed: {exc}", hint) from exc
    if done.returncode != 0:
        said = (done.stderr or done.stdout or "").strip().splitlines()
        raise ServeError(f"--gpus all: nvidia-smi -L exited with {done.returncode}"
                         + (f": {said[-1]}" if said else ""), hint)
    gpus = []
    for line in done.stdout.splitlines():
        head = line.split(":", 1)[0].strip()
        if head.startswith("GPU ") and head[4:].strip().isdigit():
            gpus.append(head[4:].strip())
    if not gpus:
        raise ServeError("--gpus all: nvidia-smi -L lists no GPU", hint)
    return gpus


def command_template(options: ServeOptions) -> list[str]:
    raw = options.command if options.command is not None else (config.serve_command() or DEFAULT_COMMAND)
    parts = shlex.split(raw) if isinstance(raw, str) else [str(p) for p in raw]
    if not parts:
        raise ServeError("the server command is empty", "unset WANCLIP_SERVE_COMMAND or give --command a command")
    for part in parts:
        try:
            part.format(**{k: "" for k in PLACEHOLDERS})
        except (KeyError, IndexError, ValueError) as exc:
            raise ServeError(f"the server command has an unknown placeholder in {part!r}",
                             f"placeholders are {', '.join('{' + p + '}' for p in PLACEHOLDERS)}") from exc
    return parts


# Where ComfyUI's own Python usually lives: its portable build, and the venvs its install guides make
COMFY_PYTHONS = ("python_embeded/python.exe", "venv/bin/python", ".venv/bin/python", "venv/Scripts/python.exe",
                 ".venv/Scripts/python.exe", "../python_embeded/python.exe")


def comfy_python(comfy_dir: Path) -> str:
    """The Python that ``{python}`` means: ComfyUI's own (a venv or the portable build inside
    ``comfy_dir``), else the one running wanclip. wanclip is usually installed in a venv of its own
    (pipx), where torch is not."""
    for candidate in COMFY_PYTHONS:
        path = Path(comfy_dir) / candidate
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    return sys.executable


def server_command(template: list[str], server: Managed, options: ServeOptions) -> list[str]:
    values = {"python": comfy_python(options.comfy_dir), "wanclip_python": sys.executable, "port": str(server.port),
              "output_dir": str(server.output_dir), "gpu": server.gpu, "comfy_dir": str(options.comfy_dir),
              "host": options.host}
    return [part.format(**values) for part in template] + list(options.extra)


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _start_hint(tail: list[str]) -> str:
    """What to do about a server that died at its start: a missing module means the wrong Python."""
    if any("No module named" in line for line in tail):
        return ("ComfyUI started with a Python that lacks its packages: wanclip used ComfyUI's own venv if it "
                "found one in --comfy-dir, else its own Python; give the right one with --command "
                "'/path/to/ComfyUI/venv/bin/python main.py --listen {host} --port {port} --output-directory {output_dir}'")
    return "fix what its log says, then run wanclip serve again"


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> list[str]:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 16384))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return []
    return [line for line in text.replace("\r", "\n").splitlines() if line.strip()][-lines:]


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _pdeathsig() -> Callable[[], None] | None:
    """A pre-exec hook asking Linux to SIGTERM the server if the supervisor dies without stopping it
    (SIGKILL, a crash): no orphan holds a GPU and a port."""
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None  # Linux sends it when the *thread* that started the child ends, not the process
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def hook() -> None:
        prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

    return hook


# -- the warm-up prompt -------------------------------------------------------------------------------------
def warm_graph(workflow: Path | None = None) -> dict:
    """The film's graph shrunk to 5 frames (a latent frame or two): it loads the text encoder and both
    experts, which then stay resident, in seconds of sampling."""
    from wanclip.planning.workflow import ShotParams, find_roles, inject, load_graph, shipped_graph

    graph = load_graph(workflow) if workflow else shipped_graph()
    latent = graph[find_roles(graph).latent]["inputs"]
    width = latent.get("width") if isinstance(latent.get("width"), int) else 832
    height = latent.get("height") if isinstance(latent.get("height"), int) else 480
    return inject(graph, ShotParams(positive="wanclip serve warm-up", seed=int(time.time()) % 100000, frames=5,
                                    width=width, height=height, fps=16, filename_prefix="wanclip-warm/warm"))


def warm_up(url: str, graph: dict, timeout: float, should_stop: Callable[[], bool] = lambda: False,
            interval: float = 0.5) -> float:
    """Post ``graph`` to ``url`` and wait until its history says it ran; the seconds it took."""
    start = time.monotonic()
    with ComfyClient(url) as client:
        try:
            prompt_id = client.submit(graph, "wanclip-serve", str(uuid.uuid4()))["prompt_id"]
        except PromptRejected as exc:
            raise ServeError(f"{url} refused the warm-up prompt: {exc.message}",
                             "run `wanclip doctor --server URL`: a node or model file may be missing") from exc
        except ServerError as exc:
            raise ServeError(f"the warm-up of {url} could not be posted: {exc.message}", exc.hint) from exc
        while time.monotonic() - start < timeout:
            if should_stop():
                raise ServeError(f"the warm-up of {url} was stopped")
            try:
                entry = client.history(prompt_id)
            except ServerError as exc:
                raise ServeError(f"the warm-up of {url} could not be followed: {exc.message}", exc.hint) from exc
            if entry:
                if (entry.get("status") or {}).get("status_str") == "error":
                    raise ServeError(f"the warm-up prompt failed on {url}: {_failure(entry)}",
                                     "run `wanclip doctor --server URL`")
                return time.monotonic() - start
            time.sleep(interval)
    raise ServeError(f"the warm-up of {url} did not finish within {timeout:.0f} s")


def _failure(entry: dict) -> str:
    failure = history_error(entry)
    if failure is None or not hasattr(failure, "exception_message"):
        return "execution_error"
    return f"{failure.node_type}: {failure.exception_message.strip()}"


# -- the supervisor -----------------------------------------------------------------------------------------
class Supervisor:
    """Start, watch, restart and stop one server per GPU. ``on_event(kind, data)`` hears everything
    worth telling a person: started, ready, warming, warm, warm_failed, exited, restarting, stopped."""

    def __init__(self, options: ServeOptions, on_event: Callable[[str, dict], None] | None = None,
                 clock: Callable[[], float] = time.monotonic, stops: StopRequests | None = None):
        self.options, self.clock = options, clock
        self.stops = stops  # Ctrl-C / SIGTERM recorded by the caller's handler, taken between steps
        self.on_event = on_event or (lambda kind, data: None)
        self.template = command_template(options)
        comfy_dir = Path(options.comfy_dir).resolve()
        self.options.comfy_dir = comfy_dir
        out_base = Path(options.output_dir).resolve() if options.output_dir else comfy_dir / "output"
        log_dir = Path(options.log_dir) if options.log_dir else config.home() / "serve"
        self.servers: list[Managed] = []
        for i, gpu in enumerate(options.gpus):
            name = f"gpu{gpu}" if gpu.isdigit() else f"server{i}"
            port = options.port + i
            self.servers.append(Managed(name, gpu, port, f"http://{options.host}:{port}", log_dir / f"{name}.log",
                                        out_base / name))
        self.state_path = serve_state.state_path()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._warmers: list[threading.Thread] = []
        self._warm_graph: dict | None = None
        self._wrote_state = False
        self._started_wall = round(time.time(), 3)

    # -- lifetime ------------------------------------------------------------------------------------------
    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def check(self) -> None:
        """Refuse before starting anything: a ComfyUI folder, free ports, no other live serve."""
        comfy_dir = self.options.comfy_dir
        if not comfy_dir.is_dir():
            raise ServeError(f"--comfy-dir {comfy_dir} is not a folder", "point it at your ComfyUI checkout")
        if "main.py" in self.template and not (comfy_dir / "main.py").is_file():
            raise ServeError(f"{comfy_dir} has no main.py: not a ComfyUI folder",
                             "point --comfy-dir at the folder with ComfyUI's main.py, or give --command")
        other = serve_state.read_state()
        if other and other.get("pid") != os.getpid():
            raise ServeError(f"wanclip serve is already running (pid {other.get('pid')}, "
                             f"{', '.join(s.get('url', '?') for s in other.get('servers', []))})",
                             f"stop it first (kill {other.get('pid')}), or use its servers")
        taken = [s.port for s in self.servers if not port_free(self.options.host, s.port)]
        if taken:
            raise ServeError(f"port{'s' if len(taken) > 1 else ''} {', '.join(map(str, taken))} on "
                             f"{self.options.host} {'are' if len(taken) > 1 else 'is'} in use (another ComfyUI?)",
                             "stop what listens there, or pass another --port (servers take PORT, PORT+1, ...)")
        if self.options.warm:
            self._warm_graph = warm_graph(self.options.warm_workflow)

    def start(self) -> list[str]:
        """Start every server and wait until each answers (and, with ``warm``, has warmed); the URLs.
        A server that exits or never answers while starting stops them all with a ServeError."""
        self.check()
        try:
            for server in self.servers:
                server.log.parent.mkdir(parents=True, exist_ok=True)
                server.output_dir.mkdir(parents=True, exist_ok=True)
                self._spawn(server)
            self._write_state()
            waiting = list(self.servers)
            while waiting:
                for server in list(waiting):
                    if server.proc.poll() is not None:
                        code = server.proc.returncode
                        server.last_exit = code
                        tail = log_tail(server.log)
                        raise ServeError(f"{server.name} ({server.url}) exited while starting ({describe_exit(code)}); "
                                         f"last lines of {server.log}:\n  " + "\n  ".join(tail),
                                         _start_hint(tail), exit_code=1)
                    if self._answers(server):
                        waiting.remove(server)
                        self._became_ready(server)
                    elif self.clock() - server.started_at > self.options.ready_timeout:
                        raise ServeError(f"{server.name} ({server.url}) did not answer GET /system_stats within "
                                         f"{self.options.ready_timeout:.0f} s; see {server.log}",
                                         "a first start can install requirements for minutes: raise --ready-timeout",
                                         exit_code=1)
                if waiting:
                    self._raise_if_stopped()
                    time.sleep(self.options.poll_interval)
            if self.options.warm:
                for thread in list(self._warmers):
                    while thread.is_alive():
                        self._raise_if_stopped()
                        thread.join(0.2)
        except BaseException:
            self.stop()
            raise
        return [s.url for s in self.servers]

    def run(self) -> None:
        """Supervise until ``request_stop()`` (or Ctrl-C / SIGTERM in the caller), then ``stop()``."""
        try:
            while not self._stopping.is_set():
                self.poll()
                self._stopping.wait(self.options.poll_interval)
                self._raise_if_stopped()
        finally:
            self.stop()

    def _raise_if_stopped(self) -> None:
        """A recorded Ctrl-C or SIGTERM, raised here, between two steps: raised by the handler itself it
        could land inside ``_write_state`` holding the lock, and ``stop`` then waited for it forever."""
        signum = self.stops.take() if self.stops is not None else None
        if signum is not None:
            raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()

    def request_stop(self) -> None:
        self._stopping.set()

    def poll(self) -> None:
        """One supervision step: notice deaths, start what is due, promote what answers."""
        now = self.clock()
        changed = False
        for server in self.servers:
            if self._stopping.is_set():
                return
            if server.status in ("starting", "ready") and server.proc is not None and server.proc.poll() is not None:
                code = server.proc.returncode
                server.proc = None
                up_for = now - server.started_at
                server.failures = 1 if up_for >= self.options.healthy_after else server.failures + 1
                delay = self.options.backoff[min(server.failures - 1, len(self.options.backoff) - 1)]
                server.status, server.warm, server.last_exit = "restarting", False, code
                server.next_start = now + delay
                self.on_event("exited", {"server": server.name, "url": server.url, "exit_code": code,
                                         "reason": describe_exit(code), "up_seconds": round(up_for, 1),
                                         "log": str(server.log), "log_tail": log_tail(server.log)})
                self.on_event("restarting", {"server": server.name, "url": server.url, "in_seconds": delay,
                                             "attempt": server.failures})
                changed = True
            elif server.status == "restarting" and now >= server.next_start:
                server.restarts += 1
                self._spawn(server)
                changed = True
            elif server.status == "starting" and server.proc is not None:
                if self._answers(server):
                    self._became_ready(server)  # it writes the state
                elif now - server.started_at > self.options.ready_timeout:
                    self.on_event("hung", {"server": server.name, "url": server.url,
                                           "seconds": round(now - server.started_at), "log": str(server.log)})
                    _signal_group(server.proc, signal.SIGKILL)  # seen dead by the next poll, and restarted
        if changed:
            self._write_state()

    def stop(self) -> None:
        """Stop every server: SIGTERM to its process group, wait, SIGKILL what is left; remove the state
        file. A second Ctrl-C / SIGTERM meanwhile only skips the wait: every server is still reaped."""
        self._stopping.set()
        running = [s for s in self.servers if s.proc is not None]
        for server in running:
            _signal_group(server.proc, signal.SIGTERM)
        deadline = time.monotonic() + self.options.stop_timeout
        for server in running:
            while True:
                try:
                    server.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
                    break
                except (subprocess.TimeoutExpired, KeyboardInterrupt):
                    deadline = 0.0
                    _signal_group(server.proc, signal.SIGKILL)
            _signal_group(server.proc, signal.SIGKILL)  # anything it left behind in its group
            self.on_event("stopped", {"server": server.name, "url": server.url,
                                      "exit_code": server.proc.returncode})
            server.proc = None
        for server in self.servers:
            server.status = "stopped"
        for thread in self._warmers:
            thread.join(timeout=5)
        with self._lock:  # a write that began before the stop has finished: remove what it wrote
            if self._wrote_state:
                self._remove_state()

    # -- pieces ------------------------------------------------------------------------------------------------
    def _spawn(self, server: Managed) -> None:
        cmd = server_command(self.template, server, self.options)
        env = dict(os.environ, CUDA_VISIBLE_DEVICES=server.gpu, PYTHONUNBUFFERED="1")
        with open(server.log, "ab") as log:
            log.write(f"\n[wanclip serve {time.strftime('%Y-%m-%d %H:%M:%S')}] starting {server.name} on GPU "
                      f"{server.gpu}: {shlex.join(cmd)}\n".encode())
            log.flush()
            try:
                server.proc = subprocess.Popen(cmd, cwd=self.options.comfy_dir, env=env, stdin=subprocess.DEVNULL,
                                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                               preexec_fn=_pdeathsig())
            except OSError as exc:
                raise ServeError(f"cannot start {server.name}: {cmd[0]}: {exc.strerror or exc}",
                                 "check --command / WANCLIP_SERVE_COMMAND and --comfy-dir") from exc
        server.status, server.started_at = "starting", self.clock()
        self.on_event("started", {"server": server.name, "gpu": server.gpu, "url": server.url,
                                  "pid": server.proc.pid, "log": str(server.log), "command": cmd,
                                  "restart": server.restarts})

    def _answers(self, server: Managed) -> bool:
        with ComfyClient(server.url, timeout=2) as client:
            try:
                client.system_stats()
            except ServerError:
                return False
        return True

    def _became_ready(self, server: Managed) -> None:
        server.status = "ready"
        self.on_event("ready", {"server": server.name, "url": server.url,
                                "seconds": round(self.clock() - server.started_at, 2)})
        self._write_state()
        if self._warm_graph is not None:
            proc = server.proc
            thread = threading.Thread(target=self._warm, args=(server, proc), name=f"warm {server.name}", daemon=True)
            self._warmers.append(thread)
            thread.start()

    def _warm(self, server: Managed, proc: subprocess.Popen) -> None:
        self.on_event("warming", {"server": server.name, "url": server.url})
        try:
            seconds = warm_up(server.url, self._warm_graph, self.options.warm_timeout,
                              should_stop=lambda: self._stopping.is_set() or server.proc is not proc)
        except ServeError as exc:
            if not self._stopping.is_set():
                self.on_event("warm_failed", {"server": server.name, "url": server.url,
                                              "error": exc.message})
            return
        if server.proc is proc and not self._stopping.is_set():
            server.warm = True
            self.on_event("warm", {"server": server.name, "url": server.url, "seconds": round(seconds, 2)})
            self._write_state()

    def state(self) -> dict:
        return {"pid": os.getpid(), "started": self._started_wall, "comfy_dir": str(self.options.comfy_dir),
                "servers": [s.to_json() for s in self.servers]}

    def _write_state(self) -> None:
        with self._lock:
            if self._stopping.is_set():
                return
            serve_state.write_state(self.state())
            self._wrote_state = True

    def _remove_state(self) -> None:
        serve_state.remove_state(os.getpid())  # never another supervisor's file


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)  # its own session: the group is the server and whatever it started
    except (ProcessLookupError, PermissionError):
        pass
