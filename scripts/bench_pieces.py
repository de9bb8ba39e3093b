"""Benchmark: stitch while rendering (pieces) vs today's one-graph stitch after the render.

Renders the 12-shot film (81 frames, 832x480) on the simulator, twice, each time on a fresh
simulator and film folder:

* pieces: ``render_film`` with ``on_event`` feeding ``FilmPieces`` the ``done`` events (the body
  and transition pieces are encoded in a background ffmpeg at low priority while later shots
  render), then ``finish()`` (the last pieces, the stream copy, the contact sheet);
* one graph: ``render_film``, then ``stitch_film(pieces=False)`` (one ffmpeg graph re-encodes
  the whole film), then the contact sheet from the clips, as today.

"Ideal" is what no client can beat: the server's busy time (its own execution log) plus the
encode of one piece (the longest body piece of the pieces run), which must follow the last
shot. "Last done -> film" is the wait from the last clip's ``done`` event to the film renamed
into place; the contact sheet comes after that in both runs and is shown on its own. The idle
gap is the server's time between two shots (its timestamps): the background encoder must not
widen it. Everything runs on (at most) 2 CPU cores, like CI.

Usage: python scripts/bench_pieces.py [--shots 12] [--load 2] [--step 0.25] [--size 832x480] [--cores 2]
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

from bench_render import (  # this folder is on sys.path when run as a script
    film_file,
    film_parser,
    gaps,
    ideal,
)
from wanclip.media import probe
from wanclip.planning.plan import plan_film
from wanclip.render.loop import RenderOptions, render_film
from wanclip.sim import serve_in_thread
from wanclip.stitch import join as stitch
from wanclip.stitch.contact_sheet import write_contact_sheet
from wanclip.stitch.pieces import FilmPieces


def server_times(log: list[dict]) -> tuple[float, list[float]]:
    """The server's busy seconds and its idle gaps between shots, from its execution log."""
    return ideal([log]), gaps(log)


def cuts_of(out: Path) -> tuple[list, list[str]]:
    film = stitch.film_clips(out)
    return film.cuts, film.names


def run(kind: str, shots: Path, folder: Path, load: float, step: float) -> dict:
    sim = serve_in_thread(folder / f"comfy-{kind}", load_seconds=load, step_seconds=step)
    out = folder / f"out-{kind}"
    try:
        plan = plan_film(shots, out=out)
        options = RenderOptions(servers=[sim.url], stitch=False)
        last_done = [0.0]
        film_pieces: FilmPieces | None = None

        def on_event(event) -> None:
            if event.kind == "done":
                last_done[0] = time.monotonic()
                if film_pieces is not None and event.index and event.data.get("clip"):
                    film_pieces.clip_ready(event.index - 1, out / event.data["clip"])

        if kind == "pieces":  # the cuts as the ledger will record them
            cuts = [stitch.ledger_cut(s.transition.model_dump() if s.transition else None, None, None)
                    for s in plan.shots[1:]]
            film_pieces = FilmPieces(out, cuts, names=[s.name for s in plan.shots])
        start = time.monotonic()
        try:
            render_film(plan, options, on_event)
            rendered = time.monotonic()
            if film_pieces is not None:
                result = film_pieces.finish()
                film_at = film_pieces.film_written_at
                sheet_s = time.monotonic() - film_at
                piece_s = max(s for n, s in film_pieces.seconds.items() if n.startswith("body-"))
                pieces_after = sum(1 for t in film_pieces.finished_at.values() if t > rendered)
            else:
                result = stitch.stitch_film(out, contact_sheet=False, pieces=False)
                film_at = time.monotonic()
                _, names = cuts_of(out)
                infos = [probe(p) for p in stitch.film_clips(out).paths]
                write_contact_sheet(list(zip(names, infos, strict=True)), out)
                sheet_s = time.monotonic() - film_at
                piece_s = None
                pieces_after = None
        finally:
            if film_pieces is not None:
                film_pieces.close()
        busy, gaps = server_times(sim.log())
        return {"run": kind, "film_s": film_at - start, "busy": busy, "piece_s": piece_s,
                "after_done": film_at - last_done[0], "sheet_s": sheet_s, "frames": result.frames,
                "gap_median": statistics.median(gaps) * 1000 if gaps else 0.0,
                "gap_max": max(gaps) * 1000 if gaps else 0.0, "pieces_after": pieces_after,
                "encoded": len(film_pieces.encoded) if film_pieces else None}
    finally:
        sim.stop()


def main() -> None:
    parser = film_parser(__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):  # ffmpeg and the simulator inherit it
        cores = sorted(os.sched_getaffinity(0))[: args.cores]
        os.sched_setaffinity(0, cores)
    width, height = (int(v) for v in args.size.split("x"))
    rows = []
    with tempfile.TemporaryDirectory(prefix="wanclip-bench-pieces-") as tmp:
        folder = Path(tmp)
        shots = film_file(folder, args.shots, width, height)
        for kind in ("pieces", "one-graph"):
            rows.append(run(kind, shots, folder, args.load, args.step))
    ideal = rows[0]["busy"] + rows[0]["piece_s"]
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{args.shots} shots of 81 frames at {width}x{height}; simulated load {args.load} s, {args.step} s per "
          f"step; {cpus} CPU cores; ideal = server busy {rows[0]['busy']:.2f} s + one body piece "
          f"{rows[0]['piece_s']:.2f} s = {ideal:.2f} s\n")
    print(f"{'stitch':10} {'start->film s':>13} {'ideal s':>8} {'film/ideal':>10} {'last done->film s':>17} "
          f"{'+ contact sheet s':>17} {'server gap median ms':>20} {'max ms':>7} {'frames':>6}")
    for r in rows:
        print(f"{r['run']:10} {r['film_s']:>13.2f} {ideal:>8.2f} {r['film_s'] / ideal:>10.3f} {r['after_done']:>17.2f} "
              f"{r['sheet_s']:>17.2f} {r['gap_median']:>20.1f} {r['gap_max']:>7.1f} {r['frames']:>6}")
    p = rows[0]
    print(f"\npieces: {p['encoded']} encoded, {p['pieces_after']} of them finished after the last shot")


if __name__ == "__main__":
    main()
