"""``/ws``: the simulator's websocket hub, as ComfyUI's PromptServer runs it.

Events from the engine's threads go through one FIFO queue and one publisher task (like
``send_sync``), to one client (its sid) or to all. 0.38's credential handshake, the first
``feature_flags`` message, and the websocket faults (close after N messages, raw frames, a stale
socket kept registered after it closed) live here too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import uuid
from collections.abc import Callable

from aiohttp import WSCloseCode, WSMsgType, web

from wanclip.sim.engine import Engine
from wanclip.sim.routes.common import feature_dict, peer_is_loopback

CREDENTIAL_TIMEOUT = 5.0  # seconds the 0.38 server waits for credential_auth


class EventHub:
    def __init__(self, engine: Engine, max_upload_size: int, is_down: Callable[[], bool]):
        self.engine = engine
        self.profile = engine.profile
        self.max_upload_size = max_upload_size
        self.is_down = is_down
        self.sockets: dict[str, web.WebSocketResponse] = {}
        self.requests: dict[int, web.Request] = {}  # id(ws) -> its request, to drop the TCP connection
        self.credentials: dict[str, str] = {}  # sid -> credential_key (0.38)
        self.sent: dict[int, int] = {}  # id(ws) -> messages sent, for the ws_close/send_raw faults
        self.loop: asyncio.AbstractEventLoop | None = None
        self.messages: asyncio.Queue | None = None

    def route(self) -> web.RouteDef:
        return web.get("/ws", self.ws)

    # ---- events --------------------------------------------------------------------------------
    def send(self, type_: str, data: dict, sid: str | None) -> None:
        """Thread-safe: one FIFO queue and one publisher, like PromptServer.send_sync."""
        if self.loop is not None and not self.loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed between the check and the call
                self.loop.call_soon_threadsafe(self.messages.put_nowait, (type_, data, sid))

    async def publish(self) -> None:
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

    async def close_all(self) -> None:
        for ws in list(self.sockets.values()):
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.close()

    def drop_all(self) -> None:
        """Every socket's TCP connection aborted, no close frames: like a process that died."""
        for ws in list(self.sockets.values()):
            request = self.requests.get(id(ws))
            transport = request.transport if request is not None else None
            if transport is not None:
                transport.abort()

    def forget_all(self) -> None:
        self.sockets.clear()
        self.credentials.clear()

    # ---- a connection --------------------------------------------------------------------------
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
        secure = peer_is_loopback(request) or request.scheme == "https"
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
            if stale > 0 and not self.is_down():
                self.loop.call_later(stale, self._forget, sid, ws)
            else:
                self._forget(sid, ws)

    def _forget(self, sid: str, ws: web.WebSocketResponse) -> None:
        """A clean disconnect drops the sid and its credential (when no newer socket took it over)."""
        if self.sockets.get(sid) is ws:
            del self.sockets[sid]
            self.credentials.pop(sid, None)

    def _feature_flags(self, text: str, sid: str) -> None:
        try:
            msg = json.loads(text)
        except ValueError:
            return
        if isinstance(msg, dict) and msg.get("type") == "feature_flags":
            self.send("feature_flags", feature_dict(self.profile, self.max_upload_size), sid)
