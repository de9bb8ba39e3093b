"""serve.json: what a running `wanclip serve` has up, for `wanclip render` to find without ``--server``.

``{"pid": <the supervisor's>, "started": ..., "comfy_dir": ..., "servers": [{"url", "gpu", "pid",
"log", "status", "warm", ...}]}`` in ``WANCLIP_HOME``. The supervisor writes it atomically and
removes it when it stops; a supervisor killed with SIGKILL cannot, so a reader trusts the file only
while that pid is alive.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from wanclip import config

DEFAULT_SERVER = config.DEFAULT_SERVER


def state_path() -> Path:
    return config.home() / "serve.json"


def read_state() -> dict | None:
    """The state of the running `wanclip serve`; None when there is none, or its supervisor is dead."""
    try:
        state = json.loads(state_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict) or not isinstance(state.get("servers"), list):
        return None
    return state if pid_alive(state.get("pid")) else None


def write_state(state: dict) -> None:
    """Replace the file at once: a reader sees the old state or the new one, never half of one."""
    path = state_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f"{path.name}.{os.getpid()}.part")
    part.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    os.replace(part, path)


def remove_state(pid: int) -> None:
    """Remove the file if supervisor ``pid`` wrote it (never another supervisor's)."""
    try:
        state = json.loads(state_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if isinstance(state, dict) and state.get("pid") == pid:
        state_path().unlink(missing_ok=True)


def served_urls() -> list[str]:
    """URLs of the servers a live `wanclip serve` has up now (not those restarting)."""
    state = read_state() or {}
    return [str(s["url"]) for s in state.get("servers", [])
            if isinstance(s, dict) and s.get("url") and s.get("status") == "ready"]


def served_warm() -> set[str]:
    """URLs of served servers whose models are loaded (`wanclip serve --warm`, or warmed since)."""
    state = read_state() or {}
    return {str(s["url"]) for s in state.get("servers", []) if isinstance(s, dict) and s.get("url") and s.get("warm")}


def default_servers() -> list[str]:
    """Servers when none is given: ``WANCLIP_SERVER``, else those of a running `wanclip serve`, else
    the local default."""
    return config.server_urls() or served_urls() or [DEFAULT_SERVER]


def pid_alive(pid: object) -> bool:
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    except OSError:
        return False
    return True
