"""aiohttp HTTP + /ws on one port, every route also under /api/, and serve_in_thread()."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import platform
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

from aiohttp import WSMsgType, web

from wanclip.sim.engine import Engine, SimConfig
from wanclip.sim.faults import Faults

MAX_UPLOAD_SIZE = 100 * 1024 * 1024  # ComfyUI's --max-upload-size default, for every body


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _error_body(type_: str, message: str, details: str) -> dict:
    return {"error": {"type": type_, "message": message, "details": details, "extra_info": {}}, "node_errors": {}}


async def _json_body(request: web.Request):
    """The body as JSON; a 400 with ComfyUI's error shape (not a 500) when it is not JSON."""
    raw = await request.read()
    try:
        return json.loads(raw)
    except ValueError as exc:
        body = _error_body("invalid_json", "Request body is not valid JSON", str(exc))
        raise web.HTTPBadRequest(text=json.dumps(body), content_type="application/json") from exc


class SimServer:
    def __init__(self, engine: Engine, host: str, port: int, max_upload_size: int = MAX_UPLOAD_SIZE):
        self.engine = engine
        self.host, self.port = host, port
        self.max_upload_size = max_upload_size
        self.sockets: dict[str, web.WebSocketResponse] = {}
        self.sent: dict[int, int] = {}  # id(ws) -> messages sent, for the ws_close fault
        self.loop: asyncio.AbstractEventLoop | None = None
        self.messages: asyncio.Queue | None = None
        engine.emit = self.send
        engine.on_restart = self._on_restart

    # ---- events --------------------------------------------------------------------------
    def send(self, type_: str, data: dict, sid: str | None) -> None:
        """Thread-safe: one FIFO queue and one publisher, like PromptServer.send_sync."""
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.messages.put_nowait, (type_, data, sid))

    async def _publish(self) -> None:
        while True:
            type_, data, sid = await self.messages.get()
            text = json.dumps({"type": type_, "data": data})
            targets = list(self.sockets.values()) if sid is None else [self.sockets[sid]] if sid in self.sockets else []
            for ws in targets:
                await self._send_one(ws, text)

    async def _send_one(self, ws: web.WebSocketResponse, text: str) -> None:
        if ws.closed:
            return
        try:
            await ws.send_str(text)
        except (ConnectionError, RuntimeError):
            return
        self.sent[id(ws)] = self.sent.get(id(ws), 0) + 1
        limit = self.engine.faults.ws_close_after
        if limit is not None and self.sent[id(ws)] >= limit:
            await ws.close()

    def _on_restart(self) -> None:
        if self.loop is not None:
            self.loop.call_soon_threadsafe(lambda: self.loop.create_task(self._close_all()))

    async def _close_all(self) -> None:
        for ws in list(self.sockets.values()):
            await ws.close()

    # ---- app ---------------------------------------------------------------------------------
    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=self.max_upload_size, middlewares=[self._faults_middleware])
        routes = self._routes()
        app.router.add_routes(routes)
        # Every route is also served under /api, as ComfyUI registers them twice.
        app.router.add_routes([web.RouteDef(r.method, "/api" + r.path, r.handler, r.kwargs) for r in routes])
        return app

    @web.middleware
    async def _faults_middleware(self, request: web.Request, handler):
        faults = self.engine.faults
        delay = faults.route_delay(request.path)
        if delay:
            await asyncio.sleep(delay)
        if faults.take_route_error(request.path):
            return web.Response(status=500, text="500 Internal Server Error\n\nServer got itself in trouble")
        return await handler(request)

    def _routes(self) -> list[web.RouteDef]:
        return [
            web.get("/ws", self.ws),
            web.post("/prompt", self.post_prompt),
            web.get("/prompt", self.get_prompt),
            web.get("/queue", self.get_queue),
            web.post("/queue", self.post_queue),
            web.post("/interrupt", self.post_interrupt),
            web.get("/history", self.get_history),
            web.get("/history/{prompt_id}", self.get_history_item),
            web.post("/history", self.post_history),
            web.get("/view", self.view),
            web.get("/object_info", self.object_info),
            web.get("/object_info/{node_class}", self.object_info_node),
            web.get("/system_stats", self.system_stats),
            web.get("/models", self.models),
            web.get("/models/{folder}", self.models_folder),
            web.post("/free", self.free),
            web.get("/features", self.features),
            web.get("/embeddings", self.embeddings),
            web.get("/sim/log", self.sim_log),
        ]

    async def ws(self, request: web.Request):
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        sid = request.query.get("clientId") or uuid.uuid4().hex
        self.sockets[sid] = ws  # a new socket with the same id steals the events
        self.send("status", {"status": {"exec_info": {"queue_remaining": self.engine.queue_remaining()}}, "sid": sid}, sid)
        node = self.engine.running_node(sid)
        if node is not None:
            self.send("executing", {"node": node}, sid)
        first = True
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT and first:
                    self._feature_flags(msg.data, sid)
                first = False
        finally:
            if self.sockets.get(sid) is ws:
                del self.sockets[sid]
            self.sent.pop(id(ws), None)
        return ws

    def _feature_flags(self, text: str, sid: str) -> None:
        try:
            msg = json.loads(text)
        except ValueError:
            return
        if isinstance(msg, dict) and msg.get("type") == "feature_flags":
            self.send("feature_flags", {"supports_preview_metadata": True, "max_upload_size": float(self.max_upload_size)}, sid)

    async def post_prompt(self, request: web.Request):
        try:
            body = await _json_body(request)
        except web.HTTPBadRequest as exc:
            return web.Response(status=400, text=exc.text, content_type="application/json")
        status, payload = self.engine.submit(body)
        return web.json_response(payload, status=status)

    async def get_prompt(self, request):
        return web.json_response({"exec_info": {"queue_remaining": self.engine.queue_remaining()}})

    async def get_queue(self, request):
        return web.json_response(self.engine.queue())

    async def post_queue(self, request):
        body = await _json_body(request)
        if isinstance(body, dict):
            if body.get("clear"):
                self.engine.clear_pending()
            if "delete" in body:
                self.engine.delete_pending(body["delete"])
        return web.Response(status=200)

    async def post_interrupt(self, request):
        body = await request.read()
        data = json.loads(body) if body.strip() else {}
        prompt_id = data.get("prompt_id") if isinstance(data, dict) else None
        self.engine.interrupt(prompt_id)
        return web.Response(status=200)

    async def get_history(self, request):
        max_items = request.query.get("max_items")
        offset = int(request.query.get("offset", -1))
        return web.json_response(self.engine.history(int(max_items) if max_items else None, offset))

    async def get_history_item(self, request):
        return web.json_response(self.engine.history_item(request.match_info["prompt_id"]))

    async def post_history(self, request):
        body = await _json_body(request)
        if isinstance(body, dict):
            self.engine.delete_history(body.get("delete", []), clear=bool(body.get("clear")))
        return web.Response(status=200)

    async def view(self, request: web.Request):
        query = request.query
        if "filename" not in query:
            return web.Response(status=404)
        filename, type_ = query["filename"], query.get("type", "output")
        for suffix in ("output", "input", "temp"):
            if filename.endswith(f" [{suffix}]"):
                filename, type_ = filename[: -len(suffix) - 3], suffix
        config = self.engine.config
        base = {"output": Path(config.output_dir), "input": config.input_dir, "temp": config.temp_dir}.get(type_)
        if base is None or not filename or filename[0] == "/" or ".." in filename:
            return web.Response(status=400)
        base = os.path.abspath(base)
        folder = os.path.abspath(os.path.join(base, query.get("subfolder", "")))
        if os.path.commonpath((folder, base)) != base:
            return web.Response(status=403)
        path = os.path.join(folder, os.path.basename(filename))
        if not os.path.isfile(path):
            return web.Response(status=404)
        name = os.path.basename(filename)
        return web.FileResponse(path, headers={"Content-Disposition": f'filename="{name}"'})

    async def object_info(self, request):
        return web.json_response(self.engine.catalog.info)

    async def object_info_node(self, request):
        cls = request.match_info["node_class"]
        info = self.engine.catalog.info
        return web.json_response({cls: info[cls]} if cls in info else {})

    async def system_stats(self, request):
        vram = 80 * 1024**3
        return web.json_response({
            "system": {"os": "posix" if os.name == "posix" else os.name, "ram_total": 64 * 1024**3,
                       "ram_free": 48 * 1024**3, "comfyui_version": "0.3.64",
                       "required_frontend_version": "1.27.10", "installed_templates_version": "0.1.95",
                       "required_templates_version": "0.1.95", "python_version": platform.python_version(),
                       "pytorch_version": "simulated", "embedded_python": False,
                       "argv": ["wanclip", "sim", "--host", self.host, "--port", str(self.port)]},
            "devices": [{"name": "cuda:0 wanclip simulated GPU : cudaMallocAsync", "type": "cuda", "index": 0,
                         "vram_total": vram, "vram_free": vram, "torch_vram_total": vram, "torch_vram_free": vram}],
        })

    async def models(self, request):
        return web.json_response(self.engine.catalog.folder_keys())

    async def models_folder(self, request):
        names = self.engine.catalog.folder(request.match_info["folder"])
        return web.Response(status=404) if names is None else web.json_response(names)

    async def free(self, request):
        body = await _json_body(request)
        if isinstance(body, dict):
            self.engine.free(bool(body.get("unload_models")), bool(body.get("free_memory")))
        return web.Response(status=200)

    async def embeddings(self, request):
        return web.json_response([])

    async def sim_log(self, request):
        """One entry per executed prompt, so tests can prove nothing was rendered twice."""
        return web.json_response(self.engine.log())

    async def features(self, request):
        return web.json_response({"supports_preview_metadata": True, "max_upload_size": float(self.max_upload_size)})


@dataclass
class SimHandle:
    """A running simulator: `url`, `engine`, `faults`, `log()`, `restart()`, `reset()`, `stop()`."""

    url: str
    host: str
    port: int
    engine: Engine
    _server: SimServer
    _thread: threading.Thread
    _runner: web.AppRunner

    @property
    def faults(self) -> Faults:
        return self.engine.faults

    @property
    def output_dir(self) -> Path:
        return Path(self.engine.config.output_dir)

    @property
    def ws_url(self) -> str:
        return "ws" + self.url[len("http"):] + "/ws"

    def log(self) -> list[dict]:
        return self.engine.log()

    def restart(self) -> None:
        self.engine.restart()

    def reset(self, output_dir: Path | None = None) -> None:
        self.engine.reset(output_dir)

    def stop(self) -> None:
        loop = self._server.loop
        fut = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
        fut.result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(timeout=10)
        self.engine.stop()

    async def _shutdown(self) -> None:
        await self._server._close_all()
        await self._runner.cleanup()

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
) -> SimHandle:
    """Starts a simulator on its own loop thread; port 0 picks a free port. Returns a handle."""
    if not is_loopback(host) and not allow_remote:
        raise ValueError(f"refusing to expose the simulator on {host}: pass the host explicitly (--host {host}) to allow it")
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    config = SimConfig(Path(output_dir), models, load_seconds, step_seconds)
    engine = Engine(config, faults)
    server = SimServer(engine, host, port, max_upload_size)
    ready: dict = {}
    started = threading.Event()
    thread = threading.Thread(target=_run_loop, args=(server, ready, started), name="wanclip-sim-http", daemon=True)
    thread.start()
    started.wait(timeout=30)
    if "error" in ready:
        raise ready["error"]
    engine.start()
    server.port = ready["port"]
    url_host = f"[{host}]" if ":" in host else host
    return SimHandle(f"http://{url_host}:{server.port}", host, server.port, engine, server, thread, ready["runner"])


def _run_loop(server: SimServer, ready: dict, started: threading.Event) -> None:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        runner = web.AppRunner(server.make_app(), access_log=None)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, server.host, server.port)
        loop.run_until_complete(site.start())
        server.loop, server.messages = loop, asyncio.Queue()
        loop.create_task(server._publish())
        ready.update(port=site._server.sockets[0].getsockname()[1], runner=runner)
    except Exception as exc:  # noqa: BLE001 - handed to the caller's thread
        ready["error"] = exc
        started.set()
        return
    started.set()
    loop.run_forever()
    loop.close()
