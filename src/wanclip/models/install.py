"""Verified resumable installs of the model files: from the hub, or from a local folder.

A file reaches its final name under ``models/`` only after its size and sha256 match the manifest. An
entry without ``bytes`` gets its size before any transfer: the hub's (its metadata, whose sha256 ETag must
be the manifest's) or, with ``--from-dir``, the local file's; its sha256 is what decides.
Bytes stream to ``<dest>.part`` beside the final file (same filesystem, so the last step is an
atomic ``os.replace``); a later run continues a ``.part`` with an HTTP Range request, re-hashing the
bytes on disk once. huggingface_hub gives the URL and the metadata (size, sha256 ETag, CDN
redirect); the bytes are ours because since 1.18 the hub client restarts a killed download from zero.

The only user of huggingface_hub and httpx2, and only inside the functions that talk to the hub:
``wanclip setup`` imports this module, and still pays for the hub client only when it downloads.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

from wanclip.errors import EXIT_BAD_INPUT, AssetError, Interrupted
from wanclip.files import CHUNK, hash_into, sha256_file
from wanclip.models.manifest import ModelFile
from wanclip.models.results import Event, FileResult, OnEvent, SetupResult
from wanclip.models.verify import VerifiedState, size_of, stat_or_none, vae_warnings, verify_file
from wanclip.urls import redact

DEFAULT_ENDPOINT = "https://huggingface.co"
WRITE_CHUNK = CHUNK  # file reads for hashing and copying
FLUSH_AT = 1 << 20  # received bytes reach the disk in pieces this big: a kill loses less than this
RETRIES = 3                      # in-process Range retries when a connection breaks mid-body
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
WRITE_PROBE = ".wanclip-write-test"


class _Failed(Exception):
    """One file failed; the others go on. Carries what the person reads and what to do."""

    def __init__(self, detail: str, fix: str):
        super().__init__(detail)
        self.detail, self.fix = detail, fix


# -- install ---------------------------------------------------------------------------------------
@dataclass
class Source:
    """Where bytes come from: the hub (endpoint, token) or a local folder (from_dir)."""

    endpoint: str = DEFAULT_ENDPOINT

    @property
    def shown(self) -> str:
        """The endpoint as messages name it: without a ``user:password@`` (a mirror's credentials)."""
        return redact(self.endpoint)
    token: str | None = None
    from_dir: Path | None = None
    retries: int = RETRIES


OpenFile = Callable[[Path, str], BinaryIO]  # how part files are opened for writing: ``open``, or a test's


@dataclass
class _Run:
    """What the transfers of one ``install()`` share."""

    source: Source
    state: VerifiedState
    emit: OnEvent
    open_file: OpenFile
    stop: threading.Event = field(default_factory=threading.Event)
    fetched: _Counter = field(default_factory=lambda: _Counter())
    disk_full: str | None = None  # the file whose write found the disk full


def install(items: list[ModelFile], models_dir: Path, source: Source, *, workers: int = 0,
            on_event: OnEvent | None = None, state: VerifiedState | None = None,
            disk_free: Callable[[Path], int] | None = None, open_file: OpenFile = open) -> SetupResult:
    """Fetch every file not yet verified, in parallel; a failed file does not stop the others.

    Raises ``AssetError`` before any transfer when a folder is not writable (exit 2) or the disk
    is too small, and when the disk fills up midway (partial downloads are kept for a rerun);
    ``Interrupted`` on Ctrl-C (partials are kept and a rerun resumes them).
    """
    run = _Run(source, state or VerifiedState(), on_event or (lambda event: None), open_file)
    disk_free = disk_free or _disk_free
    result = SetupResult(str(models_dir), warnings=vae_warnings(models_dir))
    for warning in result.warnings:
        run.emit(Event("warning", message=warning))
    todo = [item for item in items if not _already_there(item, models_dir, run.state)]
    done = {item.dest: FileResult(item.dest, "skipped", size_of(item, models_dir / item.dest))
            for item in items if item not in todo}
    _check_writable(todo, models_dir, open_file)
    todo, unsized = _with_sizes(todo, run)
    done.update(unsized)
    _check_free_space(todo, models_dir, disk_free)
    run.emit(Event("plan", total=sum(item.bytes for item in todo), message=f"{len(todo)} of {len(items)} to fetch"))
    with ThreadPoolExecutor(max_workers=max(1, workers or len(todo) or 1)) as pool:
        futures = {item.dest: pool.submit(_install_one, item, models_dir, run) for item in todo}
        try:
            for dest, future in futures.items():
                done[dest] = future.result()
        except KeyboardInterrupt:
            run.stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
            raise Interrupted("setup was interrupted; the partial downloads (.part) are kept",
                              "run wanclip setup again: it continues where it stopped") from None
        except (_DiskFull, _Stopped):  # _Stopped: another file found the disk full first
            run.stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
            raise _disk_full_error(run.disk_full, todo, models_dir, disk_free) from None
    result.files = [done[item.dest] for item in items]
    result.fetched_bytes = run.fetched.value
    return result


class _Counter:
    def __init__(self):
        self.value, self._lock = 0, threading.Lock()

    def add(self, n: int) -> None:
        with self._lock:
            self.value += n


class _DiskFull(Exception):
    """A write found no space left; every transfer stops, and setup says how much is missing."""


class _Stopped(Exception):
    """This transfer was stopped because another one failed the whole run, or Ctrl-C."""


def _already_there(item: ModelFile, models_dir: Path, state: VerifiedState) -> bool:
    """Skip without a request: the file is there and was verified (recorded, or hashed now)."""
    target = models_dir / item.dest
    return target.exists() and verify_file(item, target, state) is None


def _with_sizes(todo: list[ModelFile], run: _Run) -> tuple[list[ModelFile], dict[str, FileResult]]:
    """``todo`` with every entry's ``bytes`` set, looked up before any transfer for the entries without
    one: the local file's size (``--from-dir``), else the hub's. An entry whose size cannot be looked up
    fails here, with why; the others go on."""
    sized: list[ModelFile] = []
    failed: dict[str, FileResult] = {}
    for item in todo:
        if item.bytes is not None:
            sized.append(item)
            continue
        try:
            size = (_find_local(item, run.source.from_dir).stat().st_size if run.source.from_dir
                    else _hub_size(item, run.source))
        except _Failed as exc:
            detail, fix = exc.detail, exc.fix
        except OSError as exc:
            detail, fix = f"cannot read the size of {item.name}: {_reason(exc)}", "check the --from-dir folder"
        else:
            sized.append(item.model_copy(update={"bytes": size}))
            continue
        run.emit(Event("done", item.dest, message="failed"))
        failed[item.dest] = FileResult(item.dest, "failed", 0, detail, fix)
    return sized, failed


def _check_writable(todo: list[ModelFile], models_dir: Path, open_file: OpenFile) -> None:
    """Make each folder a file goes to, and write a probe file into it: a read-only models folder is
    refused before any byte is fetched, not after minutes of downloading."""
    for folder in sorted({(models_dir / item.dest).parent for item in todo}):
        probe = folder / WRITE_PROBE
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with open_file(probe, "wb"):
                pass
            probe.unlink()
        except OSError as exc:
            raise AssetError(f"cannot write to {models_dir}: {_reason(exc)} ({exc.filename or folder})",
                             "make the models folder writable for this user (or mount it read-write), or "
                             "choose another --models-dir / --comfy-dir", exit_code=EXIT_BAD_INPUT) from exc


def _reason(exc: OSError) -> str:
    if exc.errno in (errno.EEXIST, errno.ENOTDIR):
        return "a part of the path is a file, not a folder"
    return exc.strerror or str(exc)


def _disk_free(path: Path) -> int:
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free


def _still_needed(todo: list[ModelFile], models_dir: Path) -> int:
    """Bytes still to write for files not installed yet (what their .part files hold is done)."""
    return sum(item.bytes - _part_size(models_dir / item.dest, item) for item in todo
               if not (models_dir / item.dest).exists())


def _check_free_space(todo: list[ModelFile], models_dir: Path, disk_free: Callable[[Path], int]) -> None:
    needed = _still_needed(todo, models_dir)
    free = disk_free(models_dir)
    if needed > free:
        raise AssetError(f"not enough free disk under {models_dir}: {_gb(needed)} needed, {_gb(free)} free "
                         f"({_gb(needed - free)} short)",
                         "free some space or choose another --models-dir / --comfy-dir")


def _disk_full_error(dest: str | None, todo: list[ModelFile], models_dir: Path,
                     disk_free: Callable[[Path], int]) -> AssetError:
    needed = _still_needed(todo, models_dir)
    return AssetError(f"the disk under {models_dir} is full: writing models/{dest} failed with "
                      f"{_gb(disk_free(models_dir))} free; {_gb(needed)} more are needed for the files not "
                      "installed yet",
                      f"free {_gb(needed)} there (or choose another --models-dir / --comfy-dir) and run wanclip "
                      "setup again: the partial downloads (.part) are kept and continue where they stopped")


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.2f} MB"


def _part_of(target: Path) -> Path:
    return target.with_name(target.name + ".part")


def _part_size(target: Path, item: ModelFile) -> int:
    stat = stat_or_none(_part_of(target))
    return stat.st_size if stat and stat.st_size <= item.bytes else 0


def _install_one(item: ModelFile, models_dir: Path, run: _Run) -> FileResult:
    target = models_dir / item.dest
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if run.source.from_dir:
            _copy_in(item, target, run)
        else:
            _download(item, target, run)
        run.state.remember(target, item.sha256)
    except OSError as exc:
        run.emit(Event("done", item.dest, message="failed"))
        if exc.errno in DISK_FULL:
            run.disk_full = run.disk_full or item.dest
            run.stop.set()
            raise _DiskFull(item.dest) from exc
        return FileResult(item.dest, "failed", item.bytes, f"cannot write models/{item.dest}: {_reason(exc)}",
                          "check that the models folder is writable")
    except _Failed as exc:
        run.emit(Event("done", item.dest, message="failed"))
        return FileResult(item.dest, "failed", item.bytes, exc.detail, exc.fix)
    run.emit(Event("done", item.dest, item.bytes, item.bytes, "installed"))
    return FileResult(item.dest, "installed", item.bytes)


def _finish(item: ModelFile, part: Path, target: Path, digest: str, what: str) -> None:
    """The only way a file gets its final name: size and sha256 both match."""
    size = part.stat().st_size
    if size != item.bytes or digest != item.sha256:
        part.unlink(missing_ok=True)
        raise _Failed(f"{what} of models/{item.dest} does not match the manifest "
                      f"({size:,} bytes, sha256 {digest[:12]}…; expected {item.bytes:,} bytes, "
                      f"sha256 {item.sha256[:12]}…); the partial file was deleted",
                      "run wanclip setup again; if it repeats, the source serves other bytes "
                      "(a broken mirror or a changed upstream file)")
    os.replace(part, target)


# -- from a local folder ---------------------------------------------------------------------------
def _copy_in(item: ModelFile, target: Path, run: _Run) -> None:
    """Hard-link when on the same filesystem (instant, no space), else copy; verified either way.
    A copy cut short is deleted: it restarts from zero anyway."""
    src = _find_local(item, run.source.from_dir)
    part = _part_of(target)
    part.unlink(missing_ok=True)
    run.emit(Event("start", item.dest, 0, item.bytes))
    try:
        try:
            os.link(src, part)
            digest = sha256_file(part)
            run.emit(Event("progress", item.dest, item.bytes, item.bytes))
        except OSError:
            digest = _copy_hashing(src, part, item, run)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    _finish(item, part, target, digest, f"the copy from {src}")


def _find_local(item: ModelFile, from_dir: Path) -> Path:
    """The file as a models/ tree, as the hub's repo tree, or flat in the folder."""
    candidates = [from_dir / item.dest, from_dir / "models" / item.dest, from_dir / item.repo / item.path,
                  from_dir / item.path, from_dir / item.name]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise _Failed(f"{item.name} is not in {from_dir}",
                  f"--from-dir takes a local folder of model files: put it at {from_dir / item.dest} "
                  f"(or at {from_dir / item.path}, or directly in {from_dir})")


def _copy_hashing(src: Path, part: Path, item: ModelFile, run: _Run) -> str:
    digest, copied = hashlib.sha256(), 0
    with open(src, "rb") as fin, run.open_file(part, "wb") as fout:
        while block := fin.read(WRITE_CHUNK):
            if run.stop.is_set():
                raise _Stopped()
            fout.write(block)
            digest.update(block)
            copied += len(block)
            run.emit(Event("progress", item.dest, copied, item.bytes))
    return digest.hexdigest()


# -- from the hub ----------------------------------------------------------------------------------
class _Partial:
    """``<dest>.part``: the bytes on disk and the sha256 of exactly those bytes."""

    def __init__(self, item: ModelFile, target: Path, open_file: OpenFile):
        self.item, self.path, self.open_file = item, _part_of(target), open_file
        self.digest, self.have = hashlib.sha256(), 0
        stat = stat_or_none(self.path)
        if stat and stat.st_size > item.bytes:
            self.path.unlink()
        elif stat:  # resuming: hash what is on disk once, then the stream continues the same hash
            hash_into(self.path, self.digest)
            self.have = stat.st_size

    def restart(self) -> None:
        self.digest, self.have = hashlib.sha256(), 0
        with self.open_file(self.path, "wb"):
            pass

    def append(self, fh, block: bytes) -> None:
        fh.write(block)
        self.digest.update(block)
        self.have += len(block)


def _download(item: ModelFile, target: Path, run: _Run) -> None:
    import httpx2  # the hub client is imported only when something is downloaded

    partial = _Partial(item, target, run.open_file)
    run.emit(Event("start", item.dest, partial.have, item.bytes))
    attempts = 0
    while partial.have < item.bytes:
        url, headers = _locate(item, run.source)
        try:
            _stream(url, headers, partial, run)
        except (httpx2.TransportError, _ShortBody) as exc:
            attempts += 1
            if attempts > run.source.retries:
                raise _Failed(f"the download of models/{item.dest} from {run.source.shown} kept breaking off "
                              f"({type(exc).__name__}); {partial.have:,} of {item.bytes:,} bytes are kept",
                              "run wanclip setup again: it continues where it stopped") from exc
    _finish(item, partial.path, target, partial.digest.hexdigest(), "the download")


class _ShortBody(Exception):
    pass


def _locate(item: ModelFile, source: Source) -> tuple[str, dict]:
    """HEAD through huggingface_hub: the byte URL (maybe a CDN) and the headers to send there."""
    from huggingface_hub.utils import build_hf_headers

    url, meta = _metadata(item, source)
    if meta.size is not None and meta.size != item.bytes:
        raise _Failed(f"{item.repo}/{item.path} has {meta.size:,} bytes upstream, the manifest says "
                      f"{item.bytes:,}", "update wanclip (or your --manifest) once you trust the new file")
    headers = {"Accept-Encoding": "identity"}
    if _origin(meta.location) == _origin(url):  # a token never leaves the hub for a CDN
        headers.update(build_hf_headers(token=source.token))
    return meta.location, headers


def _hub_size(item: ModelFile, source: Source) -> int:
    """The size the hub states for an entry without ``bytes`` (its sha256 ETag checked first)."""
    meta = _metadata(item, source)[1]
    if not meta.size:
        raise _Failed(f"{source.shown} states no size for {item.repo}/{item.path} (revision {item.revision}), "
                      "and the manifest gives none; nothing was downloaded",
                      "try again later, or another mirror with --endpoint (or give bytes: in your --manifest)")
    return meta.size


def _metadata(item: ModelFile, source: Source):
    """The file's URL and the hub's metadata of it (``get_hf_file_metadata``: size, sha256 ETag, where
    the bytes are); refused when the ETag is a sha256 other than the manifest's."""
    import httpx2
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import FileMetadataError, HfHubHTTPError

    url = hf_hub_url(item.repo, item.path, revision=item.revision, endpoint=source.endpoint)
    try:
        meta = get_hf_file_metadata(url, token=source.token, endpoint=source.endpoint)
    except (HfHubHTTPError, FileMetadataError, httpx2.HTTPError) as exc:
        raise _hub_failure(item, source, exc) from exc
    if meta.etag and len(meta.etag) == 64 and meta.etag != item.sha256:
        raise _Failed(f"{item.repo}/{item.path} changed upstream: the hub says sha256 {meta.etag[:12]}…, "
                      f"the manifest {item.sha256[:12]}…; nothing was downloaded",
                      "update wanclip (or your --manifest) once you trust the new file")
    return url, meta


def _origin(url: str) -> tuple[str, str | None, int | None]:
    parts = urlsplit(url)
    return parts.scheme, parts.hostname, parts.port


def _hub_failure(item: ModelFile, source: Source, exc: Exception) -> _Failed:
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{item.repo}/{item.path} (revision {item.revision})"
    if isinstance(exc, GatedRepoError):
        return _Failed(f"{item.repo} is gated: the hub wants you to accept its terms",
                       f"accept them on the repo page, then set HF_TOKEN to a token of that account ({where})")
    if isinstance(exc, RemoteEntryNotFoundError):
        return _Failed(f"{where} is not on {source.shown}: it was moved or renamed upstream",
                       "find its new path on the repo page and pass a --manifest with it")
    if isinstance(exc, RevisionNotFoundError):
        return _Failed(f"{where}: revision {item.revision} does not exist", "fix the revision in the manifest")
    if isinstance(exc, RepositoryNotFoundError):
        return _Failed(f"{source.shown} refused {where} (HTTP {_status(exc)}): the repo is private, "
                       "missing, or the token is not valid", "set HF_TOKEN to a valid token with access")
    if isinstance(exc, HfHubHTTPError):
        return _Failed(f"{source.shown} answered HTTP {_status(exc)} for {where}",
                       "try again later, or another mirror with --endpoint")
    return _Failed(f"cannot reach {source.shown} for {where} ({type(exc).__name__})",
                   "check the network, or pass a reachable mirror with --endpoint / HF_ENDPOINT")


def _status(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    return str(response.status_code) if response is not None else "error"


def _stream(url: str, headers: dict, partial: _Partial, run: _Run) -> None:
    """GET from the bytes on disk onwards, appending to the part and its hash."""
    import httpx2
    from huggingface_hub.utils import get_session

    item = partial.item
    request_headers = dict(headers, Range=f"bytes={partial.have}-") if partial.have else headers
    timeout = httpx2.Timeout(30.0, read=120.0)
    with get_session().stream("GET", url, headers=request_headers, timeout=timeout,
                              follow_redirects=True) as response:
        if response.status_code not in (200, 206):
            raise _Failed(f"{_origin(url)[1]} answered HTTP {response.status_code} to the download of "
                          f"models/{item.dest}", "run wanclip setup again; if it repeats try another --endpoint")
        if response.status_code == 200 and partial.have:  # the server ignored Range: start over
            partial.restart()
        with run.open_file(partial.path, "ab") as fh:
            _pump(response.iter_bytes(), fh, partial, run)
    if partial.have < item.bytes:
        raise _ShortBody()


def _pump(pieces, fh, partial: _Partial, run: _Run) -> None:
    """Write and hash what arrives in FLUSH_AT blocks; on any error the received bytes still land."""
    buffer, item = bytearray(), partial.item

    def flush() -> None:
        if buffer:
            partial.append(fh, buffer)
            run.fetched.add(len(buffer))
            buffer.clear()
            run.emit(Event("progress", item.dest, partial.have, item.bytes))

    try:
        for piece in pieces:
            buffer += piece
            if partial.have + len(buffer) > item.bytes:
                raise _Failed(f"the server sent more than {item.bytes:,} bytes for models/{item.dest}",
                              "run wanclip setup again; if it repeats try another --endpoint")
            if len(buffer) >= FLUSH_AT:
                flush()
            if run.stop.is_set():
                raise _Stopped()
    finally:
        flush()
