"""Small file helpers every module shares: atomic writes, hashing, safe names."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

from wanclip.errors import LocalIOError

CHUNK = 1 << 20


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so a reader sees the old file or the new one, never half.

    The file gets the mode any other new file would (0644 under the usual umask), not
    ``mkstemp``'s private 0600: a ledger or contact sheet is as readable as the clips beside it.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    except OSError as exc:  # a read-only or full disk: ours to fix, never a traceback
        raise LocalIOError.from_os(exc, path) from exc
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, LocalIOError):
            raise LocalIOError.from_os(exc, path) from exc
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def hash_into(path: Path, digest):
    """Feed a file's bytes into ``digest`` (a resumed download continues the same hash)."""
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest


_HASHED: dict[tuple, str] = {}  # (path, device, inode, size, mtime_ns) -> sha256, for this process


def sha256_file(path: Path) -> str:
    """The file's sha256. A file this process already hashed and that has not changed since (same
    inode, size and modification time to the nanosecond; a rename into place is a new inode) is
    not read again: the render, the stitch and its pieces each check every clip."""
    st = os.stat(path)
    key = (os.fspath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    digest = _HASHED.get(key)
    if digest is None:
        digest = hash_into(path, hashlib.sha256()).hexdigest()
        if len(_HASHED) > 4096:
            _HASHED.clear()
        _HASHED[key] = digest
    return digest


def size_text(size: float) -> str:
    """A byte count as a person reads it: ``12 KB``, ``3.4 MB``, ``1.20 GB`` (never "0 MB" for a few KB)."""
    if size < 1e6:
        return f"{max(size, 0) / 1e3:.0f} KB" if size >= 1e3 or size <= 0 else "1 KB"
    if size < 1e9:
        return f"{size / 1e6:.1f} MB"
    return f"{size / 1e9:.2f} GB"


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_filename(name: str, fallback: str = "file") -> str:
    """A single path component that cannot climb out of its folder (no ``/``, no ``..``)."""
    base = _UNSAFE.sub("_", name.replace("\\", "/").split("/")[-1]).strip("._")
    return base or fallback
