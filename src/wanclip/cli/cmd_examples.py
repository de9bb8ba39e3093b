"""`wanclip examples`: the films wanclip ships, listed, and copied out to edit."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from wanclip.cli.base import app, console, handle_errors, print_json
from wanclip.planning.plan import copy_example, example, example_names
from wanclip.planning.shots import load_film

examples_app = typer.Typer(add_completion=False, rich_markup_mode="rich", invoke_without_command=True)
app.add_typer(examples_app, name="examples")


def describe() -> list[dict]:
    """Each shipped film: name, title, shot count and length after transitions."""
    films = []
    for name in example_names():
        film = load_film(example(name))
        films.append({"name": name, "title": film.title, "shots": len(film.shots),
                      "seconds": round(film.seconds_after_transitions(), 4)})
    return films


@examples_app.callback()
def examples_command(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON list instead of the table."),
) -> None:
    """List the example films wanclip ships, or copy one out to edit.

    Every command that takes a shots file also takes an example's name (`wanclip plan tomato_egg`)
    when no file of that name exists; `wanclip examples copy NAME [DEST]` copies one out.

    Exit code: 0.
    """
    if ctx.invoked_subcommand is not None:
        return
    with handle_errors(as_json=as_json):
        films = describe()
    if as_json:
        print_json(films)
        return
    table = Table(title="example films")
    for column in ("name", "title", "shots", "seconds"):
        table.add_column(column, justify="right" if column in ("shots", "seconds") else "left", no_wrap=True)
    for film in films:
        table.add_row(film["name"], film["title"], str(film["shots"]), f"{film['seconds']:.2f}")
    console.print(table)
    console.print("use one by name: wanclip plan tomato_egg; edit a copy: wanclip examples copy NAME [DEST]")


@examples_app.command("copy")
def copy_command(
    name: str = typer.Argument(..., metavar="NAME", show_default=False, help="The example's name (see `wanclip examples`), e.g. tomato_egg."),
    dest: Path = typer.Argument(None, metavar="DEST", show_default=False, help="File to write, or a folder for NAME.yaml. Default: NAME.yaml here."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object with the written path."),
) -> None:
    """Copy an example film out to edit it (never over an existing file).

    Exit codes: 0 written, 2 no example of that NAME, or DEST exists.
    """
    with handle_errors(as_json=as_json):
        written = copy_example(name, dest)
    if as_json:
        print_json({"example": name, "path": str(written)})
    else:
        console.print(f"wrote {written}; plan it with: wanclip plan {written}", markup=False)
