"""The storyboard's model: a card per shot, read from its ledger record (and the shots file), and
the rows the page lays them in.

A chain (a shot and the shots that continue it, each starting on the last frame of the one
before) is one row of joined cards; every other card stands alone. Nothing here writes a file:
``storyboard.py`` reads the folder, ``page.py`` renders the model.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from wanclip.ledger import Ledger, ShotRecord
from wanclip.planning import timeline
from wanclip.planning.shots import Film
from wanclip.review.timings import time_split

LIVE = ("pending", "queued", "running")


@dataclass(frozen=True)
class Prompt:
    """A shot's prompt as sent, in its pieces: the shot's own text, the style suffix, the negative."""

    text: str
    style: str = ""
    negative: str | None = None


@dataclass(frozen=True)
class Card:
    """One shot on the page."""

    index: int
    name: str
    status: str
    seed: int
    frames: int
    fps: float
    prompt: Prompt | None
    command: str
    server: str | None = None
    error: dict | None = None
    transition: dict | None = None
    node_seconds: dict[str, float] = field(default_factory=dict)
    clip: str | None = None  # relative to the film folder
    poster: str | None = None
    continues: str | None = None  # the name of the shot whose last frame this one starts from
    last_frame: str | None = None  # this clip's decoded last frame (relative), when a link starts from it
    keyframe: str | None = None  # the picture it starts from (``image:``, as the shots file names it)
    end_image: str | None = None  # the picture it lands on (``end_image:``)

    @property
    def seconds(self) -> float:
        return self.frames / self.fps if self.fps else 0.0

    @property
    def film_seconds(self) -> float:
        """Its seconds in the film: a continued clip's first frame (the one before's last) is dropped."""
        kept = timeline.kept_frames(self.frames, self.continues is not None)
        return kept / self.fps if self.fps else 0.0

    @property
    def render_seconds(self) -> float:
        return sum(self.node_seconds.values())


@dataclass(frozen=True)
class Storyboard:
    """What the page shows: the film, then a card per shot in order."""

    title: str
    cards: list[Card]
    film: str | None = None  # relative link to film.mp4 when it exists
    film_seconds: float | None = None
    stitch_seconds: float | None = None
    updated: str = ""

    @property
    def live(self) -> bool:
        """Some shot is still to come: the page reloads itself until none is."""
        return any(c.status in LIVE for c in self.cards)

    def time_split(self) -> dict[str, float]:
        split = time_split([c.node_seconds for c in self.cards])
        if self.stitch_seconds:
            split["stitch"] = float(self.stitch_seconds)
        return split

    def rows(self) -> list[list[Card]]:
        """The cards in film order, each chain together: a card that continues the card before it
        joins that card's row; every other card stands alone."""
        return chain_rows(self.cards)


def chain_rows(cards: list[Card]) -> list[list[Card]]:
    """``[[01], [02, 03, 04], [05]]`` when 03 continues 02 and 04 continues 03."""
    rows: list[list[Card]] = []
    for card in cards:
        if rows and card.continues is not None and card.continues == rows[-1][-1].name:
            rows[-1].append(card)
        else:
            rows.append([card])
    return rows


def command_base(folder: Path, ledger: Ledger, shots_path, film: Film | None) -> str:
    """``wanclip render SHOTS`` (plus ``--out`` when the folder is not where SHOTS renders by default)."""
    words = ["wanclip", "render", str(shots_path or "SHOTS.yaml")]
    slug = film.slug if film else ledger.film.get("slug") or folder.name
    default = Path(film.out) if film and film.out else Path("out") / slug
    if default.resolve() != folder.resolve():
        words += ["--out", str(folder)]
    return shlex.join(words)


def card_of(folder: Path, record: ShotRecord, film: Film | None, command: str, poster: str | None) -> Card:
    """A ledger record's card; a link to a file the folder does not have is left out."""
    clip = relative_link(record.clip) if record.status == "done" else None
    last_frame = relative_link(getattr(record, "last_frame", None))
    shot = next((s for s in film.shots if s.name == record.name), None) if film else None
    return Card(
        index=record.index, name=record.name, status=record.status, seed=record.seed, frames=record.frames,
        fps=record.fps, prompt=shot_prompt(record, film), server=record.server, error=record.error,
        transition=record.transition, node_seconds=dict(record.node_seconds or {}),
        clip=clip if clip and (folder / clip).is_file() else None, poster=poster,
        command=f"{command} --only {shlex.quote(record.name)}",
        continues=getattr(record, "continues", None),
        last_frame=last_frame if last_frame and (folder / last_frame).is_file() else None,
        keyframe=getattr(shot, "image", None), end_image=getattr(shot, "end_image", None))


def shot_prompt(record: ShotRecord, film: Film | None) -> Prompt | None:
    """The prompt as the ledger recorded it; for older ledgers, as the shots file builds it."""
    sent = getattr(record, "prompt", None)
    if sent:
        style = getattr(record, "style", None) or ""
        return Prompt(*split_style(sent, style), negative=getattr(record, "negative", None))
    shot = next((s for s in film.shots if s.name == record.name), None) if film else None
    if shot is None:
        return None
    index = film.shots.index(shot) + 1
    style = shot.style if shot.style is not None else film.style
    negative = shot.negative if shot.negative is not None else film.negative
    return Prompt(*split_style(film.shot_prompt(index), style), negative=negative)


def split_style(prompt: str, style: str) -> tuple[str, str]:
    """``("a tomato, warm light", "warm light")`` -> ``("a tomato", "warm light")``."""
    suffix = (style or "").strip()
    if suffix and prompt.endswith(suffix) and len(prompt) > len(suffix):
        return prompt[: -len(suffix)].rstrip().rstrip(",").rstrip(), suffix
    return prompt, ""


def relative_link(link: str | None) -> str | None:
    """A link inside the film folder, or None (the page links nothing outside it)."""
    if not link:
        return None
    path = PurePosixPath(str(link).replace("\\", "/"))
    if not path.parts or path.is_absolute() or ".." in path.parts or ":" in path.parts[0]:
        return None
    return path.as_posix()
