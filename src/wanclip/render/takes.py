"""A shot's takes: every clip it was rendered to, kept until the user prunes them.

Re-rendering a done shot (a changed prompt or seed, ``--force``, ``--reseed``) never replaces its
clip: the clip becomes an earlier take in the ledger (``ShotRecord.takes``) and the new render is the
next take, in a file of its own (take 1: ``clips/NN_name.mp4``; take N: ``clips/NN_name.take<N>.mp4``,
NN the shot's position then). A clip whose bytes changed since it was rendered is the user's (a
grade, a trim): the film uses it and it is never overwritten. Only ``wanclip takes --prune`` deletes
a take, and only one the film does not use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from wanclip import media
from wanclip.errors import WanclipError
from wanclip.files import sha256_file
from wanclip.ledger import Ledger, ShotRecord, inside, take_of

INTACT, EDITED, DAMAGED, MISSING = "intact", "edited", "damaged", "missing"


def take_stem(record: ShotRecord, folder: Path | None = None) -> str:
    """The clip file name (without ``.mp4``) the record's take renders to. A file already there that
    the ledger does not know (a removed shot's clip, say) is never overwritten: a suffix avoids it."""
    stem = f"{record.index:02d}_{record.name}" + (f".take{record.take}" if record.take > 1 else "")
    if folder is None:
        return stem
    base, n = stem, 1
    while (folder / "clips" / f"{stem}.mp4").exists() and f"clips/{stem}.mp4" != record.clip:
        n += 1
        stem = f"{base}-{n}"
    return stem


def clip_state(record: ShotRecord, ledger: Ledger) -> tuple[str, str | None]:
    """Whether a done record's clip is as rendered, changed by the user (with its sha256 now), changed
    into something that is no video (damaged: kept, and the shot renders again), or gone."""
    path = ledger.clip_path(record)
    if not path or not path.is_file():
        return MISSING, None
    sha = sha256_file(path)
    if sha == record.clip_sha256:
        return INTACT, sha
    try:
        media.probe(path)
    except WanclipError:
        return DAMAGED, sha
    return EDITED, sha


def next_take(old: ShotRecord, fresh: ShotRecord, ledger: Ledger,
              state: tuple[str, str | None] | None = None) -> ShotRecord:
    """``fresh`` as the next take of ``old``'s shot: ``old``'s clip, when it has one on disk, becomes an
    earlier take (marked ``edited`` when the user changed its bytes); a render that left no clip (a
    failure, a deleted file) is not a take, and the number is used again. ``state``: ``old``'s
    ``clip_state`` when the caller has just read it (the clip is not hashed twice)."""
    fresh.takes, fresh.take, fresh.attempts = list(old.takes), old.take, old.attempts
    if old.status == "done" and old.clip:
        state, sha = state or clip_state(old, ledger)
        if state != MISSING:
            kept = take_of(old)
            kept["edited"] = state in (EDITED, DAMAGED)
            kept["edited_sha256"] = sha if state in (EDITED, DAMAGED) else None
            fresh.takes.append(kept)
            fresh.take = max(t["take"] for t in fresh.takes) + 1
            fresh.attempts = 0
    return fresh


def refresh_earlier(record: ShotRecord, number: int, ledger: Ledger) -> None:
    """An earlier take the film uses, its ``edited`` marks brought up to date with its file (the user
    may have graded it since it became a take); a missing file is left for the stitch to name."""
    for take in record.takes:
        if take["take"] != number or not take.get("clip") or not (ledger.folder / take["clip"]).is_file():
            continue
        sha = sha256_file(ledger.folder / take["clip"])
        if sha != (take.get("edited_sha256") or take.get("clip_sha256")):
            take["edited"], take["edited_sha256"] = sha != take.get("clip_sha256"), \
                sha if sha != take.get("clip_sha256") else None


def restore_take(record: ShotRecord) -> ShotRecord:
    """The newest earlier take made current again (the newest render left no clip): for a shot whose
    film uses an earlier take."""
    if record.status == "done" or not record.takes:
        return record
    last = record.takes.pop()
    record.take, record.clip, record.clip_sha256 = last["take"], last["clip"], last["clip_sha256"]
    record.seed, record.prompt, record.graph_sha256 = last["seed"], last["prompt"], last["graph_sha256"]
    record.rendered_at, record.edited_sha256 = last.get("rendered_at"), last.get("edited_sha256")
    record.status, record.error, record.prompt_id = "done", None, None
    return record


def all_takes(record: ShotRecord) -> list[dict]:
    """Every take of the shot with a clip, oldest first (the newest when it is done)."""
    takes = [t for t in record.takes if t.get("clip")]
    if record.status == "done" and record.clip:
        takes.append(take_of(record))
    return takes


@dataclass(frozen=True)
class Prunable:
    shot: str
    take: int
    clip: str  # relative to the film folder
    removed: bool = False  # the shot is no longer in the film
    post: str | None = None  # a post clip (its key), not a take: one the film does not use


def prunable(ledger: Ledger, names: list[str] | None = None) -> list[Prunable]:
    """What ``--prune`` deletes (of ``names``' shots, or all): the earlier takes the film does not use,
    and every take of a shot taken out of the film. Never the take the film uses, never the newest."""
    out = []
    for record in ledger.shots:
        if names and record.name not in names:
            continue
        used = ledger.film_take(record)
        for take in record.takes:
            if _deletable(ledger, take) and (used is None or take["take"] != used["take"]):
                out.append(Prunable(record.name, take["take"], take["clip"]))
        out += _posts_unused(ledger, record)
    for record in ledger.removed:
        if not names or record.name in names:
            out += [Prunable(record.name, t["take"], t["clip"], removed=True) for t in all_takes(record)
                    if _deletable(ledger, t)]
            out += _posts_unused(ledger, record, removed=True)
    return out


def _posts_unused(ledger: Ledger, record: ShotRecord, removed: bool = False) -> list[Prunable]:
    """The shot's post clips the film does not use (made with other post settings, or from another
    take or version of the clip), as wanclip made them."""
    used = None if removed else (ledger.post_clip(record) or {}).get("clip")
    return [Prunable(record.name, 0, p["clip"], removed=removed, post=p.get("key"))
            for p in record.posts if isinstance(p, dict) and p.get("clip") != used and _deletable(ledger, p)]


def take_last_frame(clip: Path, number: int) -> Path:
    """Where the last frame of take ``number`` (clip ``clip``) goes when a chain link continues from
    that take while it is not the newest: ``NN_name.takeN.last.png``, never the newest take's
    ``clips/NN_name.last.png``."""
    stem = clip.stem if clip.stem.endswith(f".take{number}") else f"{clip.stem}.take{number}"
    return clip.with_name(f"{stem}.last.png")


def _deletable(ledger: Ledger, take: dict) -> bool:
    """A take's clip --prune may delete: one wanclip rendered, in the film folder, that the user did
    not change since (an edited take is the user's work: it is listed as kept, never deleted)."""
    clip = inside(ledger.folder, take.get("clip"))
    if clip is None or take.get("edited") or take.get("edited_sha256"):
        return False
    try:  # changed since it was rendered, whether or not a render saw it: the user's
        return not clip.is_file() or sha256_file(clip) == take.get("clip_sha256")
    except OSError:
        return False


def prune(ledger: Ledger, items: list[Prunable]) -> list[str]:
    """Delete ``items``' clips and forget them in the ledger (saved after each); their paths."""
    deleted = []
    for item in items:
        clip = inside(ledger.folder, item.clip)
        if clip is None:  # prunable() never lists one; a caller's own list is held to the same rule
            continue
        clip.unlink(missing_ok=True)
        if item.post is None:
            take_last_frame(clip, item.take).unlink(missing_ok=True)  # its last frame, made for a chain
            _change(ledger, item, lambda record, take=item.take: _forget(record, take))
        else:
            _change(ledger, item, lambda record, done=item.clip: _forget_post(record, done))
        ledger.save()
        deleted.append(item.clip)
    return deleted


def _change(ledger: Ledger, item: Prunable, change: Callable[[ShotRecord], None]) -> None:
    """``change`` the record of ``item``'s shot: the film's, or the one kept for a shot taken out of it."""
    if item.removed:
        removed = ledger.removed
        for record in removed:
            if record.name == item.shot:
                change(record)
        ledger.set_removed(removed)
    else:
        change(ledger.shot(item.shot))


def _forget_post(record: ShotRecord, clip: str) -> None:
    record.posts = [p for p in record.posts if not (isinstance(p, dict) and p.get("clip") == clip)]


def _forget(record: ShotRecord, take: int) -> None:
    if record.take == take and record.status == "done":
        record.clip = record.clip_sha256 = None  # a removed shot's newest take: nothing left to restore
        record.status = "pending"
    record.takes = [t for t in record.takes if t["take"] != take]
