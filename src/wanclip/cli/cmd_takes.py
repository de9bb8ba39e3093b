"""`wanclip takes`: a film's takes, shot by shot, and `--prune` to delete the ones the film does not use."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.text import Text

from wanclip.cli.base import app, console, counted, handle_errors, print_json, shown
from wanclip.errors import WanclipError
from wanclip.ledger import LEDGER_NAME, Ledger, film_lock, load_ledger


@app.command("takes")
def takes_command(
    film: Path = typer.Argument(None, metavar="[FILM]", show_default=False,
                                help="The shots file (or a shipped example's name), or the film folder. Default: "
                                "the film folder here, or the only one under out/."),
    names: list[str] = typer.Argument(None, metavar="[NAME]...", show_default=False,
                                      help="Only these shots (default: every shot with a clip)."),
    out: Path = typer.Option(None, "--out", metavar="FOLDER", help="The film folder, for a shots file rendered "
                             "with --out."),
    prune: bool = typer.Option(False, "--prune", help="Delete the clips of the earlier takes, and the post clips, the "
                               "film does not use (listed first; asks before deleting, or give --yes)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="With --prune: delete without asking."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of the listing."),
) -> None:
    """List each shot's takes: take number, seed, prompt, when it was rendered, which one the film uses.

    Re-rendering a shot (a changed prompt or seed, --force, --reseed) keeps its earlier clip as a
    take; the film uses the newest unless the shots file says `take: N` for the shot (or
    `wanclip render --take NAME=N`). A take whose clip you changed is marked edited. Nothing is
    deleted unless you ask: --prune deletes the earlier takes the film does not use (never the
    newest, never the one the film uses), the post clips it does not use (made with other `post:`
    settings or from another version of the clip) and the clips of shots taken out of the film, after
    listing them; it asks first on a terminal, and without one (or with --json) it needs --yes.

    Exit codes: 0 listed (or pruned); 2 no such film or shot, or --prune refused without --yes.
    """
    from wanclip.render.takes import all_takes, prunable
    from wanclip.render.takes import prune as prune_takes

    with handle_errors(as_json=as_json):
        film, names = _film_or_shot(film, list(names or []), out)
        ledger = load_ledger(_film_dir(film, out))
        unknown = sorted(set(names or []) - {s.name for s in [*ledger.shots, *ledger.removed]})
        if unknown:
            raise WanclipError(f"no shot named {', '.join(unknown)} in {ledger.path}",
                               f"shots are: {', '.join(s.name for s in ledger.shots)}")
        shots = [s for s in [*ledger.shots, *ledger.removed] if not names or s.name in names]
        if prune:
            items = prunable(ledger, list(names or []))
            if not items:
                _say(as_json, {"deleted": [], "kept": []}, "nothing to prune: no shot has an earlier take or a post "
                     "clip the film does not use")
                return
            lines = [f"{i.clip}  ({i.shot}, {f'post clip {i.post}' if i.post else f'take {i.take}'}"
                     f"{', removed from the film' if i.removed else ''})" for i in items]
            if not yes:
                interactive = not as_json and sys.stdin.isatty() and sys.stdout.isatty()
                console.print(f"--prune would delete {counted(len(items), 'clip')}:", highlight=False)
                for line in lines:
                    console.print(Text(f"  {shown(line)}"))
                if not interactive:
                    raise WanclipError("--prune deletes files: nothing deleted without --yes",
                                       "check the list above, then run the same command with --yes")
                if not typer.confirm("delete them?", default=False):
                    console.print("nothing deleted")
                    return
            with film_lock(ledger.folder, "takes --prune"):
                ledger = load_ledger(ledger.folder)  # as it is now, under the lock
                deleted = prune_takes(ledger, [i for i in prunable(ledger, list(names or [])) if i in items])
            if as_json:
                print_json({"deleted": deleted})
            else:
                console.print(f"deleted {counted(len(deleted), 'clip')}:", highlight=False)
                for path in deleted:
                    console.print(Text(f"  {shown(path)}"))
            return
    removed = {r.name for r in ledger.removed}
    rows = [_shot_json(ledger, record, all_takes(record), record.name in removed) for record in shots]
    if as_json:
        print_json({"film": str(ledger.folder), "shots": rows})
        return
    for row in rows:
        uses = "removed from the film" if row["removed"] else \
            f"the film uses take {row['uses']}" if row["uses"] else "no clip yet"
        console.print(Text(f"{row['name']}  ({counted(len(row['takes']), 'take')}; {uses})"))
        for take in row["takes"]:
            mark = "*" if take["used"] else " "
            notes = "".join([" edited" if take["edited"] else "", "" if take["exists"] else " (file missing)"])
            line = (f" {mark} take {take['take']}  seed {take['seed']}  {take['rendered_at'] or '-'}  "
                    f"{shown(take['clip'])}{notes}  ")
            prompt, room = shown(take["prompt"]), max(24, console.width - len(line) - 1)
            console.print(Text(line + (prompt if len(prompt) <= room else prompt[:room - 1] + "…")), soft_wrap=True)


def _say(as_json: bool, data: dict, text: str) -> None:
    if as_json:
        print_json(data)
    else:
        console.print(text, highlight=False)


def _shot_json(ledger: Ledger, record, takes: list[dict], removed: bool = False) -> dict:
    used = None if removed else ledger.film_take(record)
    return {"name": record.name, "index": None if removed else record.index, "removed": removed,
            "uses": used["take"] if used else None,
            "takes": [{"take": t["take"], "clip": t["clip"], "seed": t["seed"], "prompt": t["prompt"],
                       "rendered_at": t.get("rendered_at"), "edited": bool(t.get("edited")),
                       "used": bool(used) and t["take"] == used["take"],
                       "exists": (ledger.folder / t["clip"]).is_file()} for t in takes]}


def _film_or_shot(film: Path | None, names: list[str], out: Path | None) -> tuple[Path | None, list[str]]:
    """``wanclip takes b``: FILM left out, ``b`` a shot of the film here (not a file, folder or example)."""
    from wanclip.planning.plan import example_path

    if film is None or film.exists() or example_path(film.name) is not None or film.parent != Path("."):
        return film, names
    try:
        ledger = load_ledger(_film_dir(None, out))
    except WanclipError:
        return film, names
    return (None, [str(film), *names]) if any(s.name == str(film) for s in ledger.shots) else (film, names)


def _film_dir(film: Path | None, out: Path | None) -> Path:
    """The film folder FILM (a folder, a shots file, an example's name) or --out names; else here, or
    the only film under out/."""
    from wanclip.planning.plan import film_folder

    if out is not None:
        return out
    if film is not None:
        return film if film.is_dir() else film_folder(film)
    if Path(LEDGER_NAME).is_file():
        return Path(".")
    found = sorted(p.parent for p in Path("out").glob(f"*/{LEDGER_NAME}"))
    if len(found) == 1:
        return found[0]
    raise WanclipError("which film? " + ("there are several under out/: " + ", ".join(map(str, found))
                                         if found else "no film folder here or under out/"),
                       "name it: `wanclip takes SHOTS.yaml` or `wanclip takes out/<film>`")
