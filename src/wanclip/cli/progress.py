"""Drawing a render: a line per shot and a film bar with an ETA (rich), JSON lines, or nothing."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

from wanclip.cli import base
from wanclip.cli.base import print_json, shown
from wanclip.render import events as ev
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


# What a log (no terminal: CI, nohup, a pipe) gets: one line per change of a shot's state, and the
# film's notes (stitching, a server or socket lost and back, warnings).
PLAIN = (ev.ShotQueued, ev.ShotReattached, ev.ShotStarted, ev.ShotDone, ev.ShotFailed, ev.ShotLost, ev.ShotSkipped,
         ev.ShotSubmitRetry, ev.ShotCancelling, ev.ShotCancelled, ev.PostQueued, ev.PostStarted, ev.PostDone,
         ev.PostFailed)


class RenderView:
    """Callable sink for the typed ``RenderEvent``s (matched by class). ``mode``: ``rich`` (live table), ``plain`` (a flushed line
    per shot state change, for logs), ``json`` or ``quiet``."""

    def __init__(self, mode: str, shots: list[tuple[int, str, int]], film_shots: int | None = None):
        """``shots``: (index in the film, name, frames) of the shots rendered (``--only``'s, or all);
        ``film_shots``: how many the film has (default: these)."""
        self.mode = mode
        self.order = [name for _, name, _ in shots]
        self.index = {name: index for index, name, _ in shots}
        self.film_shots = film_shots or len(shots)
        self.status = {name: "pending" for name in self.order}
        self.server = {name: "" for name in self.order}
        self.film = FilmProgress({name: frames for _, name, frames in shots})
        self.note = ""
        self.live = None  # rich's live table, made with the first shot event (after the first prompt's POST)

    def __enter__(self) -> RenderView:
        return self  # the live table starts with the first shot event: a refusal prints no table

    def __exit__(self, *exc) -> None:
        if self.live and self.live.is_started:
            self.live.update(self._table())
            self.live.stop()
            base.console.print()

    def __call__(self, event: RenderEvent) -> None:
        if self.mode == "json":
            print_json(event.to_json())
            return
        self._apply(event)
        if self.mode == "plain":
            self._plain(event)
            return
        if isinstance(event, ev.ServerFound) and self.mode == "rich":
            from rich.text import Text

            base.console.print(Text(shown(f"{event.server}: ComfyUI {event.version} on {event.device}")))
        if self.mode == "rich" and event.shot is not None:
            if self.live is None:
                from rich.live import Live

                self.live = Live(self._table(), console=base.console, refresh_per_second=4, transient=False)
            if not self.live.is_started:
                self.live.start()
            self.live.update(self._table())

    def _apply(self, event: RenderEvent) -> None:
        name = event.shot
        if isinstance(event, ev.FilmPlanned):
            self.film.servers = len(event.servers or [1])
        note = self._film_note(event)
        if note:
            self.note = shown(note)  # a server's or a file's words: their control characters made visible
        if name is None:
            return
        if event.server:
            self.server[name] = event.server.split("//")[-1]
        text = self._text(event)
        if text:
            self.status[name] = shown(text)
        if isinstance(event, ev.ShotClip) and not isinstance(event, ev.PostDone):
            self.film.done.add(name)
        if isinstance(event, ev.ShotDone):
            self.film.measured.append((float(event.seconds or 0), cost(self.film.frames[name])))

    @staticmethod
    def _film_note(event: RenderEvent) -> str | None:
        match event:
            case ev.ServerUnreachable(server=server, seconds=seconds, limit=limit, moves=True):
                return f"{server} unreachable for {seconds} s: its shots move to the other servers after {limit} s"
            case ev.ServerUnreachable(server=server, seconds=seconds, limit=limit):
                return f"{server} unreachable for {seconds} s: waiting for it (up to {limit} s, --timeout)"
            case ev.FilmStitching():
                return "joining the clips into film.mp4 …"
            case ev.FilmStitched():
                return "film.mp4 written"
            case ev.FilmKept():
                return "film.mp4 unchanged"
            case ev.ServerDown(server=server):
                return f"{server} stopped answering: its shots move to the other servers"
            case ev.ServerBack(server=server, seconds=seconds):
                return f"{server} answers again (after {seconds} s)"
            case ev.SocketLost(server=server):
                return f"event socket of {server} lost: reconnecting, following by polling"
            case ev.SocketBack(server=server):
                return f"event socket of {server} back"
            case ev.RenderWarning(message=message):
                return str(message)
        return None

    def _plain(self, event: RenderEvent) -> None:
        line = None
        if isinstance(event, ev.ServerFound):
            line = f"{event.server}: ComfyUI {event.version} on {event.device}"
        elif isinstance(event, PLAIN) and event.shot is not None:
            where = f" on {event.server}" if event.server and isinstance(event, ev.ShotQueued | ev.ShotStarted) else ""
            line = f"{self._counter(event.shot)}: {self.status.get(event.shot, '')}{where}"
        else:
            line = self._film_note(event)
        if line:
            print(shown(line), file=sys.stdout, flush=True)

    def _counter(self, name: str) -> str:
        """``[7/12] eggs-out``; with a selection (``--only``) it counts within it and says which
        shot of the film it is: ``[1/2] eggs-out (shot 7 of 12)``."""
        position = self.order.index(name) + 1 if name in self.order else self.index.get(name, 0)
        if len(self.order) == self.film_shots:
            return f"[{position}/{len(self.order)}] {name}"
        return f"[{position}/{len(self.order)}] {name} (shot {self.index.get(name, '?')} of {self.film_shots})"

    @staticmethod
    def _text(event: RenderEvent) -> str | None:
        """The shot's status line after ``event`` (None: unchanged)."""
        match event:
            case ev.ShotProgress(label="high-noise sampler" | "low-noise sampler" as label, value=value, max=most):
                return f"{PHASES[label]} step {value}/{most}"
            case ev.ShotQueued():
                return "queued"
            case ev.ShotReattached():
                return "queued (re-attached)"
            case ev.ShotStarted():
                return "starting"
            case ev.ShotSkipped():
                return "done (kept from an earlier run)"
            case ev.ShotNode(label=label):
                return PHASES.get(label, "running")
            case ev.ShotDone(seconds=seconds):
                return f"done in {seconds or 0:.1f} s"
            case ev.ShotFailed(error=error):
                error = error or {}
                where = f" at {error.get('class')} (node {error.get('node')})" if error.get("class") else ""
                return f"failed{where}: {error.get('message', '')}"
            case ev.ShotLost(reason=reason):
                return f"lost ({reason}): submitting again"
            case ev.ShotSubmitRetry(reason=reason, retry_in=retry_in):
                return f"not accepted yet ({reason}): trying again in {retry_in or 0:g} s"
            case ev.ShotDownloadRetry(retry_in=retry_in):
                return f"finished; its clip could not be fetched yet: trying again in {retry_in or 0:g} s"
            case ev.ShotCancelling():
                return "asked the server to stop it …"
            case ev.ShotCancelled(how=how):
                return f"stopped ({how})"
            case ev.PostQueued():
                return "done; post step queued"
            case ev.PostStarted():
                return "done; post step running"
            case ev.PostDone(seconds=seconds, frames=frames):
                return f"done, post clip ({frames} frames) in {seconds or 0:.1f} s"
            case ev.PostFailed(error=error):
                return f"failed post step (the clip is kept): {(error or {}).get('message', '')}"
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
        for name in self.order:  # numbered as in the film (`--only` shows shot 7 as 7)
            index = self.index[name]
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
                      Text(f"{spent}{'; ' + self.note if self.note else ''}"))
        return table
