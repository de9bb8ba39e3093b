"""``/prompt``, ``/queue``, ``/interrupt``, ``/history`` (and 0.38's ``/node_replacements``): the
queue as ComfyUI's server.py answers for it."""

from __future__ import annotations

import json

from aiohttp import web

from wanclip.sim.engine import Engine
from wanclip.sim.routes.common import BadJson, bad_json, json_body


class PromptRoutes:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.profile = engine.profile

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/prompt", self.post_prompt),
            web.get("/prompt", self.get_prompt),
            web.get("/queue", self.get_queue),
            web.post("/queue", self.post_queue),
            web.post("/interrupt", self.post_interrupt),
            web.get("/history", self.get_history),
            web.get("/history/{prompt_id}", self.get_history_item),
            web.post("/history", self.post_history),
        ]

    def replacement_routes(self) -> list[web.RouteDef]:
        return [web.get("/node_replacements", self.get_node_replacements)] if self.profile.node_replacements else []

    async def post_prompt(self, request: web.Request):
        try:
            body = await json_body(request)
        except BadJson as exc:
            return bad_json(self.profile, exc)
        status, payload = self.engine.submit(body)
        return web.json_response(payload, status=status)

    async def get_prompt(self, request):
        return web.json_response({"exec_info": {"queue_remaining": self.engine.queue_remaining()}})

    async def get_queue(self, request):
        return web.json_response(self.engine.queue())

    async def post_queue(self, request):
        try:
            body = await json_body(request)
        except BadJson as exc:
            return bad_json(self.profile, exc)
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
            body = await json_body(request)
        except BadJson as exc:
            return bad_json(self.profile, exc)
        if isinstance(body, dict):
            self.engine.delete_history(body.get("delete", []), clear=bool(body.get("clear")))
        return web.Response(status=200)

    async def get_node_replacements(self, request):
        """0.38 (inferred shape): old class -> the list of its registered replacements."""
        return web.json_response({old: [rule] for old, rule in self.engine.node_replacements.items()})
