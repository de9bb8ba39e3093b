"""The only reader of environment variables.

``WANCLIP_HOME`` moves all of wanclip's own state (caches, verification records); tests point it
at a temporary folder.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_SERVER = "http://127.0.0.1:8188"


def home() -> Path:
    return Path(os.environ.get("WANCLIP_HOME") or Path.home() / ".wanclip")


def server_urls() -> list[str]:
    """Servers from WANCLIP_SERVER (comma separated); empty when unset (``serve.state.default_servers``
    then asks a running `wanclip serve`, else the local default)."""
    raw = os.environ.get("WANCLIP_SERVER", "")
    return [u.strip() for u in raw.split(",") if u.strip()]


def serve_command() -> str | None:
    """WANCLIP_SERVE_COMMAND: the command `wanclip serve` starts each server with (see its --help)."""
    return os.environ.get("WANCLIP_SERVE_COMMAND") or None


def cuda_visible_devices() -> list[str]:
    """The GPUs $CUDA_VISIBLE_DEVICES leaves visible (empty: unset, so all of them)."""
    raw = os.environ.get("CUDA_VISIBLE_DEVICES")
    return [g.strip() for g in raw.split(",") if g.strip()] if raw is not None else []


def stagger_seconds(default: float) -> float:
    """WANCLIP_STAGGER_SECONDS: the head start of one cold server's model load over the next's
    (wanclip.render.stagger); unset or not a number >= 0: ``default``."""
    try:
        value = float(os.environ.get("WANCLIP_STAGGER_SECONDS", ""))
    except ValueError:
        return default
    return value if value >= 0 and value == value and value != float("inf") else default


def extra_headers() -> list[str]:
    """Header lines ``Name: value`` from WANCLIP_HEADERS, separated by newlines or ';;'."""
    raw = os.environ.get("WANCLIP_HEADERS", "")
    parts = [p.strip() for chunk in raw.splitlines() for p in chunk.split(";;")]
    return [p for p in parts if p]


def ffmpeg_override() -> str | None:
    return os.environ.get("WANCLIP_FFMPEG") or None


def hf_endpoint() -> str | None:
    return os.environ.get("HF_ENDPOINT") or None


def hf_token() -> str | None:
    return os.environ.get("HF_TOKEN") or None
