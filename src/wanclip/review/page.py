"""The storyboard page: a ``Storyboard`` in, one self-contained HTML text out (pure, no I/O but
reading its own stylesheet and script, shipped as package data in ``wanclip/data/review/``).

Inline CSS and JS, links relative to the folder only (clips, film, posters), nothing fetched from
anywhere, so it works from ``file://`` as well as served. Every text from the ledger or the shots
file is HTML-escaped; the data the script reads is JSON made safe inside ``<script>``.

A chain is one row of joined cards: a connector between each two (with the frame they share, when
the render left it) and a "continues from NN" label on each continued card. A shot that starts
from a keyframe (``image:``) or lands on one (``end_image:``) says so on its card.
"""

from __future__ import annotations

import functools
import hashlib
import html
import json
from importlib import resources
from pathlib import PurePosixPath
from urllib.parse import quote

from wanclip.review.board import Card, Prompt, Storyboard, Take
from wanclip.review.timings import background_encode, time_split

REFRESH_SECONDS = 5
LIVE_MARK = '<meta name="wanclip-live"'  # in the page's head while a render runs (the server looks for it)
LONG_PROMPT = 200  # a prompt longer than this (a CJK character counts 2) is clamped, with a toggle


@functools.cache
def _asset(name: str) -> str:
    """``page.css`` / ``page.js``: read once per process (the page is rewritten after every shot)."""
    return (resources.files("wanclip") / "data" / "review" / name).read_text(encoding="utf-8")


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
    data = {"live": board.live, "refresh": REFRESH_SECONDS, "command": board.command,
            "shots": [{"name": c.name, "status": c.status, "command": c.command} for c in board.cards]}
    refresh = (f'{LIVE_MARK} content="running">\n<noscript><meta http-equiv="refresh" content="{REFRESH_SECONDS}">'
               '</noscript>') if board.live else ""
    rows = "".join(_part(f"row-{row[0].name}", _row_html(row)) for row in board.rows())
    footer = (f'<footer>Made by wanclip from <a href="ledger.json">ledger.json</a> · updated {esc(board.updated)}'
              + (f" · refreshes every {REFRESH_SECONDS} s while the render runs" if board.live else
                 " · no render is running") + "</footer>")
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(board.title)} · wanclip</title>
{refresh}
<style>
{_asset("page.css")}</style>
</head>
<body>
{_part("head", _header(board))}
<main class="grid">
{rows}
</main>
{_part("foot", footer)}
<script type="application/json" id="storyboard-data">{script_json(data)}</script>
<script>
{_asset("page.js")}</script>
</body>
</html>
"""


def _part(key: str, text: str) -> str:
    """``text`` (one element) marked as a part the live page swaps when its sig changes."""
    sig = hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]
    end = text.index(">")  # the end of its opening tag: the part's marks go last in it
    return f'{text[:end]} data-part="{esc(key)}" data-sig="{sig}"{text[end:]}'


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
{_command_html(board.command, None, "copy the command that renders this film again") if board.command else ''}
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


def _background_html(node_seconds: dict[str, float]) -> str:
    """The node pack's background encode: while the GPU went on to the next shot, so not in the bar."""
    found = background_encode([node_seconds])
    return f'<p class="background">encoded in the background in <b>{seconds_text(found[1])}</b></p>' if found else ""


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
{_split_html(time_split([card.node_seconds]), card.render_seconds)}{_background_html(card.node_seconds)}
{_takes_html(card)}
{_command_html(card.command, card.index - 1, "copy the command that re-renders this shot")}
</div>
</article>
"""


def _command_html(command: str, shot: int | None, title: str) -> str:
    which = f' data-shot="{shot}"' if shot is not None else ""
    return (f'<div class="cmd"><code>{esc(command)}</code><button type="button" class="copy"{which} '
            f'title="{esc(title)}">Copy</button></div>')


def _takes_html(card: Card) -> str:
    """The take the film uses (when the shot has more than one, or the user edited it) and the others."""
    if card.take is None and not card.takes:
        return ""
    used = ""
    if card.take is not None:
        which = "the newest" if card.take.number == card.newest else f"not the newest ({card.newest})"
        used = (f'<p class="take-used">the film uses <b>take {card.take.number}</b> · {which}'
                f'{_take_facts(card.take, seed=False)}</p>')
    if not card.takes:
        return f'<div class="takes">{used}</div>'
    items = "".join(
        f'<li class="take" id="shot-{esc(card.name)}-take-{t.number}">'
        f'<video controls preload="metadata" src="{href(t.clip)}"></video>'
        f'<div class="take-facts"><b>take {t.number}</b>{_take_facts(t)}</div></li>' for t in card.takes)
    count = len(card.takes)
    return (f'<div class="takes">{used}<details class="other-takes"><summary>{count} other '
            f'take{"s" if count > 1 else ""}</summary><ul>{items}</ul></details></div>')


def _take_facts(take: Take, seed: bool = True) -> str:
    facts = [f"seed {esc(take.seed)}"] if seed and take.seed is not None else []
    if take.rendered_at:
        shown = take.rendered_at.replace("T", " ").removesuffix("Z")[:16] + (" UTC" if take.rendered_at.endswith("Z") else "")
        facts.append(f'<time datetime="{esc(take.rendered_at)}">{esc(shown)}</time>')
    if take.edited:
        facts.append('<span class="edited">edited by you</span>')
    text = "".join(f" · {f}" for f in facts)
    if take.prompt:
        text += f'<span class="take-prompt" title="{esc(take.prompt)}">prompt: {esc(take.prompt)}</span>'
    return text


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
    text = f'<p class="prompt">{esc(prompt.text)}{style}</p>'
    if _weight(prompt.text + prompt.style) > LONG_PROMPT or prompt.text.count("\n") > 3:
        text = (f'<div class="prompt-box"><details class="more"><summary title="show or hide the whole prompt">'
                f'</summary></details>{text}</div>')
    return (f'{text}'
            f'<details class="negative"><summary><span class="label">negative</span>{negative}</summary></details>')


def _weight(text: str) -> int:
    """Its length as it takes room on a line: a wide (CJK) character counts as two."""
    return sum(2 if ord(c) >= 0x1100 else 1 for c in text)


def _transition_text(transition: dict | None, continues: str | None = None) -> str:
    if continues:
        return "cut (first frame dropped: it is the last of " + esc(continues) + ")"
    if not transition:
        return "— (first shot)"
    kind = transition.get("type", "fade")
    return esc(kind) if kind == "cut" else f"{esc(kind)} {float(transition.get('duration') or 0):g} s"
