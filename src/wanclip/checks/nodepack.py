"""Whether a server has wanclip's node pack: information for ``doctor``, never a failure (the pack is optional)."""

from __future__ import annotations

from wanclip.checks.graph import Check
from wanclip.errors import WanclipError
from wanclip.models.nodepack import NODE_CLASS, VHS_FORMAT


def doctor_check(object_info: dict) -> Check:
    """Informational: whether the server has the pack (never a failure: it is optional)."""
    if NODE_CLASS in (object_info or {}):
        return Check("wanclip nodes", True, f"{NODE_CLASS} is installed: clips are encoded in the background "
                     "(render uses it in place of VHS_VideoCombine / SaveVideo)")
    fallback = VHS_FORMAT in _vhs_formats(object_info)
    return Check("wanclip nodes", True,
                 f"optional, not installed: the GPU idles ~2 s per shot while the clip is encoded"
                 f"{' (the ultrafast VHS format is there)' if fallback else ''}",
                 "wanclip setup --nodes --comfy-dir DIR, then restart ComfyUI")


def _vhs_formats(object_info: dict) -> list[str]:
    spec = ((object_info or {}).get("VHS_VideoCombine") or {}).get("input", {}).get("required", {}).get("format")
    return [str(o) for o in spec[0]] if isinstance(spec, list) and spec and isinstance(spec[0], list) else []


def server_check(client, object_info: dict) -> Check:
    """``doctor_check`` for a server: ``object_info`` may hold only the graph's classes, so the
    node's own ``/object_info/WanclipSaveVideo`` is asked for (``{}`` when it is not there)."""
    info = dict(object_info or {})
    if NODE_CLASS not in info:
        try:
            info.update(client.object_info(NODE_CLASS) or {})
        except WanclipError:
            pass
    return doctor_check(info)
