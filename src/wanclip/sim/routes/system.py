"""What a client asks a server about itself: ``/object_info``, ``/models``, ``/system_stats``,
``/features``, ``/embeddings``, ``/free``, and the simulator's own ``/sim/log``."""

from __future__ import annotations

import os
import platform
from collections.abc import Callable

from aiohttp import web

from wanclip.sim.engine import Engine
from wanclip.sim.routes.common import BadJson, bad_json, feature_dict, json_body


class SystemRoutes:
    def __init__(self, engine: Engine, max_upload_size: int, address: Callable[[], tuple[str, int]]):
        self.engine = engine
        self.profile = engine.profile
        self.max_upload_size = max_upload_size
        self.address = address  # (host, port) now: the port is known only once the server listens

    def routes(self) -> list[web.RouteDef]:
        return [
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

    async def object_info(self, request):
        return web.json_response(self.engine.catalog.info)

    async def object_info_node(self, request):
        cls = request.match_info["node_class"]
        info = self.engine.catalog.info
        return web.json_response({cls: info[cls]} if cls in info else {})

    async def system_stats(self, request):
        vram = 80 * 1024**3
        host, port = self.address()
        profile = self.profile
        system = {"os": profile.os_name if os.name == "posix" else os.name, "ram_total": 64 * 1024**3,
                  "ram_free": 48 * 1024**3, "comfyui_version": profile.version,
                  "required_frontend_version": profile.frontend_version,
                  "installed_templates_version": profile.templates_version,
                  "required_templates_version": profile.templates_version,
                  "python_version": platform.python_version(), "pytorch_version": "simulated",
                  "embedded_python": False,
                  "argv": ["wanclip", "sim", "--host", host, "--port", str(port),
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
            body = await json_body(request)
        except BadJson as exc:
            return bad_json(self.profile, exc)
        if isinstance(body, dict):
            self.engine.free(bool(body.get("unload_models")), bool(body.get("free_memory")))
        return web.Response(status=200)

    async def embeddings(self, request):
        return web.json_response([])

    async def sim_log(self, request):
        """One entry per executed prompt, so tests can prove nothing was rendered twice."""
        return web.json_response(self.engine.log())

    async def features(self, request):
        return web.json_response(feature_dict(self.profile, self.max_upload_size))
