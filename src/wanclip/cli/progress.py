"""Drawing a render: a line per shot and a film bar with an ETA (rich), JSON lines, or nothing."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

from wanclip.cli.base import console, print_json
from wanclip.render.events import RenderEvent

if TYPE_CHECKING:  # rich's live table is imported only where it is drawn (not for --quiet, --json, logs)
    from rich.table import Table

PHASES = {"model load": "loading models", "text encode": "encoding text", "decode": "decoding",
          "combine": "saving video", "high-noise sampler": "high-noise expert",
          "low-noise sampler": "low-noise expert", "other": "running"}


def cost(frames: int) -> float:
    """Relative GPU time of a shot: per step ≈ 0.086·L + 0.0036·L² in latent frames L (gpu-timings.md)."""
    latent = (frames - 1) // 4 + 1
    return latent * (0.086 + 0.0036 * latent)


class FilmProgress:
    """Film-level numbers: done count and an ETA from measured shot times, weighted by shot cost."""

    def __init__(self, frames: dict[str, int]):
        self.frames = frames
        self.done: set[str] = set()
        self.measured: list[tuple[float, float]] = []  # (seconds, cost)
        self.servers = 1
        self.started = time.monotonic()

    def eta(self) -> float | None:
        if not self.measured:
            return None
        rate = sum(s for s, _ in self.measured) / sum(c for _, c in self.measured)
        left = sum(cost(f) for name, f in self.frames.items() if name not in self.done)
        return rate * left / max(self.servers, 1)


# What a log (no terminal: CI, nohup, a pipe) gets: one line per change of a shot's state.
PLAIN = ("submitted", "reattached", "started", "done", "failed", "lost", "skipped", "submit_retry",
         "cancelling", "cancelled")
FILM_NOTES = ("stitching", "stitched", "stitch_kept", "server_down", "server_unreachable", "server_back",
              "socket_lost", "socket_back", "warning")


class RenderView:
    """Callable sink for ``RenderEvent``s. ``mode``: ``rich`` (live table), ``plain`` (a flushed line
    per shot state change, for logs), ``json`` or ``quiet``."""

    def __init__(self, mode: str, shots: list[tuple[int, str, int]]):
        self.mode = mode
        self.order = [name for _, name, _ in shots]
        self.status = {name: "pending" for name in self.order}
        self.server = {name: "" for name in self.order}
        self.film = FilmProgress({name: frames for _, name, frames in shots})
        self.note = ""
        self.live = None
        if mode == "rich":
            from rich.live import Live

            self.live = Live(self._table(), console=console, refresh_per_second=4, transient=False)

    def __enter__(self) -> RenderView:
        return self  # the live table starts with the first shot event: a refusal prints no table

    def __exit__(self, *exc) -> None:
        if self.live and self.live.is_started:
            self.live.update(self._table())
            self.live.stop()
            console.print()

    def __call__(self, event: RenderEvent) -> None:
        if self.mode == "json":
            print_json(event.to_json())
            return
        self._apply(event)
        if self.mode == "plain":
            self._plain(event)
            return
        if event.kind == "server" and self.mode == "rich":
            data = event.data
            console.print(f"{event.server}: ComfyUI {data.get('version')} on {data.get('device')}")
        if self.live and event.shot is not None:
            if not self.live.is_started:
                self.live.start()
            self.live.update(self._table())

    def _apply(self, event: RenderEvent) -> None:
        name, data = event.shot, event.data
        if event.kind == "plan":
            self.film.servers = len(data.get("servers") or [1])
        note = self._film_note(event)
        if note:
            self.note = note
        if name is None:
            return
        if event.server:
            self.server[name] = event.server.split("//")[-1]
        text = self._text(event, data)
        if text:
            self.status[name] = text
        if event.kind in ("done", "skipped"):
            self.film.done.add(name)
        if event.kind == "done":
            self.film.measured.append((float(data.get("seconds") or 0), cost(self.film.frames[name])))

    @staticmethod
    def _film_note(event: RenderEvent) -> str | None:
        data = event.data
        if event.kind == "server_unreachable":
            return (f"{data.get('server')} unreachable for {data.get('seconds')} s: waiting for it "
                    f"(up to {data.get('limit')} s, --timeout)")
        notes = {"stitching": "joining the clips into film.mp4 …", "stitched": "film.mp4 written",
                 "stitch_kept": "film.mp4 unchanged",
                 "server_down": f"{data.get('server')} stopped answering: its shots move to the other servers",
                 "server_back": f"{data.get('server')} answers again (after {data.get('seconds')} s)",
                 "socket_lost": f"event socket of {event.server} lost: reconnecting, following by polling",
                 "socket_back": f"event socket of {event.server} back",
                 "warning": str(data.get("message", ""))}
        return notes.get(event.kind)

    def _plain(self, event: RenderEvent) -> None:
        line = None
        if event.kind == "server":
            line = f"{event.server}: ComfyUI {event.data.get('version')} on {event.data.get('device')}"
        elif event.kind in PLAIN and event.shot is not None:
            where = f" on {event.server}" if event.server and event.kind in ("submitted", "started") else ""
            line = f"[{event.index}/{len(self.order)}] {event.shot}: {self.status.get(event.shot, '')}{where}"
        elif event.kind in FILM_NOTES:
            line = self._film_note(event)
        if line:
            print(line, file=sys.stdout, flush=True)

    def _text(self, event: RenderEvent, data: dict) -> str | None:
        kind = event.kind
        if kind == "progress" and data.get("label") in ("high-noise sampler", "low-noise sampler"):
            return f"{PHASES[data['label']]} step {data['value']}/{data['max']}"
        simple = {"submitted": "queued", "reattached": "queued (re-attached)", "started": "starting",
                  "skipped": "done (kept from an earlier run)"}
        if kind in simple:
            return simple[kind]
        if kind == "node":
            return PHASES.get(data.get("label", "other"), "running")
        if kind == "done":
            return f"done in {data.get('seconds', 0):.1f} s"
        if kind == "failed":
            error = data.get("error") or {}
            where = f" at {error.get('class')} (node {error.get('node')})" if error.get("class") else ""
            return f"failed{where}: {error.get('message', '')}"
        if kind == "lost":
            return f"lost ({data.get('reason', '')}): submitting again"
        if kind == "submit_retry":
            return f"not accepted yet ({data.get('reason', '')}): trying again in {data.get('retry_in', 0):g} s"
        if kind == "download_retry":
            return f"finished; its clip could not be fetched yet: trying again in {data.get('retry_in', 0):g} s"
        if kind == "cancelling":
            return "asked the server to stop it …"
        if kind == "cancelled":
            return f"stopped ({data.get('how', '')})"
        return None

    def _table(self) -> Table:
        from rich.table import Table
        from rich.text import Text

        table = Table(box=None, show_header=False, pad_edge=False)
        table.add_column(justify="right")
        table.add_column(no_wrap=True)
        several = self.film.servers > 1
        if several:
            table.add_column(no_wrap=True, style="dim")
        table.add_column()
        for index, name in enumerate(self.order, 1):
            state = self.status[name]
            style = "green" if state.startswith("done") else "red" if state.startswith("failed") else ""
            where = [self.server[name]] if several else []
            table.add_row(str(index), name, *where, Text(state, style=style))
        done, total = len(self.film.done), len(self.order)
        eta = self.film.eta()
        bar = "█" * round(20 * done / max(total, 1))
        eta_text = "ETA after the first shot" if eta is None else f"ETA {eta:.0f} s"
        spent = f"{eta_text}, {time.monotonic() - self.film.started:.0f} s so far"
        table.add_row("", f"film [{bar:<20}] {done}/{total}", *([""] if several else []),
                      f"{spent}{'; ' + self.note if self.note else ''}")
        return table
