"""URLs as a person may see them: a ``user:password@`` never reaches a message, a log or ``--json``.

ComfyUI servers (``-s http://user:pass@host``) and hub mirrors (``--endpoint``, ``HF_ENDPOINT``) both
take credentials in the URL; every message that names one goes through ``redact``. Imports nothing.
"""

from __future__ import annotations


def redact(url: str) -> str:
    """``url`` safe to print: any ``user:pass@`` replaced by ``***@``, query and fragment dropped."""
    text = url.strip()
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "", text
    netloc, slash, path = rest.partition("/")
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    path = path.split("?", 1)[0].split("#", 1)[0]
    return f"{scheme}{sep}{netloc}{slash}{path}"
