"""``/view`` and ``/upload/image``: files in and out of the server's input/, output/ and temp/
folders, with the real server's path checks, duplicate naming and the /view faults."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import uuid
from pathlib import Path

from aiohttp import web

from wanclip.sim.engine import Engine
from wanclip.sim.routes.common import INTERNAL_ERROR


class FileRoutes:
    def __init__(self, engine: Engine):
        self.engine = engine

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/view", self.view), web.post("/upload/image", self.upload_image)]

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
