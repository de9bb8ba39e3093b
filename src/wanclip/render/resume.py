"""Where a film stands when a render starts: the ledger merged with the plan.

A shot whose graph is unchanged and whose clip is intact stays done; one still on a server keeps its
prompt id (the render re-attaches to it); everything else starts over as pending. The hash of the
injected graph is the key: change a shot's prompt, seed or length and only that shot renders again.
"""

from __future__ import annotations

import uuid

from wanclip.files import sha256_file
from wanclip.ledger import Ledger, ShotRecord, ledger_path, load_ledger
from wanclip.planning.folders import shots_path
from wanclip.planning.plan import Plan, PlannedShot
from wanclip.planning.workflow import default_negative

ACTIVE = ("queued", "running")


def open_ledger(plan: Plan, force: bool = False, only: list[str] | None = None) -> Ledger:
    """The film's ledger, merged with ``plan`` and saved (created on the first render)."""
    plan.check_folder()  # under the folder's lock: no other film took it since the plan was made
    path = ledger_path(plan.out_dir)
    old = load_ledger(path) if path.exists() else Ledger(path=path)
    previous = {s.name: s for s in old.shots}
    film = plan.film
    client_id = old.film.get("client_id") or f"wanclip-{uuid.uuid4().hex[:12]}"
    ledger = Ledger(path=path, film={
        **{k: v for k, v in old.film.items() if k in ("stitched", "stitch_seconds")},
        "title": film.title, "slug": film.slug, "shots_file": str(plan.shots_file),
        "shots_path": shots_path(plan.shots_file), "fps": film.fps,
        "width": film.width, "height": film.height, "seconds": round(plan.seconds, 4),
        "workflow": str(plan.workflow), "client_id": client_id})
    forced = set(only or [])
    for shot in plan.shots:
        # --only re-renders the named shots (--force or not); a shot it does not name keeps its clip
        record = _merge(plan, shot, previous.get(shot.name), ledger, shot.name in forced if forced else force)
        if shot.continues:
            record = _after(record, ledger.shot(shot.continues))
        ledger.shots.append(record)
    ledger.save()
    return ledger


def _after(record: ShotRecord, before: ShotRecord) -> ShotRecord:
    """A chain link is only as current as the clip it started from: when its predecessor is to be
    rendered again, or was rendered again since, the link starts over (and so do the links after it,
    one by one, as the loop reaches them)."""
    current = before.status == "done" and record.start_sha256 == before.clip_sha256
    if record.status in ("done", *ACTIVE) and not current:
        return _fresh_copy(record)
    return record


def _fresh_copy(record: ShotRecord) -> ShotRecord:
    return ShotRecord(index=record.index, name=record.name, graph_sha256=record.graph_sha256, seed=record.seed,
                      frames=record.frames, width=record.width, height=record.height, fps=record.fps,
                      transition=record.transition, attempts=record.attempts, prompt=record.prompt,
                      style=record.style, negative=record.negative, continues=record.continues)


def _merge(plan: Plan, shot: PlannedShot, old: ShotRecord | None, ledger: Ledger, forced: bool) -> ShotRecord:
    own = plan.film.shots[shot.index - 1]
    style = own.style if own.style is not None else plan.film.style
    fresh = ShotRecord(index=shot.index, name=shot.name, graph_sha256=shot.graph_sha256, seed=shot.seed,
                       frames=shot.frames, width=shot.width, height=shot.height, fps=shot.fps,
                       transition=shot.transition.model_dump() if shot.transition else None,
                       prompt=shot.prompt, style=style.strip(), negative=default_negative(shot.graph, shot.roles),
                       continues=shot.continues)
    if old is None or old.graph_sha256 != shot.graph_sha256:
        return fresh
    old.index, old.transition, old.continues = shot.index, fresh.transition, fresh.continues
    old.prompt, old.style, old.negative = fresh.prompt, fresh.style, fresh.negative
    if old.status == "done" and not forced and clip_intact(old, ledger):
        return old
    if old.status in ACTIVE and old.prompt_id:
        return old  # re-attach: it may still be rendering (or be done) on its server
    fresh.attempts = old.attempts
    return fresh


def clip_intact(record: ShotRecord, ledger: Ledger) -> bool:
    path = ledger.clip_path(record)
    return bool(path and path.is_file() and sha256_file(path) == record.clip_sha256)
