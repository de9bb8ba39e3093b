"""Names that become file and folder names: a film's folder (its slug), a shot's name, a clip's folder.

Non-Latin text is first-class: ``番茄炒蛋`` is the folder ``out/番茄炒蛋``, a shot may be named
``开场``. A name keeps the text's letters, combining marks and digits (Chinese, Japanese, Korean,
Arabic, Devanagari with its vowel signs...), NFKC-normalised and case-folded where the script has
case; everything else (spaces, punctuation, path separators, control characters, emoji) becomes
``-``. Names are bounded in UTF-8 *bytes* (a filesystem takes 255 bytes per name; clip files add
``NN_`` and ``.takeN.mp4``), never start with ``.`` or ``-``, and avoid Windows' reserved device
names. A title with no letter or digit at all (only emoji) still gets a name of its own, stable
and unique to it: ``film-<hash of the title>``, never a shared ``film``.

An ASCII title keeps the slug earlier versions gave it (``Tomato & Egg!`` is ``tomato-egg``), so
existing film folders and ledgers are found again.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata

MAX_CHARS = 64  # as before: an ASCII title's slug is its first 64 characters
MAX_BYTES = 120  # well under the 255 bytes of a file name, with room for NN_ and .takeN.mp4
CLIP_CHARS, CLIP_BYTES = 40, 80  # the prompt's part of a clip's folder and file names
HASH_CHARS = 8
# Windows refuses these as file or folder names (in any case, with any extension)
WINDOWS_RESERVED = frozenset({"con", "prn", "aux", "nul", *(f"com{i}" for i in "123456789¹²³"),
                              *(f"lpt{i}" for i in "123456789¹²³")})
_JOINERS = {"\u200c", "\u200d"}  # zero-width (non-)joiners: dropped, not a word break


def fold(text: str) -> str:
    """NFKC, case-folded, NFC: ``Ｔｏｍａｔｏ`` and ``TOMATO`` are ``tomato``; ``Straße`` is ``strasse``."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFKC", text).casefold())


def short_hash(*parts: object) -> str:
    """A short, stable hash of ``parts`` (text NFC-normalised first): the same input, the same name."""
    data = json.dumps([unicodedata.normalize("NFC", p) if isinstance(p, str) else p for p in parts],
                      ensure_ascii=False)
    return hashlib.sha256(data.encode("utf-8")).hexdigest()[:HASH_CHARS]


def _letter(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "LN"


def _mark(ch: str) -> bool:
    """A combining mark that belongs to the letter before it (a vowel sign, an accent); not an
    enclosing mark (the keycap of ``1️⃣``) or a variation selector (an emoji's presentation)."""
    code = ord(ch)
    selector = 0xFE00 <= code <= 0xFE0F or 0xE0100 <= code <= 0xE01EF
    return unicodedata.category(ch) in ("Mn", "Mc") and not selector


def _bounded(text: str, max_chars: int, max_bytes: int) -> str:
    """At most ``max_chars`` characters and ``max_bytes`` UTF-8 bytes, never cutting a letter from
    its combining marks."""
    end, size = 0, 0
    for ch in text[:max_chars]:
        size += len(ch.encode("utf-8"))
        if size > max_bytes:
            break
        end += 1
    while 0 < end < len(text) and _mark(text[end]):  # a mark left behind: drop its letter too
        end -= 1
    return text[:end]


def slug_or_empty(text: str, max_chars: int = MAX_CHARS, max_bytes: int = MAX_BYTES) -> str:
    """The text's letters, marks and digits, folded, runs of anything else one ``-``; "" when none."""
    slug = _cleaned(text)
    for _ in range(3):  # a dropped joiner can bring a letter and a mark together: fold again until settled
        again = _cleaned(slug)
        if again == slug:
            break
        slug = again
    slug = _bounded(slug, max_chars, max_bytes)
    return f"{slug}-film" if slug in WINDOWS_RESERVED else slug


def _cleaned(text: str) -> str:
    out: list[str] = []
    kept = False
    for ch in fold(text):
        if ch in _JOINERS:
            continue
        if _letter(ch) or (kept and _mark(ch)):
            out.append(ch)
            kept = True
            continue
        if out and out[-1] != "-":
            out.append("-")
        kept = False
    return "".join(out).strip("-")


def slugify(text: str, max_chars: int = MAX_CHARS, max_bytes: int = MAX_BYTES, fallback: str = "film") -> str:
    """The name of ``text`` (a film's folder): ``Tomato & Egg!`` -> ``tomato-egg``, ``番茄炒蛋`` ->
    ``番茄炒蛋``; a title without letters or digits -> ``film-<hash of the title>``."""
    return slug_or_empty(text, max_chars, max_bytes) or f"{fallback}-{short_hash(text)}"


def name_problem(value: str) -> str | None:
    """Why ``value`` cannot be a shot's name (it becomes part of file names), or None.

    A name is letters (lower case where the script has case), digits, combining marks, ``-`` and
    ``_``, starting with a letter or digit, NFKC-normalised, at most 64 characters and 120 bytes."""
    if not value:
        return "it is empty"
    if not _letter(value[0]):
        return "it must start with a letter or a digit"
    if fold(value) != value:
        return "letters must be lower case, in their normal form (not full-width)"
    for before, ch in zip(" " + value[:-1], value, strict=True):
        if not (_letter(ch) or ch in "-_" or (_mark(ch) and (_letter(before) or _mark(before)))):
            return f"{_describe(ch)} cannot be in a name"
    if len(value) > MAX_CHARS or len(value.encode("utf-8")) > MAX_BYTES:
        return f"it is too long (at most {MAX_CHARS} characters and {MAX_BYTES} bytes of UTF-8)"
    return None


def _describe(ch: str) -> str:
    if ch == "/" or ch == "\\":
        return f"{ch!r} (a path separator)"
    if ch == ".":
        return "'.'"
    name = unicodedata.name(ch, "")
    return f"{ch!r} ({name.lower()})" if name else repr(ch)


def clip_folder_name(prompt: str, seed: int, width: int, height: int, frames: int) -> str:
    """``clip-<the prompt's slug, bounded>-<hash of prompt, seed, size and length>``: the same
    prompt and options are the same folder (a rerun resumes), another seed or size another one."""
    slug = slug_or_empty(prompt, CLIP_CHARS, CLIP_BYTES).strip("-")
    tag = short_hash(prompt, seed, width, height, frames)
    return f"clip-{slug}-{tag}" if slug else f"clip-{tag}"


def clip_shot_name(prompt: str) -> str:
    """The shot name of a `wanclip clip` (its clip is ``clips/01_<name>.mp4``)."""
    return slug_or_empty(prompt, CLIP_CHARS, CLIP_BYTES).strip("-") or "clip"
