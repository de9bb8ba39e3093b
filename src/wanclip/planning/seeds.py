"""Which seed each shot of a film gets, and why. A shot is known by its name, not its position.

- a shot's own ``seed:`` in the shots file ("shots file");
- else the seed it rendered with before, kept in the ledger by name ("ledger"), unless the film's
  ``seed_base`` changed since (a new ``seed_base`` re-rolls every shot that has no seed of its own);
- else, for a new shot, ``seed_base + index`` ("seed_base"), or, when another shot of the film has
  that seed already, the first ``seed_base + k`` no shot uses ("next free");
- ``--reseed NAME``: a fresh seed on purpose, one no shot of the film and no earlier take of this
  shot used ("reseed").
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from wanclip.errors import UsageError
from wanclip.ledger import Ledger
from wanclip.planning.shots import Film

SHOTS_FILE, LEDGER, SEED_BASE, NEXT_FREE, RESEED = "shots file", "ledger", "seed_base", "next free", "reseed"


@dataclass(frozen=True)
class Seed:
    value: int
    source: str  # one of the five above


def ledger_seed_base(ledger: Ledger) -> int | None:
    """The ``seed_base`` the ledger's seeds came from; a ledger written before it was recorded tells
    it by its shots (most had ``seed_base + index``)."""
    recorded = ledger.film.get("seed_base")
    if isinstance(recorded, int):
        return recorded
    guesses = Counter(s.seed - s.index for s in ledger.shots)
    return guesses.most_common(1)[0][0] if guesses else None


def assign_seeds(film: Film, ledger: Ledger | None = None, reseed: tuple[str, ...] | list[str] = ()) -> list[Seed]:
    """Every shot's seed, in the film's order (see the module's rules)."""
    names = [s.name for s in film.shots]
    unknown = sorted(set(reseed) - set(names))
    if unknown:
        raise UsageError(f"--reseed names no shot of this film: {', '.join(unknown)}",
                         f"shots are: {', '.join(names)}", "--reseed")
    own = [s.name for s in film.shots if s.seed is not None and s.name in reseed]
    if own:
        raise UsageError(f"--reseed {own[0]}: the shots file sets that shot's seed",
                         "change its `seed:` in the shots file instead (or remove it, then --reseed)", "--reseed")
    kept: dict[str, int] = {}
    history: dict[str, set[int]] = {}
    known = [*ledger.removed, *ledger.shots] if ledger is not None else []  # a shot put back keeps its seed
    if ledger is not None and ledger_seed_base(ledger) == film.seed_base:
        for record in known:
            if record.seed_source != SHOTS_FILE:
                kept[record.name] = record.seed
    for record in known:
        history[record.name] = {record.seed, *(t.get("seed") for t in record.takes)}
    seeds: dict[str, Seed] = {}
    for shot in film.shots:
        if shot.seed is not None:
            seeds[shot.name] = Seed(shot.seed, SHOTS_FILE)
        elif shot.name in kept and shot.name not in reseed:
            seeds[shot.name] = Seed(kept[shot.name], LEDGER)
    used = {s.value for s in seeds.values()} | {kept[n] for n in kept if n not in names}  # removed shots' too
    for index, shot in enumerate(film.shots, 1):
        if shot.name in seeds or shot.name in reseed:
            continue
        wanted = film.seed_base + index
        seeds[shot.name] = Seed(wanted, SEED_BASE) if wanted not in used else \
            Seed(_next_free(film.seed_base, used), NEXT_FREE)
        used.add(seeds[shot.name].value)
    for shot in film.shots:
        if shot.name in reseed:
            seeds[shot.name] = Seed(_next_free(film.seed_base, used | history.get(shot.name, set())), RESEED)
            used.add(seeds[shot.name].value)
    return [seeds[name] for name in names]


def _next_free(base: int, used: set[int]) -> int:
    k = 1
    while base + k in used:
        k += 1
    return base + k
