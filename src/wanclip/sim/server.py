"""aiohttp HTTP + /ws on one port, every route also under /api/, and serve_in_thread().

What differs between ComfyUI versions is read from the engine's Profile (profiles.py).
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from wanclip.sim.engine import Engine, SimConfig
from wanclip.sim.faults import Faults
from wanclip.sim.profiles import DEFAULT, PROFILES, get_profile
from wanclip.sim.routes.common import INTERNAL_ERROR, MAX_UPLOAD_SIZE, is_loopback, peer_is_loopback
from wanclip.sim.routes.files import FileRoutes
from wanclip.sim.routes.jobs import JobRoutes
from wanclip.sim.routes.prompts import PromptRoutes
from wanclip.sim.routes.system import SystemRoutes
from wanclip.sim.websocket import EventHub

SHUTDOWN_TIMEOUT = 1.0  # seconds in-flight handlers get when the server stops or goes down


class SimServer:
    """The aiohttp app on its own loop: lifecycle (up, down for a while, back), the faults
    middleware, and the route areas mounted as ComfyUI mounts them (each also under /api)."""

    def __init__(self, engine: Engine, host: str, port: int, max_upload_size: int = MAX_UPLOAD_SIZE):
        self.engine = engine
        self.profile = engine.profile
        self.host, self.port = host, port
        self.max_upload_size = max_upload_size
        self.hub = EventHub(engine, max_upload_size, lambda: self.down)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.runner: web.AppRunner | None = None
        self.down = False
        self._publisher: asyncio.Task | None = None
        self._back: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task] = set()
        engine.emit = self.hub.send
        engine.on_restart = self._on_restart
        engine.on_down = self._on_down

    @property
    def sockets(self) -> dict[str, web.WebSocketResponse]:
        return self.hub.sockets

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """On the loop's thread: the loop the server, its hub and their tasks run on."""
        self.loop = self.hub.loop = loop
        self.hub.messages = asyncio.Queue()

    def start_publishing(self) -> None:
        self._publisher = self.loop.create_task(self.hub.publish())

    # ---- lifecycle (on the loop) ---------------------------------------------------------------
    async def start(self) -> None:
        self.runner = web.AppRunner(self.make_app(), access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.host, self.port, reuse_address=True)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        self.down = False

    async def stop_listening(self) -> None:
        """Closes the listening socket, every connection and every websocket (no close frames)."""
        self.down = True
        self.hub.drop_all()
        if self.runner is not None:
            runner, self.runner = self.runner, None
            await runner.cleanup()
        self.hub.forget_all()

    def _on_down(self, seconds: float) -> None:
        if self.loop is not None:
            asyncio.run_coroutine_threadsafe(self._go_down(seconds), self.loop).result(timeout=30)

    async def _go_down(self, seconds: float) -> None:
        await self.stop_listening()
        self._back = self.loop.call_later(seconds, lambda: self._spawn(self._come_back()))

    async def _come_back(self) -> None:
        self._back = None
        if self.down and self.runner is None:
            await self.start()

    async def ensure_up(self) -> None:
        """Back on the port now (reset() between tests)."""
        if self._back is not None:
            self._back.cancel()
            self._back = None
        if self.runner is None:
            await self.start()

    async def shutdown(self) -> None:
        if self._back is not None:
            self._back.cancel()
            self._back = None
        await self.hub.close_all()
        if self.runner is not None:
            runner, self.runner = self.runner, None
            await runner.cleanup()
        for task in [self._publisher, *self._tasks]:
            if task is not None and not task.done():
                task.cancel()
        await asyncio.gather(*(t for t in [self._publisher, *self._tasks] if t is not None), return_exceptions=True)

    def _spawn(self, coro) -> asyncio.Task:
        """A task that is kept until it ends, so shutdown can cancel it (no 'Task was destroyed')."""
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _on_restart(self) -> None:
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(lambda: self._spawn(self.hub.close_all()))

    # ---- app -----------------------------------------------------------------------------------
    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=self.max_upload_size, middlewares=[self._faults_middleware])
        routes = self._routes()
        app.router.add_routes(routes)
        # Every route is also served under /api, as ComfyUI registers them twice.
        app.router.add_routes([web.RouteDef(r.method, "/api" + r.path, r.handler, r.kwargs) for r in routes])
        app.router.add_routes(JobRoutes(self.engine).routes())
        if self.profile.static_root:
            # The frontend's static route on "/": any other GET is a 404, any other method a 405.
            app.router.add_route("*", "/{tail:.*}", self.static_root)
        return app

    @web.middleware
    async def _faults_middleware(self, request: web.Request, handler):
        faults = self.engine.faults
        delay = faults.route_delay(request.path)
        if delay:
            await asyncio.sleep(delay)
        if faults.take_route_error(request.path):
            return web.Response(status=500, text=INTERNAL_ERROR)
        if self.profile.credentials and not peer_is_loopback(request) and request.scheme != "https" and (
                "X-Comfy-Client-Id" in request.headers or "X-Comfy-Credential-Key" in request.headers):
            return web.json_response({"error": "credential headers need TLS or a loopback connection"}, status=403)
        response = await handler(request)
        if faults.take_lost_answer(request.path):
            return web.Response(status=502, content_type="text/html",
                                text="<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad "
                                     "Gateway</h1></center><hr><center>nginx</center></body></html>\n")
        return response

    def _routes(self) -> list[web.RouteDef]:
        prompts = PromptRoutes(self.engine)
        system = SystemRoutes(self.engine, self.max_upload_size, lambda: (self.host, self.port))
        return [self.hub.route(), *prompts.routes(), *FileRoutes(self.engine).routes(), *system.routes(),
                *prompts.replacement_routes()]

    async def static_root(self, request: web.Request):
        if request.method in ("GET", "HEAD"):
            return web.Response(status=404)
        return web.Response(status=405, text="405: Method Not Allowed")


@dataclass
class SimHandle:
    """A running simulator: `url`, `engine`, `faults`, `profile`, `log()`, `restart()`, `reset()`, `stop()`."""

    url: str
    host: str
    port: int
    engine: Engine
    _server: SimServer
    _thread: threading.Thread

    @property
    def faults(self) -> Faults:
        return self.engine.faults

    @property
    def profile(self):
        return self.engine.profile

    @property
    def comfy_version(self) -> str:
        return self.engine.profile.key

    @property
    def output_dir(self) -> Path:
        return Path(self.engine.config.output_dir)

    @property
    def ws_url(self) -> str:
        return "ws" + self.url[len("http"):] + "/ws"

    @property
    def is_up(self) -> bool:
        """False while a down_for fault has the server away."""
        return not self._server.down

    def log(self) -> list[dict]:
        return self.engine.log()

    def restart(self) -> None:
        self.engine.restart()

    def reset(self, output_dir: Path | None = None) -> None:
        self.engine.reset(output_dir)
        self._call(self._server.ensure_up())

    def _call(self, coro, timeout: float = 30):
        loop = self._server.loop
        if loop is None or loop.is_closed() or not self._thread.is_alive():
            coro.close()
            return None
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=timeout)

    def stop(self) -> None:
        """Stops worker, sockets, tasks and loop; safe to call twice."""
        self.engine.stop()
        loop = self._server.loop
        if loop is not None and not loop.is_closed() and self._thread.is_alive():
            self._call(self._server.shutdown())
            loop.call_soon_threadsafe(loop.stop)
        self._thread.join(timeout=10)

    def wait(self) -> None:
        """Blocks until the server thread ends (Ctrl-C in `wanclip sim`)."""
        while self._thread.is_alive():
            self._thread.join(0.5)


def serve_in_thread(
    output_dir: Path | str,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    models=None,
    load_seconds: float = 2.0,
    step_seconds: float = 0.5,
    faults: Faults | None = None,
    allow_remote: bool = False,
    max_upload_size: int = MAX_UPLOAD_SIZE,
    comfy_version: str = DEFAULT,
    nodes: tuple[str, ...] = (),
    video_delay: float = 1.5,
    drift: float = 0.0,
) -> SimHandle:
    """Starts a simulator on its own loop thread; port 0 picks a free port. Returns a handle.

    comfy_version: which ComfyUI it speaks, one of PROFILES ("0.3.64", "0.9", "0.33", "0.38"; VERIFIED
    lists those checked against recordings).
    nodes: custom node packs it has installed: ("wanclip",) adds WanclipSaveVideo, whose file
    appears (renamed from .part) video_delay seconds after its prompt finished, with a
    ``wanclip.video`` event.
    "frame-interpolation" adds ComfyUI-Frame-Interpolation's RIFE VFI (the post stage's
    interpolation on profiles without core FrameInterpolate, see post_schemas).
    drift: the colour shift of every clip started from an image (an image-to-video link), reached
    by its last frame: red x (1 + drift), blue x (1 - drift), clipped; between -1 and 1.
    """
    profile = get_profile(comfy_version)
    if not -1.0 <= drift <= 1.0:  # also refuses NaN
        raise ValueError(f"drift must be between -1 and 1 (a fraction such as 0.03), not {drift}")
    if not is_loopback(host) and not allow_remote:
        raise ValueError(f"refusing to expose the simulator on {host}: pass the host explicitly (--host {host}) to allow it")
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    config = SimConfig(Path(output_dir), models, load_seconds, step_seconds, tuple(nodes), video_delay, drift)
    engine = Engine(config, faults, profile=profile)
    server = SimServer(engine, host, port, max_upload_size)
    ready: dict = {}
    started = threading.Event()
    thread = threading.Thread(target=_run_loop, args=(server, ready, started), name="wanclip-sim-http", daemon=True)
    thread.start()
    started.wait(timeout=30)
    if "error" in ready:
        thread.join(timeout=10)
        raise ready["error"]
    engine.start()
    url_host = f"[{host}]" if ":" in host else host
    return SimHandle(f"http://{url_host}:{server.port}", host, server.port, engine, server, thread)


def _run_loop(server: SimServer, ready: dict, started: threading.Event) -> None:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        server.attach(loop)
        loop.run_until_complete(server.start())
        server.start_publishing()
    except Exception as exc:  # noqa: BLE001 - handed to the caller's thread
        ready["error"] = exc
        _close_loop(loop)
        started.set()
        return
    started.set()
    try:
        loop.run_forever()
    finally:
        _close_loop(loop)


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Cancels what is left, lets it finish, then closes: nothing is destroyed while pending."""
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()


__all__ = ["PROFILES", "SimHandle", "SimServer", "serve_in_thread"]
