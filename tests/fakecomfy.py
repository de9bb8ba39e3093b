"""A scriptable in-memory ComfyUI at the client's surface, for the render loop's pool tests.

The test decides everything (when a prompt starts, finishes, fails; when the server is down; which
answers get lost) and moves an injected clock, so outages of minutes and timeouts of half an hour are
milliseconds. The event socket is a queue read by the real ``EventStream`` thread.
"""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
from pathlib import Path

import imageio_ffmpeg
import websocket

from wanclip.errors import PromptRejected, ServerError


class Clock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def tiny_mp4(folder: Path) -> Path:
    """A real 5-frame 64x64 16 fps H.264 clip (what fetch_clip checks)."""
    path = Path(folder) / "tiny.mp4"
    if not path.exists():
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i",
                        "testsrc=size=64x64:rate=16", "-frames:v", "5", "-pix_fmt", "yuv420p", "-c:v", "libx264",
                        str(path)], check=True)
    return path


class FakeSocket:
    def __init__(self, server: FakeComfy):
        self.server, self.frames, self.connected = server, queue.Queue(), True

    def settimeout(self, timeout):
        self.timeout = timeout

    def recv(self):
        if self.server.crash_reader:
            self.server.crash_reader -= 1
            raise RuntimeError("a bug in a frame handler")
        try:
            frame = self.frames.get(timeout=0.05)
        except queue.Empty:
            if not self.connected:
                return ""
            raise websocket.WebSocketTimeoutException("idle") from None
        if frame is None:
            self.connected = False
            return ""
        return frame

    def ping(self):
        pass

    def close(self):
        self.connected = False


class FakeComfy:
    """One server. ``submit_answers``: what the next POSTs answer (``ok``, ``500``, ``400``, ``lost``:
    queued but the answer never arrives); ``down``: every request fails; ``failing``: operations
    (``queue``, ``interrupt``, ``delete``, ``history``) that answer HTTP 500."""

    def __init__(self, url: str, clip: Path):
        self.url, self.clip = url, clip
        self.pending: list[str] = []
        self.running: str | None = None
        self.history_entries: dict[str, dict] = {}
        self.posts: list[str] = []
        self.interrupts: list[str] = []
        self.deleted: list[str] = []
        self.submit_answers: list[str] = []
        self.failing: set[str] = set()
        self.down = False
        self.honour_interrupts = False  # an interrupt stops the running prompt at once
        self.crash_reader = 0
        self.sockets: list[FakeSocket] = []

    # -- the client's surface ------------------------------------------------------------------
    def _check(self, op: str) -> None:
        if self.down:
            raise ServerError(f"ComfyUI at {self.url} did not answer {op}: ConnectionError", server=self.url)
        if op in self.failing:
            raise ServerError(f"ComfyUI at {self.url} answered {op} with HTTP 500", server=self.url)

    def submit(self, graph: dict, client_id: str, prompt_id: str, front: bool = False) -> dict:
        self._check("submit")
        self.posts.append(prompt_id)
        answer = self.submit_answers.pop(0) if self.submit_answers else "ok"
        if answer == "500":
            raise ServerError(f"ComfyUI at {self.url} answered POST /prompt with HTTP 500", server=self.url)
        if answer == "400":
            raise PromptRejected("ComfyUI refused the prompt: Prompt outputs failed validation",
                                 node_errors={"81": {"errors": [{"message": "Value bigger than max"}]}})
        self.pending.append(prompt_id)
        if answer == "lost":
            raise ServerError(f"ComfyUI at {self.url} answered POST /prompt with HTTP 502", server=self.url)
        return {"prompt_id": prompt_id, "number": len(self.posts)}

    def queued_ids(self):
        self._check("queue")
        return ({self.running} if self.running else set()), set(self.pending)

    def history(self, prompt_id: str):
        self._check("history")
        return self.history_entries.get(prompt_id)

    def interrupt(self, prompt_id: str) -> None:
        self._check("interrupt")
        self.interrupts.append(prompt_id)
        if self.honour_interrupts and self.running == prompt_id:
            self.finish(ok=False)

    def delete_pending(self, prompt_ids: list[str]) -> None:
        self._check("delete")
        self.deleted += prompt_ids
        self.pending = [p for p in self.pending if p not in prompt_ids]

    def download(self, filename, subfolder, kind, dest, limit):
        self._check("view")
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.clip, dest)
        return dest

    def open_ws(self, client_id: str, timeout=None):
        self._check("ws")
        sock = FakeSocket(self)
        self.sockets.append(sock)
        return sock

    def close(self) -> None:
        pass

    # -- the test's levers ---------------------------------------------------------------------
    def send(self, message) -> None:
        frame = message if isinstance(message, str) else json.dumps(message)
        for sock in self.sockets:
            if sock.connected:
                sock.frames.put(frame)

    def start_next(self) -> str:
        self.running = self.pending.pop(0)
        self.send({"type": "execution_start", "data": {"prompt_id": self.running, "timestamp": 1}})
        self.send({"type": "executing", "data": {"prompt_id": self.running, "node": "81"}})
        return self.running

    def finish(self, ok: bool = True) -> str:
        pid, self.running = self.running, None
        if ok:
            outputs = {"90": {"gifs": [{"filename": f"{pid}.mp4", "subfolder": "", "type": "output"}]}}
            self.send({"type": "executed", "data": {"prompt_id": pid, "node": "90", "output": outputs["90"]}})
            status = {"status_str": "success", "completed": True, "messages": [
                ["execution_start", {"prompt_id": pid, "timestamp": 1}],
                ["execution_success", {"prompt_id": pid, "timestamp": 2}]]}
        else:
            outputs = {}
            status = {"status_str": "error", "completed": False, "messages": [
                ["execution_interrupted", {"prompt_id": pid, "node_id": "81", "node_type": "KSamplerAdvanced"}]]}
        self.history_entries[pid] = {"outputs": outputs, "status": status}
        self.send({"type": "executing", "data": {"prompt_id": pid, "node": None}})
        return pid

    def restart(self) -> None:
        """Lose the queue and the history (a ComfyUI restart); sockets drop."""
        self.pending, self.running, self.history_entries = [], None, {}
        for sock in self.sockets:
            sock.frames.put(None)
