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
from wanclip.urls import redact


@dataclass(frozen=True)
class Take:
    """One render of a shot (the ledger's ``takes`` entries and the record itself, the newest)."""

    number: int
    clip: str | None  # relative to the film folder; None when the file is not there
    seed: int | None = None
    rendered_at: str | None = None  # ISO-8601 UTC
    prompt: str | None = None  # the prompt it was rendered with, when it is not the shot's prompt now
    edited: bool = False  # the user changed the clip after it was rendered


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
    take: Take | None = None  # the take the film uses (None: the ledger knows one render only, unedited)
    newest: int = 1  # the number of the newest take
    takes: tuple[Take, ...] = ()  # the shot's other takes, oldest first

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
    rendering: bool = False  # a render of the film is running now
    command: str = ""  # the command that renders the film again as it was rendered

    @property
    def live(self) -> bool:
        """The page refreshes itself while a render runs, and only then: the shots of an interrupted
        render stay pending or queued in the ledger, but nothing will change them until the next one."""
        return self.rendering

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
    """``wanclip render SHOTS -s URL...`` as the film was rendered: its servers (each ``user:pass@``
    masked, as ``urls.redact`` shows it), and ``--out`` when the folder is not where SHOTS renders by
    default; every word shell-quoted."""
    words = ["wanclip", "render", str(shots_path or "SHOTS.yaml")]
    for url in film_servers(ledger):
        words += ["-s", redact(url)]
    slug = film.slug if film else ledger.film.get("slug") or folder.name
    default = Path(film.out).expanduser() if film and film.out else Path("out") / slug
    if default.resolve() != folder.resolve():
        words += ["--out", str(folder)]
    return shlex.join(words)


def film_servers(ledger: Ledger) -> list[str]:
    """The servers the film was last rendered on (``film.servers``, recorded by the render); for a
    ledger that has none, the servers its shots were rendered on, in shot order."""
    recorded = ledger.film.get("servers")
    if isinstance(recorded, list) and all(isinstance(u, str) for u in recorded) and recorded:
        return list(dict.fromkeys(recorded))
    return list(dict.fromkeys(r.server for r in ledger.shots if isinstance(r.server, str) and r.server))


class Recorded:
    """A ledger record, with the fields its JSON has that this wanclip's ``ShotRecord`` does not know
    (a ledger from a newer wanclip: ``take``, ``takes``, ``use_take``...) read from the JSON, so the
    page shows what the ledger says either way."""

    def __init__(self, record: ShotRecord, raw: dict):
        self.record, self._raw = record, raw if isinstance(raw, dict) else {}

    def __getattr__(self, name: str):
        try:
            return getattr(self.record, name)
        except AttributeError:
            if name in self._raw:
                return self._raw[name]
            raise


def shot_takes(record: ShotRecord) -> list[dict]:
    """Every take of the shot, oldest first, in the ledger's shape: its earlier ``takes`` and the
    newest (the record itself). Read with defaults: a ledger from before takes has the newest only."""
    earlier = getattr(record, "takes", None)
    earlier = [t for t in (earlier if isinstance(earlier, list) else [])
               if isinstance(t, dict) and isinstance(t.get("take"), int) and not isinstance(t.get("take"), bool)]
    number = getattr(record, "take", None)
    newest = {"take": number if isinstance(number, int) and not isinstance(number, bool) and number > 0 else 1, "clip": record.clip, "clip_sha256": record.clip_sha256,
              "seed": record.seed, "prompt": getattr(record, "prompt", "") or "",
              "rendered_at": getattr(record, "rendered_at", None),
              "edited": bool(getattr(record, "edited_sha256", None))}
    return [*earlier, newest] if record.clip else earlier


def film_take(ledger: Ledger, record: ShotRecord) -> dict | None:
    """The take the film uses (``use_take``, else the newest); None when the shot has no clip."""
    takes = shot_takes(record)
    if not takes:
        return None
    chosen = getattr(ledger, "film_clip", None)
    if callable(chosen):  # the ledger's own answer, when it has one
        path = chosen(getattr(record, "record", record))
        link = _inside(ledger.folder, Path(path)) if path else None
        found = next((t for t in reversed(takes) if relative_link(t.get("clip")) == link), None)
        if found is not None or path is None:
            return found
    wanted = getattr(record, "use_take", None)
    return next((t for t in takes if t["take"] == wanted), takes[-1])


def _inside(folder: Path, path: Path) -> str | None:
    """``path`` as a link relative to ``folder`` (None when it is not inside it)."""
    for base, target in ((folder, path), (folder.resolve(), path.resolve())):
        if target.is_relative_to(base):
            return relative_link(target.relative_to(base).as_posix())
    return None


def card_of(folder: Path, record: ShotRecord, film: Film | None, command: str, poster: str | None,
            used: dict | None = None) -> Card:
    """A ledger record's card; a link to a file the folder does not have is left out. ``used``: the
    take the film uses (``film_take``)."""
    takes = [_take(folder, t, record) for t in shot_takes(record)]
    number = used["take"] if used else None
    take = next((t for t in takes if t.number == number), None)
    clip = take.clip if take and record.status == "done" else None
    many = len(takes) > 1 or (take is not None and (take.number > 1 or take.edited))
    last_frame = relative_link(getattr(record, "last_frame", None))
    shot = next((s for s in film.shots if s.name == record.name), None) if film else None
    return Card(
        index=record.index, name=record.name, status=record.status, seed=record.seed, frames=record.frames,
        fps=record.fps, prompt=shot_prompt(record, film), server=record.server, error=record.error,
        transition=record.transition, node_seconds=dict(record.node_seconds or {}),
        clip=clip, poster=poster,
        command=f"{command} --only {shlex.quote(record.name)}",
        continues=getattr(record, "continues", None),
        last_frame=last_frame if last_frame and (folder / last_frame).is_file() else None,
        keyframe=getattr(shot, "image", None), end_image=getattr(shot, "end_image", None),
        take=take if many else None, newest=max((t.number for t in takes), default=1),
        takes=tuple(t for t in takes if t is not take and t.clip) if many else ())


def _take(folder: Path, entry: dict, record: ShotRecord) -> Take:
    clip = relative_link(entry.get("clip") if isinstance(entry.get("clip"), str) else None)
    prompt = entry.get("prompt") if isinstance(entry.get("prompt"), str) else None
    seed = entry.get("seed")
    return Take(number=entry["take"], clip=clip if clip and (folder / clip).is_file() else None,
                seed=seed if isinstance(seed, int) else None,
                rendered_at=entry.get("rendered_at") if isinstance(entry.get("rendered_at"), str) else None,
                prompt=prompt if prompt and prompt != (getattr(record, "prompt", "") or "") else None,
                edited=bool(entry.get("edited")))


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
