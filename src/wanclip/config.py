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
    """Servers from WANCLIP_SERVER (comma separated), else the local default."""
    raw = os.environ.get("WANCLIP_SERVER", "")
    urls = [u.strip() for u in raw.split(",") if u.strip()]
    return urls or [DEFAULT_SERVER]


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
