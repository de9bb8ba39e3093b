"""`wanclip review`: rebuild a film folder's storyboard page, and open or serve it."""

from __future__ import annotations

import webbrowser
from pathlib import Path

import typer

from wanclip.cli.base import app, console, handle_errors, in_range, print_json
from wanclip.review import storyboard


@app.command("review")
def review_command(
    film_dir: Path = typer.Argument(..., metavar="FILM_DIR", help="A rendered film folder (out/<film>).",
                                    show_default=False),
    open_page: bool = typer.Option(False, "--open", help="Open the page in the default browser."),
    serve: bool = typer.Option(False, "--serve", help="Serve the folder on http://127.0.0.1:PORT/ (only "
                               "that folder, loopback only) until Ctrl-C."),
    port: int = typer.Option(8765, "--port", metavar="PORT", callback=in_range(0, 65535),
                             help="Port for --serve (0: any free one)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object: the page, and the URL when "
                                 "serving."),
) -> None:
    """Rebuild a film's storyboard page (index.html); open or serve it.

    FILM_DIR/index.html shows the film, then a card per shot (clip, prompt, seed, status, render time, a
    copyable re-render command). One offline file with relative links; posters/ holds a frame
    per clip.

    Exit codes: 0 the page was written (and served until Ctrl-C); 2 FILM_DIR is not a folder or
    has no readable ledger.json, or --port is taken.
    """
    with handle_errors(as_json=as_json):
        page = storyboard.write_page(film_dir)
        server = storyboard.serve_folder(film_dir, port) if serve else None
    url = f"http://127.0.0.1:{server.server_address[1]}/{page.name}" if server else page.resolve().as_uri()
    if as_json:
        print_json({"page": str(page), "url": url, "serving": bool(server)})
    else:
        console.print(f"wrote {page}" + (f"\nserving {url} (Ctrl-C stops)" if server else ""))
    if open_page:
        webbrowser.open(url)
    if server:
        _serve_until_interrupted(server)


def _serve_until_interrupted(server) -> None:
    """Ctrl-C is how a person stops serving: the normal end, exit 0."""
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        console.print("stopped serving")
    finally:
        server.server_close()
