"""``out/<film>/index.html``: a film folder's storyboard, the render ledger as a page to look at.

``write_page()`` reads ``ledger.json`` (and the shots file, for the prompt pieces older ledgers do
not record), makes one poster per done clip (``posters/NN_name.jpg``, the clip's middle frame,
remade only when the clip's sha256 changed) and writes one self-contained HTML file: inline CSS
and JS, links relative to the folder only (clips, film, posters), nothing fetched from anywhere,
so it works from ``file://`` as well as served. Every text from the ledger or the shots file is
HTML-escaped; the data the script reads is JSON made safe inside ``<script>``.

``build_page()`` is pure: a ``Storyboard`` in, the HTML text out.

A chain (a shot and the shots that continue it, each starting on the last frame of the one
before) is one row of joined cards: a connector between each two (with the frame they share,
when the render left it) and a "continues from NN" label on each continued card. A shot that
starts from a keyframe (``image:``) or lands on one (``end_image:``) says so on its card.
"""

from __future__ import annotations

import functools
import html
import http.server
import io
import json
import shlex
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from wanclip import media
from wanclip.errors import WanclipError
from wanclip.files import atomic_write_bytes, atomic_write_text, safe_filename
from wanclip.ledger import Ledger, ShotRecord, load_ledger
from wanclip.planning import timeline
from wanclip.planning.shots import Film, load_film

PAGE_NAME = "index.html"
FILM_NAME = "film.mp4"
POSTER_DIR = "posters"
POSTER_INDEX = ".posters.json"  # poster file -> the clip sha256 it was made from
POSTER_MAX_WIDTH = 640
REFRESH_SECONDS = 5
LIVE = ("pending", "queued", "running")
# Where render time goes, from the ``node_seconds`` labels render.node_labels() writes.
TIME_PARTS = {"model load": ("model load",), "text encode": ("text encode",),
              "sampling": ("high-noise sampler", "low-noise sampler"), "decode": ("decode",),
              "video encode": ("combine",)}


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


def time_split(node_seconds: list[dict[str, float]]) -> dict[str, float]:
    """Seconds per part (model load, text encode, sampling, decode, video encode, other), summed."""
    part_of = {label: part for part, labels in TIME_PARTS.items() for label in labels}
    split: dict[str, float] = {}
    for seconds in node_seconds:
        for label, value in (seconds or {}).items():
            part = part_of.get(label, "other")
            split[part] = split.get(part, 0.0) + float(value or 0)
    order = [*TIME_PARTS, "other"]
    return {part: split[part] for part in order if split.get(part)}


# -- reading the folder ----------------------------------------------------------------------------

def write_page(film_dir: Path, *, shots_file: Path | None = None) -> Path:
    """Build ``film_dir/index.html`` from its ledger (posters made as needed); returns its path.

    ``shots_file`` (default: the one the ledger names) supplies the prompt pieces a ledger from an
    older wanclip lacks. Raises WanclipError (exit 2) when the folder has no readable ledger.
    """
    folder = Path(film_dir)
    if not folder.is_dir():
        raise WanclipError(f"{folder} is not a film folder", "give the folder `wanclip render` wrote, "
                           "e.g. out/<film>")
    board = read_storyboard(folder, shots_file=shots_file)
    path = folder / PAGE_NAME
    atomic_write_text(path, build_page(board))
    return path


def read_storyboard(folder: Path, *, shots_file: Path | None = None) -> Storyboard:
    ledger = load_ledger(folder)
    shots_path = shots_file or ledger.film.get("shots_file")
    film = _film_or_none(Path(shots_path)) if shots_path else None
    command = _command_base(folder, ledger, shots_path, film)
    posters = _Posters(folder)
    cards = [_card(folder, record, film, command, posters.poster(ledger, record)) for record in ledger.shots]
    posters.save()
    film_file = folder / FILM_NAME
    return Storyboard(
        title=ledger.film.get("title") or folder.name, cards=cards,
        film=FILM_NAME if film_file.is_file() else None,
        film_seconds=_film_seconds(film_file, ledger), stitch_seconds=ledger.film.get("stitch_seconds"),
        updated=datetime.now().strftime("%Y-%m-%d %H:%M:%S"))


def _film_or_none(path: Path) -> Film | None:
    """The shots file, if it is still there and still valid; else the page shows what the ledger has."""
    if not path.is_file():
        return None
    try:
        return load_film(path)
    except WanclipError:
        return None


def _film_seconds(film_file: Path, ledger: Ledger) -> float | None:
    if film_file.is_file():
        try:
            return media.probe(film_file).duration
        except WanclipError:
            pass
    return ledger.film.get("seconds")


def _command_base(folder: Path, ledger: Ledger, shots_path, film: Film | None) -> str:
    """``wanclip render SHOTS`` (plus ``--out`` when the folder is not where SHOTS renders by default)."""
    words = ["wanclip", "render", str(shots_path or "SHOTS.yaml")]
    slug = film.slug if film else ledger.film.get("slug") or folder.name
    default = Path(film.out) if film and film.out else Path("out") / slug
    if default.resolve() != folder.resolve():
        words += ["--out", str(folder)]
    return shlex.join(words)


def _card(folder: Path, record: ShotRecord, film: Film | None, command: str, poster: str | None) -> Card:
    clip = _relative(record.clip) if record.status == "done" else None
    last_frame = _relative(getattr(record, "last_frame", None))
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


def _relative(link: str | None) -> str | None:
    """A link inside the film folder, or None (the page links nothing outside it)."""
    if not link:
        return None
    path = PurePosixPath(str(link).replace("\\", "/"))
    if not path.parts or path.is_absolute() or ".." in path.parts or ":" in path.parts[0]:
        return None
    return path.as_posix()


class _Posters:
    """``posters/NN_name.jpg`` per done clip, remade only when the clip's sha256 changed."""

    def __init__(self, folder: Path):
        self.folder = folder / POSTER_DIR
        self.index_file = self.folder / POSTER_INDEX
        try:
            self.made: dict[str, str] = json.loads(self.index_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self.made = {}
        self.changed = False

    def poster(self, ledger: Ledger, record: ShotRecord) -> str | None:
        link = _relative(record.clip)
        clip = ledger.folder / link if link else None
        if record.status != "done" or clip is None or not clip.is_file():
            return None
        name = safe_filename(f"{record.index:02d}_{record.name}") + ".jpg"
        key = record.clip_sha256 or ""
        if not key or self.made.get(name) != key or not (self.folder / name).is_file():
            try:
                atomic_write_bytes(self.folder / name, poster_jpeg(clip))
            except WanclipError:
                return None  # an unreadable clip gets no poster; its card still shows
            self.made[name], self.changed = key, True
        return f"{POSTER_DIR}/{name}"

    def save(self) -> None:
        if self.changed:
            atomic_write_text(self.index_file, json.dumps(self.made, indent=1, sort_keys=True) + "\n")


def poster_jpeg(clip: Path) -> bytes:
    """The clip's middle frame as JPEG bytes, at most POSTER_MAX_WIDTH wide."""
    from PIL import Image

    info = media.probe(clip)
    width = min(info.width, POSTER_MAX_WIDTH)
    height = max(2, round(width * info.height / max(1, info.width) / 2) * 2)
    raw = media.grab_frames(info, [info.frames // 2], width, height)[0]
    buffer = io.BytesIO()
    Image.frombytes("RGB", (width, height), raw).save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


# -- serving the folder ----------------------------------------------------------------------------

def serve_folder(film_dir: Path, port: int = 0) -> http.server.ThreadingHTTPServer:
    """An HTTP server for ``film_dir`` only, on 127.0.0.1 only (port 0: a free one). Caller closes it."""
    handler = functools.partial(_QuietHandler, directory=str(Path(film_dir).resolve()))
    try:
        return http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError as exc:
        raise WanclipError(f"cannot serve on 127.0.0.1:{port}: {exc.strerror or exc}",
                           "pick another --port, or --port 0 for any free one") from exc


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, fmt, *args) -> None:  # the console stays for the URL and Ctrl-C
        pass

    def send_head(self):
        if self.path.split("?")[0] == "/favicon.ico" and not Path(self.translate_path(self.path)).is_file():
            self.send_response(204)  # browsers ask for one; a 404 would log an error in the console
            self.end_headers()
            return None
        return super().send_head()

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")  # a reloading page must see the new ledger
        super().end_headers()


# -- the page --------------------------------------------------------------------------------------

def esc(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def href(link: str) -> str:
    """A relative link, percent-encoded for a URL and escaped for an attribute."""
    return esc(quote(link, safe="/"))


def script_json(data: object) -> str:
    """JSON that cannot end or confuse the ``<script>`` element it sits in."""
    text = json.dumps(data, ensure_ascii=False)
    for char, escaped in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"),
                          ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    return text


def seconds_text(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.{2 if seconds < 1 else 1 if seconds < 10 else 0}f} s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} m {rest:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} m"


def build_page(board: Storyboard) -> str:
    """The whole HTML page for ``board``: pure, no I/O."""
    data = {"live": board.live, "refresh": REFRESH_SECONDS,
            "shots": [{"name": c.name, "status": c.status, "command": c.command} for c in board.cards]}
    refresh = f'<noscript><meta http-equiv="refresh" content="{REFRESH_SECONDS}"></noscript>' if board.live else ""
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(board.title)} · wanclip</title>
{refresh}
<style>{CSS}</style>
</head>
<body>
{_header(board)}
<main class="grid">
{"".join(_row_html(row) for row in board.rows())}
</main>
<footer>Made by wanclip from <a href="ledger.json">ledger.json</a> · updated {esc(board.updated)}
{'· reloads every ' + str(REFRESH_SECONDS) + ' s while shots are rendering' if board.live else ''}</footer>
<script type="application/json" id="storyboard-data">{script_json(data)}</script>
<script>{JS}</script>
</body>
</html>
"""


def _header(board: Storyboard) -> str:
    counts: dict[str, int] = {}
    for card in board.cards:
        counts[card.status] = counts.get(card.status, 0) + 1
    badges = "".join(f'<span class="badge {esc(s)}">{n} {esc(s)}</span>' for s, n in counts.items())
    split = board.time_split()
    total = sum(split.values())
    poster = next((c.poster for c in board.cards if c.poster), None)
    player = (f'<video class="film" controls preload="metadata" src="{href(board.film)}"'
              + (f' poster="{href(poster)}"' if poster else "") + "></video>") if board.film else (
        '<div class="film placeholder">no film.mp4 yet: it is stitched when every shot is done</div>')
    attention = [c for c in board.cards if c.status in ("failed", "lost")]
    jump = ("".join(f'<a class="jump {esc(c.status)}" href="#shot-{esc(c.name)}">{esc(c.name)}</a>'
                    for c in attention))
    return f"""<header>
<div class="title"><h1>{esc(board.title)}</h1><div class="badges">{badges}</div></div>
<div class="top">
{player}
<div class="facts-box">
<dl class="facts big">
<div><dt>length</dt><dd>{seconds_text(board.film_seconds)}</dd></div>
<div><dt>shots</dt><dd>{len(board.cards)}</dd></div>
<div><dt>render time</dt><dd>{seconds_text(total) if total else '—'}</dd></div>
</dl>
{_split_html(split, total)}
{'<p class="attention">needs a look: ' + jump + '</p>' if attention else ''}
</div>
</div>
</header>"""


def _split_html(split: dict[str, float], total: float) -> str:
    if not total:
        return ""
    bars = "".join(f'<span class="part p-{_slug(p)}" style="flex-grow:{s:.3f}" title="{esc(p)}: '
                   f'{seconds_text(s)}"></span>' for p, s in split.items())
    legend = "".join(f'<li><i class="p-{_slug(p)}"></i>{esc(p)} <b>{seconds_text(s)}</b></li>'
                     for p, s in split.items())
    return f'<div class="split"><div class="bar">{bars}</div><ul class="legend">{legend}</ul></div>'


def _slug(part: str) -> str:
    return part.replace(" ", "-")


def _row_html(row: list[Card]) -> str:
    """A card alone, or a chain: its cards in one row, joined by the frame each link starts from."""
    if len(row) == 1:
        return _card_html(row[0])
    parts = [_card_html(row[0], None)]
    for before, card in zip(row, row[1:], strict=False):
        frame = (f'<img src="{href(before.last_frame)}" alt="last frame of {esc(before.name)}">'
                 if before.last_frame else "")
        parts.append(f'<div class="joint" title="{esc(card.name)} starts on the last frame of {esc(before.name)}">'
                     f'{frame}<span class="arrow" aria-hidden="true">→</span><small>last frame</small></div>')
        parts.append(_card_html(card, before))
    names = " → ".join(f"{c.index:02d}" for c in row)
    seconds = sum(c.film_seconds for c in row)
    return (f'<section class="chain" aria-label="chain {names}">'
            f'<div class="chain-head"><span class="chain-label">chain</span> {names} · '
            f'{seconds_text(seconds)} continuous · {len(row)} links</div>'
            f'<div class="links">{"".join(parts)}</div></section>\n')


def _card_html(card: Card, before: Card | None = None) -> str:
    state = "done" if card.status == "done" else ("failed" if card.status in ("failed", "lost") else "waiting")
    media_html = (f'<video controls preload="metadata" src="{href(card.clip)}"'
                  + (f' poster="{href(card.poster)}"' if card.poster else "") + "></video>"
                  ) if card.clip else f'<div class="placeholder">{_missing(card.status)}</div>'
    link = " link" if card.continues else ""
    return f"""<article class="card {state}{link}" id="shot-{esc(card.name)}">
<div class="media">{media_html}</div>
<div class="body">
<div class="head"><span class="index">{card.index:02d}</span><h2>{esc(card.name)}</h2>\
<span class="badge {esc(card.status)}">{esc(card.status)}</span></div>
{_start_html(card, before)}
{_error_html(card.error) if card.error and card.status != "done" else ""}
{_prompt_html(card.prompt)}
<dl class="facts">
<div><dt>seed</dt><dd>{esc(card.seed)}</dd></div>
<div><dt>frames</dt><dd>{esc(card.frames)} · {card.seconds:.2f} s @ {card.fps:g} fps</dd></div>
<div><dt>transition in</dt><dd>{_transition_text(card.transition, card.continues)}</dd></div>
<div><dt>server</dt><dd>{esc(card.server) if card.server else '—'}</dd></div>
<div><dt>render</dt><dd>{seconds_text(card.render_seconds) if card.node_seconds else '—'}</dd></div>
</dl>
{_split_html(time_split([card.node_seconds]), card.render_seconds)}
<div class="cmd"><code>{esc(card.command)}</code><button type="button" class="copy" \
data-shot="{card.index - 1}" title="copy the command that re-renders this shot">Copy</button></div>
</div>
</article>
"""


def _start_html(card: Card, before: Card | None = None) -> str:
    """Where the shot starts: the shot it continues (``before``, the card before it in its chain),
    or its keyframe; and the picture it lands on."""
    labels = []
    if card.continues:
        which = card.continues
        if before is not None and before.name == card.continues:
            number = f"{before.index:02d}"
            which = number if before.name == number else f"{number} {before.name}"
        labels.append(f'<span class="from continues" title="starts on the last frame of {esc(card.continues)}">'
                      f'continues from {esc(which)}</span>')
    elif card.keyframe:
        labels.append(f'<span class="from keyframe" title="{esc(card.keyframe)}">starts from keyframe '
                      f'{esc(PurePosixPath(card.keyframe.replace(chr(92), "/")).name)}</span>')
    if card.end_image:
        labels.append(f'<span class="from end" title="{esc(card.end_image)}">lands on '
                      f'{esc(PurePosixPath(card.end_image.replace(chr(92), "/")).name)}</span>')
    return f'<div class="start">{"".join(labels)}</div>' if labels else ""


def _missing(status: str) -> str:
    return "clip missing" if status == "done" else esc(status)


def _error_html(error: dict) -> str:
    node = " · ".join(esc(error.get(k)) for k in ("node", "class") if error.get(k))
    return (f'<div class="error"><div class="where">{node or "error"}</div>'
            f'<div class="message">{esc(error.get("message") or error.get("type") or "failed")}</div></div>')


def _prompt_html(prompt: Prompt | None) -> str:
    if prompt is None:
        return '<p class="prompt missing">prompt unknown (not in the ledger, shots file not found)</p>'
    style = f'<span class="style" title="style suffix">{esc(prompt.style)}</span>' if prompt.style else ""
    negative = esc(prompt.negative) if prompt.negative else "<i>the workflow's own</i>"
    return (f'<p class="prompt">{esc(prompt.text)}{style}</p>'
            f'<details class="negative"><summary><span class="label">negative</span>{negative}</summary></details>')


def _transition_text(transition: dict | None, continues: str | None = None) -> str:
    if continues:
        return "cut (first frame dropped: it is the last of " + esc(continues) + ")"
    if not transition:
        return "— (first shot)"
    kind = transition.get("type", "fade")
    return esc(kind) if kind == "cut" else f"{esc(kind)} {float(transition.get('duration') or 0):g} s"


CSS = """
:root{--bg:#111318;--panel:#1b1e25;--line:#2a2f3a;--ink:#e8eaf0;--dim:#9aa3b2;--accent:#7cc4ff;
--ok:#4cc38a;--bad:#ff6b6b;--wait:#f5b342;--lost:#c08cff}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);font:14px/1.45 system-ui,-apple-system,"Segoe UI",
Roboto,sans-serif}
header{padding:24px 28px 8px}
.title{display:flex;flex-wrap:wrap;align-items:center;gap:14px;margin-bottom:16px}
h1{margin:0;font-size:26px;font-weight:650;letter-spacing:.2px}
.badges{display:flex;gap:6px;flex-wrap:wrap}
.badge{font-size:12px;padding:2px 9px;border-radius:999px;background:var(--line);color:var(--ink);
white-space:nowrap}
.badge.done{background:#1d3b2c;color:var(--ok)}.badge.failed{background:#432124;color:var(--bad)}
.badge.pending,.badge.queued,.badge.running{background:#3d321b;color:var(--wait)}
.badge.lost{background:#33264a;color:var(--lost)}
.top{display:grid;grid-template-columns:minmax(0,2fr) minmax(260px,1fr);gap:22px;align-items:start}
@media (max-width:900px){.top{grid-template-columns:1fr}}
video{display:block;width:100%;background:#000;border-radius:8px}
video.film{aspect-ratio:16/9;max-height:62vh;object-fit:contain}
.placeholder{display:flex;align-items:center;justify-content:center;aspect-ratio:16/9;border-radius:8px;
background:repeating-linear-gradient(45deg,#191c22,#191c22 10px,#1e2129 10px,#1e2129 20px);color:var(--dim);
text-transform:uppercase;letter-spacing:2px;font-size:13px;text-align:center;padding:10px}
.film.placeholder{text-transform:none;letter-spacing:0}
.facts-box{background:var(--panel);border:1px solid var(--line);border-radius:10px;padding:16px}
dl.facts{display:grid;grid-template-columns:repeat(auto-fill,minmax(120px,1fr));gap:8px 14px;margin:10px 0}
dl.facts div{min-width:0}dt{color:var(--dim);font-size:11px;text-transform:uppercase;letter-spacing:.8px}
dd{margin:0;overflow-wrap:anywhere}
dl.big dd{font-size:22px;font-weight:600}
.split{margin-top:8px}
.bar{display:flex;height:10px;border-radius:5px;overflow:hidden;background:var(--line)}
.part{min-width:2px}
.legend{list-style:none;padding:0;margin:8px 0 0;display:flex;flex-wrap:wrap;gap:4px 14px;color:var(--dim);
font-size:12px}
.legend b{color:var(--ink);font-weight:500}
.legend i{display:inline-block;width:9px;height:9px;border-radius:2px;margin-right:5px}
.p-model-load{background:#8b7cff}.p-text-encode{background:#5ad1c8}.p-sampling{background:#7cc4ff}
.p-decode{background:#f5b342}.p-video-encode{background:#ff8fb1}.p-stitch{background:#b5e86c}
.p-other{background:#6b7280}
.attention{margin:12px 0 0;color:var(--dim)}
.jump{margin-left:8px;color:var(--bad)}.jump.lost{color:var(--lost)}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:18px;padding:18px 28px}
.card{background:var(--panel);border:1px solid var(--line);border-radius:12px;overflow:hidden;
display:flex;flex-direction:column}
.card.failed{border-color:var(--bad);box-shadow:0 0 0 1px var(--bad) inset}
.card.waiting{border-style:dashed;border-color:var(--wait)}
.card .media video,.card .media .placeholder{border-radius:0;aspect-ratio:16/9;object-fit:contain}
.card.failed .placeholder{color:var(--bad)}.card.waiting .placeholder{color:var(--wait)}
.body{padding:12px 14px 14px;display:flex;flex-direction:column;gap:6px;flex:1}
.head{display:flex;align-items:center;gap:8px}
.index{font:600 12px ui-monospace,SFMono-Regular,Menlo,monospace;color:var(--dim);background:var(--line);
border-radius:5px;padding:1px 6px}
h2{margin:0;font-size:16px;font-weight:600;flex:1;overflow-wrap:anywhere}
.prompt{margin:4px 0 0;overflow-wrap:anywhere}
.prompt.missing{color:var(--dim);font-style:italic}
.style{display:inline;margin-left:6px;padding:1px 6px;border-radius:5px;background:#23304a;color:#a9c8ff;
font-size:12.5px}
.style::before{content:"style · ";color:var(--dim)}
.negative{margin:0;color:var(--dim);font-size:12.5px}
.negative summary{cursor:pointer;list-style:none;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.negative summary::-webkit-details-marker{display:none}
.negative[open] summary{white-space:normal;overflow-wrap:anywhere}
.label{font-size:10.5px;text-transform:uppercase;letter-spacing:.8px;margin-right:6px;color:#c58a8a}
.error{background:#2c1719;border:1px solid #5b2a2e;border-radius:8px;padding:8px 10px}
.error .where{font:600 12px ui-monospace,SFMono-Regular,Menlo,monospace;color:var(--bad)}
.error .message{overflow-wrap:anywhere}
.cmd{margin-top:auto;display:flex;gap:8px;align-items:center;background:#0c0e12;border:1px solid var(--line);
border-radius:8px;padding:6px 6px 6px 10px}
.cmd code{flex:1;font:12px ui-monospace,SFMono-Regular,Menlo,monospace;color:#cfd6e4;white-space:pre-wrap;
word-break:break-all}
.copy{border:0;border-radius:6px;padding:5px 10px;background:var(--accent);color:#08111c;font-weight:600;
cursor:pointer}
.copy.done{background:var(--ok)}.copy.fail{background:var(--bad)}
.start{display:flex;flex-wrap:wrap;gap:6px}
.from{font-size:12px;padding:1px 8px;border-radius:5px;background:#23304a;color:#a9c8ff}
.from.continues::before{content:"↳ "}.from.keyframe{background:#2b2a44;color:#c9b8ff}
.from.end{background:#2a3b33;color:#9fe0bd}
.chain{grid-column:1/-1;border:1px solid #2f4466;border-radius:14px;background:#151a23;padding:10px 12px 12px}
.chain-head{color:var(--dim);font-size:12.5px;margin:0 2px 8px}
.chain-label{text-transform:uppercase;letter-spacing:1px;font-size:11px;color:var(--accent);margin-right:4px}
.links{display:flex;align-items:stretch;overflow-x:auto;padding-bottom:4px}
.links>.card{flex:0 0 340px}
.card.link{border-color:#2f4466}
.joint{flex:0 0 64px;display:flex;flex-direction:column;align-items:center;justify-content:flex-start;gap:4px;
padding-top:58px;color:var(--accent);position:relative}
.joint::before{content:"";position:absolute;left:0;right:0;top:96px;border-top:2px solid var(--accent);z-index:0}
.joint img,.joint .arrow,.joint small{position:relative;z-index:1;background:#151a23}
.joint img{width:52px;border-radius:4px;border:1px solid var(--accent)}
.joint .arrow{font-size:20px;line-height:1;padding:0 4px}
.joint small{font-size:10px;color:var(--dim);padding:0 2px}
footer{padding:8px 28px 28px;color:var(--dim);font-size:12px}
footer a{color:var(--accent)}
"""

JS = """
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("storyboard-data").textContent);
  function fallbackCopy(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    document.body.removeChild(area);
    return ok;
  }
  function copy(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).then(function () { return true; },
        function () { return fallbackCopy(text); });
    }
    return Promise.resolve(fallbackCopy(text));
  }
  Array.prototype.forEach.call(document.querySelectorAll("button.copy"), function (button) {
    button.addEventListener("click", function () {
      var shot = data.shots[Number(button.getAttribute("data-shot"))];
      copy(shot.command).then(function (ok) {
        button.textContent = ok ? "Copied" : "Select it";
        button.className = "copy " + (ok ? "done" : "fail");
        setTimeout(function () { button.textContent = "Copy"; button.className = "copy"; }, 1600);
      });
    });
  });
  if (data.live) {
    var playing = function () {
      return Array.prototype.some.call(document.querySelectorAll("video"), function (v) {
        return !v.paused && !v.ended;
      });
    };
    var tick = function () {
      if (playing()) { setTimeout(tick, data.refresh * 1000); } else { location.reload(); }
    };
    setTimeout(tick, data.refresh * 1000);
  }
}());
"""
