"""aiohttp HTTP + /ws on one port, every route also under /api/, and serve_in_thread().

What differs between ComfyUI versions is read from the engine's Profile (profiles.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import json
import os
import platform
import secrets
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

from aiohttp import WSCloseCode, WSMsgType, web

from wanclip.sim import jobs
from wanclip.sim.engine import Engine, SimConfig
from wanclip.sim.faults import Faults
from wanclip.sim.profiles import DEFAULT, PROFILES, get_profile

MAX_UPLOAD_SIZE = 100 * 1024 * 1024  # ComfyUI's --max-upload-size default, for every body
CREDENTIAL_TIMEOUT = 5.0  # seconds the 0.38 server waits for credential_auth
SHUTDOWN_TIMEOUT = 1.0  # seconds in-flight handlers get when the server stops or goes down
INTERNAL_ERROR = "500 Internal Server Error\n\nServer got itself in trouble"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _error_body(type_: str, message: str, details: str) -> dict:
    return {"error": {"type": type_, "message": message, "details": details, "extra_info": {}}, "node_errors": {}}


class BadJson(Exception):
    pass


async def _json_body(request: web.Request):
    raw = await request.read()
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise BadJson(str(exc)) from exc


def _peer_is_loopback(request: web.Request) -> bool:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return bool(peer) and is_loopback(peer[0])


class SimServer:
    def __init__(self, engine: Engine, host: str, port: int, max_upload_size: int = MAX_UPLOAD_SIZE):
        self.engine = engine
        self.profile = engine.profile
        self.host, self.port = host, port
        self.max_upload_size = max_upload_size
        self.sockets: dict[str, web.WebSocketResponse] = {}
        self.requests: dict[int, web.Request] = {}  # id(ws) -> its request, to drop the TCP connection
        self.credentials: dict[str, str] = {}  # sid -> credential_key (0.38)
        self.sent: dict[int, int] = {}  # id(ws) -> messages sent, for the ws_close/send_raw faults
        self.loop: asyncio.AbstractEventLoop | None = None
        self.messages: asyncio.Queue | None = None
        self.runner: web.AppRunner | None = None
        self.down = False
        self._publisher: asyncio.Task | None = None
        self._back: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task] = set()
        engine.emit = self.send
        engine.on_restart = self._on_restart
        engine.on_down = self._on_down

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
        for ws in list(self.sockets.values()):
            self._drop(ws)
        if self.runner is not None:
            runner, self.runner = self.runner, None
            await runner.cleanup()
        self.sockets.clear()
        self.credentials.clear()

    def _drop(self, ws: web.WebSocketResponse) -> None:
        request = self.requests.get(id(ws))
        transport = request.transport if request is not None else None
        if transport is not None:
            transport.abort()  # like a process that died: the peer sees the TCP connection go

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
        await self._close_all()
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

    # ---- events --------------------------------------------------------------------------------
    def send(self, type_: str, data: dict, sid: str | None) -> None:
        """Thread-safe: one FIFO queue and one publisher, like PromptServer.send_sync."""
        if self.loop is not None and not self.loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed between the check and the call
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
        count = self.sent[id(ws)] = self.sent.get(id(ws), 0) + 1
        await self._send_raw_frames(ws, count)
        limit = self.engine.faults.ws_close_after
        if limit is not None and count >= limit:
            await ws.close()

    async def _send_raw_frames(self, ws: web.WebSocketResponse, count: int) -> None:
        for after, frame in list(self.engine.faults.raw_frames):
            if after == count and not ws.closed:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await ws.send_str(frame)

    def _on_restart(self) -> None:
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(lambda: self._spawn(self._close_all()))

    async def _close_all(self) -> None:
        for ws in list(self.sockets.values()):
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.close()

    # ---- app -----------------------------------------------------------------------------------
    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=self.max_upload_size, middlewares=[self._faults_middleware])
        routes = self._routes()
        app.router.add_routes(routes)
        # Every route is also served under /api, as ComfyUI registers them twice.
        app.router.add_routes([web.RouteDef(r.method, "/api" + r.path, r.handler, r.kwargs) for r in routes])
        if self.profile.jobs_api:
            app.router.add_routes(self._jobs_routes())
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
        if self.profile.credentials and not _peer_is_loopback(request) and request.scheme != "https" and (
                "X-Comfy-Client-Id" in request.headers or "X-Comfy-Credential-Key" in request.headers):
            return web.json_response({"error": "credential headers need TLS or a loopback connection"}, status=403)
        response = await handler(request)
        if faults.take_lost_answer(request.path):
            return web.Response(status=502, content_type="text/html",
                                text="<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad "
                                     "Gateway</h1></center><hr><center>nginx</center></body></html>\n")
        return response

    def _routes(self) -> list[web.RouteDef]:
        routes = [
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
            web.post("/upload/image", self.upload_image),
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
        if self.profile.node_replacements:
            routes.append(web.get("/node_replacements", self.get_node_replacements))
        return routes

    def _jobs_routes(self) -> list[web.RouteDef]:
        routes = []
        if self.profile.jobs_cancel:
            routes += [web.post("/api/jobs/cancel", self.cancel_jobs), web.post("/api/jobs/{job_id}/cancel", self.cancel_job)]
        return routes + [web.get("/api/jobs", self.get_jobs), web.get("/api/jobs/{job_id}", self.get_job)]

    async def static_root(self, request: web.Request):
        if request.method in ("GET", "HEAD"):
            return web.Response(status=404)
        return web.Response(status=405, text="405: Method Not Allowed")

    def _bad_json(self, exc: BadJson) -> web.Response:
        if self.profile.bad_json_is_500:  # the real server's answer (misc_endpoints.json, both sets)
            return web.Response(status=500, text=INTERNAL_ERROR)
        body = _error_body("invalid_json", "Request body is not valid JSON", str(exc))
        return web.json_response(body, status=400)

    # ---- websocket -----------------------------------------------------------------------------
    async def ws(self, request: web.Request):
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        self.requests[id(ws)] = request
        sid = request.query.get("clientId") or uuid.uuid4().hex
        try:
            sid, key = await self._credentials(ws, request, sid)
            if ws.closed:
                return ws
            await self._serve_ws(ws, sid, key)
        finally:
            self.requests.pop(id(ws), None)
            self.sent.pop(id(ws), None)
        return ws

    async def _credentials(self, ws, request, sid: str) -> tuple[str, str | None]:
        """0.38's handshake (drift §1.2): a key per sid on loopback/TLS; a reconnect while the old
        socket is still registered must send it first, or is closed with 1008."""
        if not self.profile.credentials:
            return sid, None
        secure = _peer_is_loopback(request) or request.scheme == "https"
        known = self.credentials.get(sid)
        if not secure:
            if known is not None:
                sid = uuid.uuid4().hex  # the real server moves a plain-HTTP client to a new sid
            return sid, None
        if known is not None and sid in self.sockets:
            if not await self._check_credential(ws, known):
                await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"Invalid client credentials")
                return sid, None
            return sid, known  # [inferred] the same key stays valid after a good auth
        key = secrets.token_urlsafe(32)
        self.credentials[sid] = key
        return sid, key

    @staticmethod
    async def _check_credential(ws: web.WebSocketResponse, key: str) -> bool:
        try:
            msg = await ws.receive(timeout=CREDENTIAL_TIMEOUT)
        except asyncio.TimeoutError:
            return False
        if msg.type != WSMsgType.TEXT:
            return False
        try:
            data = json.loads(msg.data)
        except ValueError:
            return False
        return (isinstance(data, dict) and data.get("type") == "credential_auth" and isinstance(data.get("data"), dict)
                and secrets.compare_digest(str(data["data"].get("credential_key", "")), key))

    async def _serve_ws(self, ws: web.WebSocketResponse, sid: str, key: str | None) -> None:
        self.sockets[sid] = ws  # a new socket with the same id steals the events
        await self._send_raw_frames(ws, 0)
        status = {"status": {"exec_info": {"queue_remaining": self.engine.queue_remaining()}}, "sid": sid}
        if key is not None:
            status["credential_key"] = key
        self.send("status", status, sid)
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
            stale = self.engine.faults.stale_ws_seconds
            if stale > 0 and not self.down:
                self.loop.call_later(stale, self._forget, sid, ws)
            else:
                self._forget(sid, ws)

    def _forget(self, sid: str, ws: web.WebSocketResponse) -> None:
        """A clean disconnect drops the sid and its credential (when no newer socket took it over)."""
        if self.sockets.get(sid) is ws:
            del self.sockets[sid]
            self.credentials.pop(sid, None)

    def _feature_dict(self) -> dict:
        size = self.max_upload_size if self.profile.int_upload_size else float(self.max_upload_size)
        flags = dict(self.profile.features)
        return {"supports_preview_metadata": flags.pop("supports_preview_metadata"), "max_upload_size": size, **flags}

    def _feature_flags(self, text: str, sid: str) -> None:
        try:
            msg = json.loads(text)
        except ValueError:
            return
        if isinstance(msg, dict) and msg.get("type") == "feature_flags":
            self.send("feature_flags", self._feature_dict(), sid)

    # ---- prompt, queue, history ----------------------------------------------------------------
    async def post_prompt(self, request: web.Request):
        try:
            body = await _json_body(request)
        except BadJson as exc:
            return self._bad_json(exc)
        status, payload = self.engine.submit(body)
        return web.json_response(payload, status=status)

    async def get_prompt(self, request):
        return web.json_response({"exec_info": {"queue_remaining": self.engine.queue_remaining()}})

    async def get_queue(self, request):
        return web.json_response(self.engine.queue())

    async def post_queue(self, request):
        try:
            body = await _json_body(request)
        except BadJson as exc:
            return self._bad_json(exc)
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
        try:
            body = await _json_body(request)
        except BadJson as exc:
            return self._bad_json(exc)
        if isinstance(body, dict):
            self.engine.delete_history(body.get("delete", []), clear=bool(body.get("clear")))
        return web.Response(status=200)

    # ---- /api/jobs (0.9+) ----------------------------------------------------------------------
    async def get_jobs(self, request: web.Request):
        try:
            query = jobs.parse_query(self.profile, request.query)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        found, total = self.engine.jobs(**query)
        offset, limit = query["offset"], query["limit"]
        pagination = {"offset": offset, "limit": limit, "total": total, "has_more": offset + len(found) < total}
        return web.json_response({"jobs": found, "pagination": pagination})

    async def get_job(self, request: web.Request):
        job = self.engine.job(request.match_info["job_id"])
        if job is None:
            return web.json_response({"error": "Job not found"}, status=404)
        return web.json_response(job)

    async def cancel_job(self, request: web.Request):
        """0.38: idempotent; `cancelled` says whether a pending or running job was actually stopped."""
        kind = self.engine.cancel(request.match_info["job_id"])
        return web.json_response({"cancelled": kind in (jobs.CANCEL_RUNNING, jobs.CANCEL_PENDING)})

    async def cancel_jobs(self, request: web.Request):
        """0.38's batch form. [inferred] The answer lists the ids that were actually cancelled."""
        try:
            body = await _json_body(request)
        except BadJson:
            return web.json_response({"error": "Request body must be JSON"}, status=400)
        ids = body.get("job_ids") if isinstance(body, dict) else None
        try:
            if not isinstance(ids, list) or not ids:
                raise ValueError("job_ids must be a non-empty list")
            for job_id in ids:
                jobs.validate_job_id(job_id)
        except ValueError as exc:
            return web.json_response({"error": f"Invalid job_ids: {exc}"}, status=400)
        done = [i for i in dict.fromkeys(ids) if self.engine.cancel(i) in (jobs.CANCEL_RUNNING, jobs.CANCEL_PENDING)]
        return web.json_response({"cancelled": done})

    async def get_node_replacements(self, request):
        """0.38 (inferred shape): old class -> the list of its registered replacements."""
        return web.json_response({old: [rule] for old, rule in self.engine.node_replacements.items()})

    # ---- files, schemas, system ------------------------------------------------------------------
    async def view(self, request: web.Request):
        query = request.query
        if "filename" not in query:
            return web.Response(status=404)
        faults = self.engine.faults
        if faults.view_endless:
            return await self._endless(request)
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
        if faults.view_size is not None:
            return await self._wrong_size(request, path, name, faults.view_size)
        return web.FileResponse(path, headers={"Content-Disposition": f'filename="{name}"'})

    async def upload_image(self, request: web.Request):
        """server.py image_upload: multipart `image` (a file), `type` (input|temp|output, default input),
        `subfolder`, `overwrite` ("true"/"1"). A taken name gets " (1)", " (2)"... before the
        extension unless the file there has the same bytes: then nothing is written and that name
        is the answer. A body over max_upload_size is a 413 (aiohttp's client_max_size)."""
        post = await request.post()
        image, overwrite = post.get("image"), post.get("overwrite")
        upload_type = post.get("type")
        if upload_type is None:
            upload_type = "input"
        upload_dir = self.engine.folders().get(upload_type)
        if upload_dir is None:  # get_dir_by_type leaves its folder unbound: the handler crashes
            return web.Response(status=500, text=INTERNAL_ERROR)
        if isinstance(image, str) and image:  # a plain field has no .file: AttributeError
            return web.Response(status=500, text=INTERNAL_ERROR)
        if not image or not image.file:
            return web.Response(status=400)
        filename = image.filename
        if not filename:
            return web.Response(status=400)
        upload_dir = os.path.abspath(upload_dir)
        subfolder = post.get("subfolder", "")
        folder = os.path.join(upload_dir, os.path.normpath(subfolder))
        filepath = os.path.abspath(os.path.join(folder, filename))
        if os.path.commonpath((upload_dir, filepath)) != upload_dir:
            return web.Response(status=400)
        os.makedirs(folder, exist_ok=True)
        data = image.file.read()
        stem, ext = os.path.splitext(filename)
        duplicate = False
        if overwrite not in ("true", "1"):
            i = 1
            while os.path.exists(filepath):
                if _same_bytes(filepath, data):
                    duplicate = True
                    break
                filename = f"{stem} ({i}){ext}"
                filepath = os.path.join(folder, filename)
                i += 1
        if not duplicate:
            _write_file(filepath, data)
        return web.json_response({"name": filename, "subfolder": subfolder, "type": upload_type})

    @staticmethod
    async def _endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "video/mp4"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        chunk = b"\0" * 65536
        with contextlib.suppress(ConnectionError, RuntimeError):
            while True:
                await response.write(chunk)
                await asyncio.sleep(0)
        return response

    @staticmethod
    async def _wrong_size(request: web.Request, path: str, name: str, size: int) -> web.StreamResponse:
        data = Path(path).read_bytes()
        response = web.StreamResponse(headers={"Content-Type": "video/mp4", "Content-Disposition": f'filename="{name}"'})
        response.content_length = size
        response.force_close()  # a longer claim ends with the connection, not a hang
        await response.prepare(request)
        with contextlib.suppress(ConnectionError, RuntimeError):
            await response.write(data[:size])  # aiohttp never sends past the declared length anyway
            if size > len(data) and request.transport is not None:
                request.transport.close()
                return response
            await response.write_eof()
        return response

    async def object_info(self, request):
        return web.json_response(self.engine.catalog.info)

    async def object_info_node(self, request):
        cls = request.match_info["node_class"]
        info = self.engine.catalog.info
        return web.json_response({cls: info[cls]} if cls in info else {})

    async def system_stats(self, request):
        vram = 80 * 1024**3
        profile = self.profile
        system = {"os": profile.os_name if os.name == "posix" else os.name, "ram_total": 64 * 1024**3,
                  "ram_free": 48 * 1024**3, "comfyui_version": profile.version,
                  "required_frontend_version": profile.frontend_version,
                  "installed_templates_version": profile.templates_version,
                  "required_templates_version": profile.templates_version,
                  "python_version": platform.python_version(), "pytorch_version": "simulated",
                  "embedded_python": False,
                  "argv": ["wanclip", "sim", "--host", self.host, "--port", str(self.port),
                           "--comfy-version", profile.key]}
        system.update(profile.system_extra)
        return web.json_response({
            "system": system,
            "devices": [{"name": "cuda:0 wanclip simulated GPU : cudaMallocAsync", "type": "cuda", "index": 0,
                         "vram_total": vram, "vram_free": vram, "torch_vram_total": vram, "torch_vram_free": vram}],
        })

    async def models(self, request):
        return web.json_response(self.engine.catalog.folder_keys())

    async def models_folder(self, request):
        names = self.engine.catalog.folder(request.match_info["folder"])
        return web.Response(status=404) if names is None else web.json_response(names)

    async def free(self, request):
        try:
            body = await _json_body(request)
        except BadJson as exc:
            return self._bad_json(exc)
        if isinstance(body, dict):
            self.engine.free(bool(body.get("unload_models")), bool(body.get("free_memory")))
        return web.Response(status=200)

    async def embeddings(self, request):
        return web.json_response([])

    async def sim_log(self, request):
        """One entry per executed prompt, so tests can prove nothing was rendered twice."""
        return web.json_response(self.engine.log())

    async def features(self, request):
        return web.json_response(self._feature_dict())


def _same_bytes(path: str, data: bytes) -> bool:
    """compare_image_hash: the file's hash against the upload's (node_helpers.hasher, sha256)."""
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).digest() == hashlib.sha256(data).digest()


def _write_file(path: str, data: bytes) -> None:
    """The upload's bytes under `path`, whole or not at all (the real server writes in place)."""
    folder, name = os.path.split(path)
    part = os.path.join(folder, f".{name}.{uuid.uuid4().hex[:8]}.part")
    try:
        with open(part, "wb") as f:
            f.write(data)
        os.replace(part, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(part)


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

    comfy_version: which ComfyUI it speaks, one of PROFILES ("0.3.64", "0.9", "0.38").
    nodes: custom node packs it has installed: ("wanclip",) adds WanclipSaveVideo, whose file
    appears (renamed from .part) video_delay seconds after its prompt finished, with a
    ``wanclip.video`` event.
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
        server.loop, server.messages = loop, asyncio.Queue()
        loop.run_until_complete(server.start())
        server._publisher = loop.create_task(server._publish())
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
