"""A film's chains while it renders: which links may go, and the picture each one starts from.

The render loop asks ``Chains.ready(name)`` before it submits a shot. A shot that continues
another waits until that one's clip is verified; its start picture is then the predecessor's
decoded last frame (``continuity.last_frame``), moved towards the chain's first keyframe with
``colour_match`` on. A failed predecessor blocks the link (it fails with that reason and a rerun
finishes the chain). Pure bookkeeping over the plan and the ledger; the picture files are made
by ``wanclip.render.pictures``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from wanclip import media
from wanclip.errors import WanclipError
from wanclip.ledger import Ledger
from wanclip.planning.keyframes import keyframe_key
from wanclip.planning.plan import Plan, PlannedShot
from wanclip.planning.workflow import image_name
from wanclip.render import pictures as continuity
from wanclip.render.takes import take_last_frame


@dataclass(frozen=True)
class Ready:
    """``go`` (with the start picture for a chain link, else None), ``wait``, or ``blocked`` (why)."""

    verdict: str
    picture: Path | None = None
    why: str = ""


GO, WAIT = Ready("go"), Ready("wait")


class Chains:
    def __init__(self, plan: Plan, ledger: Ledger):
        self.plan, self.ledger = plan, ledger
        self.planned = {s.name: s for s in plan.shots}
        self.followed = {s.continues for s in plan.shots if s.continues}
        self.fitted: dict[str, dict[str, Path]] = {}  # shot -> role -> its keyframe fitted to the film
        self.starts: dict[str, tuple[str | None, Path]] = {}  # link -> (predecessor clip sha256, picture)

    def with_chains(self, names: list[str]) -> list[str]:
        """``--only`` a chain link: the links after it start from its clip, so they come too; a link
        whose predecessor has no clip yet brings the predecessor."""
        chosen = set(names)
        for shot in self.plan.shots:  # in film order, so a whole tail follows
            if shot.continues in chosen:
                chosen.add(shot.name)
        for shot in reversed(self.plan.shots):
            if shot.name in chosen and shot.continues and self.ledger.shot(shot.continues).status != "done":
                chosen.add(shot.continues)
        return [s.name for s in self.plan.shots if s.name in chosen]

    def keyframes(self, shot: PlannedShot) -> dict[str, Path]:
        """The shot's keyframes fitted to the film, in ``<film>/inputs/`` (made once)."""
        if shot.name not in self.fitted:
            folder = self.ledger.folder / continuity.INPUTS
            self.fitted[shot.name] = {
                role: continuity.prepare_keyframe(
                    path, shot.width, shot.height,
                    folder / image_name(keyframe_key(path, shot.width, shot.height)))
                for role, path in shot.keyframes.items()}
        return self.fitted[shot.name]

    def last_frame_path(self, shot: PlannedShot) -> Path | None:
        """Where the shot's last frame goes when a later shot continues from it, else None."""
        return self._last_path(shot) if shot.name in self.followed else None

    def start_sha256(self, name: str) -> str | None:
        """The predecessor clip a link starts from (its ledger identity), None for other shots."""
        before = self.planned[name].continues
        return self.ledger.chained_sha256(self.ledger.shot(before)) if before else None

    def ready(self, name: str) -> Ready:
        before_name = self.planned[name].continues
        if before_name is None:
            return GO
        before = self.ledger.shot(before_name)
        if before.status == "failed":
            return Ready("blocked", why=f"it continues from shot {before_name}, which failed; once that one "
                         "renders, rerun the same command and this one follows")
        if before.status != "done":
            return WAIT
        known, chained = self.starts.get(name), self.ledger.chained_sha256(before)
        if known is None or known[0] != chained:
            try:
                known = (chained, self._start_picture(name, before))
            except (ValueError, WanclipError) as exc:
                return Ready("blocked", why=f"the last frame of shot {before_name} could not be read: {exc}")
            self.starts[name] = known
        return Ready("go", known[1])

    def _last_path(self, shot: PlannedShot) -> Path:
        return self.ledger.folder / "clips" / f"{shot.stem}.last.png"

    def _last_frame(self, record) -> Path:
        """The record's decoded last frame, decoded now when an earlier run made the clip without it."""
        folder = self.ledger.folder
        take = self.ledger.film_take(record)
        if take is not None and take.get("take") != record.take:  # pinned to an earlier take: its own frame
            clip = folder / take["clip"]
            last = take_last_frame(clip, take.get("take"))
            if not last.is_file():
                info = media.probe(clip)
                last = continuity.last_frame(clip, info.frames, info.width, info.height, last)
            return last
        last = folder / record.last_frame if record.last_frame else self._last_path(self.planned[record.name])
        if not last.is_file():
            last = continuity.last_frame(folder / record.clip, record.frames, record.width, record.height, last)
        return last

    def _start_picture(self, name: str, before) -> Path:
        last = self._last_frame(before)
        reference = self._reference(before.name)
        if not self.plan.film.colour_match or reference is None or reference == last:
            return last
        stem = self.planned[name].stem
        return continuity.next_input(last, reference, self.ledger.folder / continuity.INPUTS / f"{stem}.start.png")

    def _reference(self, name: str) -> Path | None:
        """The chain's first keyframe: the head's own start keyframe, else the head's last frame."""
        head = self.planned[name]
        while head.continues:
            head = self.planned[head.continues]
        own = self.keyframes(head).get("start_image")
        if own is not None:
            return own
        record = self.ledger.shot(head.name)
        return self._last_frame(record) if record.status == "done" and record.clip else None
