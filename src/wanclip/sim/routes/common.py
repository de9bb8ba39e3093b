"""What the route areas share: JSON bodies and their errors, loopback tests, the feature flags."""

from __future__ import annotations

import ipaddress
import json

from aiohttp import web

from wanclip.sim.profiles import Profile

MAX_UPLOAD_SIZE = 100 * 1024 * 1024  # ComfyUI's --max-upload-size default, for every body
INTERNAL_ERROR = "500 Internal Server Error\n\nServer got itself in trouble"


class BadJson(Exception):
    pass


async def json_body(request: web.Request):
    raw = await request.read()
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise BadJson(str(exc)) from exc


def error_body(type_: str, message: str, details: str) -> dict:
    return {"error": {"type": type_, "message": message, "details": details, "extra_info": {}}, "node_errors": {}}


def bad_json(profile: Profile, exc: BadJson) -> web.Response:
    if profile.bad_json_is_500:  # the real server's answer (misc_endpoints.json, both sets)
        return web.Response(status=500, text=INTERNAL_ERROR)
    body = error_body("invalid_json", "Request body is not valid JSON", str(exc))
    return web.json_response(body, status=400)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def peer_is_loopback(request: web.Request) -> bool:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return bool(peer) and is_loopback(peer[0])


def feature_dict(profile: Profile, max_upload_size: int) -> dict:
    """``GET /features`` and the websocket's ``feature_flags`` answer."""
    size = max_upload_size if profile.int_upload_size else float(max_upload_size)
    flags = dict(profile.features)
    return {"supports_preview_metadata": flags.pop("supports_preview_metadata"), "max_upload_size": size, **flags}
