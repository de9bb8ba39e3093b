"""Where a film stands when a render starts: the ledger merged with the plan, and why.

A shot is known by its name. A shot whose graph is unchanged and whose clip is on disk stays done
(a clip the user changed is theirs: ``edited``, used in the film, never overwritten); one still on a
server keeps its prompt id (the render re-attaches to it); a shot whose film uses a pinned take that
exists is not rendered; everything else renders, as the next take when it has a clip already
(``render.takes``). The hash of the injected graph (``planning.identity``) is the key: change a
shot's prompt, seed or length and only that shot renders again; insert, remove or reorder shots and
none does. ``merge_ledger`` says for each shot what render will do and why (``plan`` prints it).

Chains: a link is only as current as its predecessor's clip as rendered (``clip_sha256``). A
predecessor the user edited (a colour grade) leaves its links alone: they keep the clips they started
from; a new take of the predecessor makes its links render again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from wanclip.ledger import Ledger, ShotRecord, ledger_path, load_ledger
from wanclip.planning.folders import shots_path
from wanclip.planning.identity import legacy_identity_sha256
from wanclip.planning.plan import Plan, PlannedShot
from wanclip.planning.workflow import default_negative
from wanclip.render.takes import (
    DAMAGED,
    EDITED,
    MISSING,
    clip_state,
    next_take,
    refresh_earlier,
    restore_take,
)

ACTIVE = ("queued", "running")
KEEP, EDIT, PINNED, RENDER, REATTACH = "keep", "edited", "pinned", "render", "re-attach"


@dataclass(frozen=True)
class Decision:
    """What render will do with a shot: ``action`` (keep, edited, pinned, render, re-attach) and why."""

    action: str
    reason: str

    @property
    def renders(self) -> bool:
        return self.action == RENDER

    def describe(self, name: str) -> str:
        if self.action == EDIT:
            return f"clip {name} changed since it was rendered: using your version"
        if self.action == RENDER:
            return f"will render: {self.reason}"
        return self.reason


def open_ledger(plan: Plan, force: bool = False, only: list[str] | None = None,
                film: dict | None = None) -> Ledger:
    """The film's ledger, merged with ``plan``, with ``film``'s keys added to its ``film``, and saved
    (created on the first render): one write (and fsync) on the way to the first prompt."""
    plan.check_folder()  # under the folder's lock: no other film took it since the plan was made
    ledger, _ = merge_ledger(plan, force, only)
    ledger.film.update(film or {})
    ledger.save()
    return ledger


def merge_ledger(plan: Plan, force: bool = False, only: list[str] | None = None
                 ) -> tuple[Ledger, dict[str, Decision]]:
    """The ledger as the render will start from it (not saved), and each shot's ``Decision``."""
    path = ledger_path(plan.out_dir)
    old = load_ledger(path) if path.exists() else Ledger(path=path)
    previous = {s.name: s for s in [*old.removed, *old.shots]}  # a shot put back comes back with its takes
    film = plan.film
    client_id = old.film.get("client_id") or f"wanclip-{uuid.uuid4().hex[:12]}"
    ledger = Ledger(path=path, film={
        **{k: v for k, v in old.film.items() if k in ("stitched", "stitch_seconds")},
        "title": film.title, "slug": film.slug, "shots_file": str(plan.shots_file),
        "shots_path": shots_path(plan.shots_file), "fps": film.fps,
        "width": film.width, "height": film.height, "seconds": round(plan.seconds, 4),
        "workflow": str(plan.workflow), "client_id": client_id, "seed_base": film.seed_base,
        "take_pins": dict(plan.take_pins)})
    forced = set(only or [])
    decisions: dict[str, Decision] = {}
    for shot in plan.shots:
        before = previous.get(shot.name)
        if before is not None:
            _migrate(before, shot, old.film.get("slug"))
        # --only re-renders the named shots (--force or not); a shot it does not name keeps its clip
        record, decision = _merge(plan, shot, before, ledger, shot.name in forced if forced else force)
        if shot.continues:
            record, decision = _after(record, decision, ledger.shot(shot.continues), ledger)
        if before is not None and record is not before:  # a new take: the post clips made so far stay known
            record.posts, record.post = list(before.posts or []), before.post
        record.post_key = shot.post.key if shot.post else None
        ledger.shots.append(record)
        decisions[shot.name] = decision
    ledger.set_removed([r for name, r in previous.items() if name not in decisions])
    return ledger, decisions


def _migrate(record: ShotRecord, shot: PlannedShot, slug: str | None) -> None:
    """A record written before shot identity hashed the whole graph, its index in the output's
    prefix: recognised by that hash and given today's, so its done shot stays done."""
    if record.graph_sha256 != shot.graph_sha256 and slug and \
            legacy_identity_sha256(shot.graph, shot.roles, slug, record.index, shot.name) == record.graph_sha256:
        record.graph_sha256 = shot.graph_sha256


def _after(record: ShotRecord, decision: Decision, before: ShotRecord, ledger: Ledger
           ) -> tuple[ShotRecord, Decision]:
    """A chain link is only as current as the clip it started from: when its predecessor is to be
    rendered again, was rendered again since, or is pinned to another take (the film's clip of it is
    what the link must continue), the link starts over as its next take (and so do
    the links after it, one by one, as the loop reaches them)."""
    current = before.status == "done" and record.start_sha256 == ledger.chained_sha256(before)
    if record.status in ("done", *ACTIVE) and not current:
        fresh = next_take(record, _fresh_copy(record), ledger)
        return fresh, Decision(RENDER, f"it continues {before.name}, which renders again")
    return record, decision


def _fresh_copy(record: ShotRecord) -> ShotRecord:
    return ShotRecord(index=record.index, name=record.name, graph_sha256=record.graph_sha256, seed=record.seed,
                      frames=record.frames, width=record.width, height=record.height, fps=record.fps,
                      transition=record.transition, attempts=record.attempts, prompt=record.prompt,
                      style=record.style, negative=record.negative, continues=record.continues,
                      take=record.take, takes=list(record.takes), use_take=record.use_take,
                      seed_source=record.seed_source)


def _merge(plan: Plan, shot: PlannedShot, old: ShotRecord | None, ledger: Ledger, forced: bool
           ) -> tuple[ShotRecord, Decision]:
    own = plan.film.shots[shot.index - 1]
    style = own.style if own.style is not None else plan.film.style
    fresh = ShotRecord(index=shot.index, name=shot.name, graph_sha256=shot.graph_sha256, seed=shot.seed,
                       frames=shot.frames, width=shot.width, height=shot.height, fps=shot.fps,
                       transition=shot.transition.model_dump() if shot.transition else None,
                       prompt=shot.prompt, style=style.strip(), negative=default_negative(shot.graph, shot.roles),
                       continues=shot.continues, use_take=shot.take, seed_source=shot.seed_source)
    if old is None:
        return fresh, Decision(RENDER, "new shot")
    old.index, old.transition, old.continues, old.use_take = shot.index, fresh.transition, fresh.continues, shot.take
    if shot.take is not None and not forced and not shot.reseed and old.status not in ACTIVE:
        if old.status == "done":
            state, sha = clip_state(old, ledger)
            old.edited_sha256 = sha if state == EDITED else None
        refresh_earlier(old, shot.take, ledger)
        return restore_take(old), Decision(PINNED, f"take {shot.take} pinned")
    if old.graph_sha256 != shot.graph_sha256:
        return next_take(old, fresh, ledger), Decision(RENDER, _changed(old, shot))
    old.prompt, old.style, old.negative, old.seed_source = fresh.prompt, fresh.style, fresh.negative, shot.seed_source
    if old.status == "done":
        state, sha = clip_state(old, ledger)
        if state == MISSING:
            return next_take(old, fresh, ledger, (state, sha)), Decision(RENDER, "clip missing")
        if state == DAMAGED:  # not a video any more: kept as an earlier take all the same
            return next_take(old, fresh, ledger, (state, sha)), Decision(RENDER, "clip damaged (not a readable video; kept)")
        if forced:
            return next_take(old, fresh, ledger, (state, sha)), Decision(RENDER, "forced")
        old.edited_sha256 = sha if state == EDITED else None
        return old, Decision(EDIT, "using your version") if state == EDITED else Decision(KEEP, "done")
    if old.status in ACTIVE and old.prompt_id:
        return old, Decision(REATTACH, "still on its server: re-attach")  # it may be rendering (or done) there
    reason = "failed before" if old.status == "failed" else "not finished"
    return next_take(old, fresh, ledger), Decision(RENDER, reason)


def _changed(old: ShotRecord, shot: PlannedShot) -> str:
    if shot.reseed:
        return "reseed"
    if old.seed != shot.seed:
        return "seed changed"
    if old.prompt != shot.prompt:
        return "prompt changed"
    return "settings changed"

