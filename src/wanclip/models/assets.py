"""Model files: the manifest, verified resumable downloads, installs from a local folder, checks.

A file reaches its final name under ``models/`` only after its size and sha256 match the manifest.
Bytes stream to ``<dest>.part`` beside the final file (same filesystem, so the last step is an
atomic ``os.replace``); a later run continues a ``.part`` with an HTTP Range request, re-hashing the
bytes on disk once. huggingface_hub gives the URL and the metadata (size, sha256 ETag, CDN
redirect); the bytes are ours because since 1.18 the hub client restarts a killed download from zero.

Verified files are recorded in ``$WANCLIP_HOME/verified.json`` (absolute path -> size, mtime_ns,
sha256), so a rerun trusts an unchanged file without hashing 38 GB again. The record lives with
wanclip's state rather than in ``models/`` because the models folder may be shared or read-only.

Nothing here prints: progress goes to an ``on_event`` callback, outcomes come back as typed results.

huggingface_hub and httpx2 are imported inside the functions that talk to the hub: render and
doctor read the manifest through this module and must not pay ~1 s for the hub client.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import BinaryIO
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from wanclip import config
from wanclip.errors import EXIT_BAD_INPUT, AssetError, Interrupted
from wanclip.files import CHUNK, atomic_write_text, hash_into, sha256_file

DEFAULT_ENDPOINT = "https://huggingface.co"
WRITE_CHUNK = CHUNK  # file reads for hashing and copying
FLUSH_AT = 1 << 20  # received bytes reach the disk in pieces this big: a kill loses less than this
RETRIES = 3                      # in-process Range retries when a connection breaks mid-body
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
MODEL_FOLDERS = ("diffusion_models", "text_encoders", "vae", "loras", "checkpoints", "unet", "clip")
WRITE_PROBE = ".wanclip-write-test"
WRONG_VAE = "vae/wan2.2_vae.safetensors"
VAE_WARNING = ("{path} is left alone, but it is the 48-channel VAE of the 5B model: the 14B graph needs "
               "vae/wan_2.1_vae.safetensors (a 48-channel VAE fails in VAEDecode only after sampling, minutes in)")


# -- the manifest ----------------------------------------------------------------------------------
class ModelFile(BaseModel):
    """One file: where it is on the hub, where it goes under models/, what its bytes must be."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    repo: str = Field(pattern=r"^[\w.-]+/[\w.-]+$")
    path: str = Field(min_length=1)
    dest: str
    bytes: int = Field(gt=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    revision: str = "main"

    @field_validator("dest")
    @classmethod
    def _dest_stays_in_models(cls, value: str) -> str:
        parts = PurePosixPath(value).parts
        if value.startswith("/") or "\\" in value or ".." in parts or len(parts) < 2:
            raise ValueError("dest must be <folder>/<file name> under models/, e.g. vae/wan_2.1_vae.safetensors")
        return value

    @property
    def folder(self) -> str:
        return self.dest.split("/")[0]

    @property
    def name(self) -> str:
        return self.dest.split("/", 1)[1]


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    files: list[ModelFile] = Field(min_length=1)


# `wanclip setup --with NAME`: the built-in manifests of optional file sets, beside data/models.yaml.
EXTRAS = {"i2v": "models_i2v.yaml"}  # image-to-video: the I2V experts and their LightX2V LoRA pair
EXTRA_PURPOSE = {"i2v": "image-to-video shots (`image:`, `end_image:`, `continue:`)"}


def extra_manifest_path(name: str) -> Path:
    """The built-in manifest of one ``--with`` set; an unknown name is refused with the known ones."""
    if name not in EXTRAS:
        raise AssetError(f"there is no file set {name!r} to add with --with",
                         "known sets: " + "; ".join(f"{k}, for {EXTRA_PURPOSE[k]}" for k in EXTRAS),
                         exit_code=EXIT_BAD_INPUT)
    return Path(str(resources.files("wanclip") / "data" / EXTRAS[name]))


def load_manifest(path: Path | None = None, extras: Iterable[str] = ()) -> list[ModelFile]:
    """The built-in manifest, or a user's file of the same format (exit 2 when it does not validate),
    followed by the files of each ``extras`` set (``--with i2v``) that it does not already list."""
    files = _read_manifest(path)
    for name in dict.fromkeys(extras):
        have = {f.dest for f in files}
        files += [f for f in _read_manifest(extra_manifest_path(name), f"the built-in {name} manifest")
                  if f.dest not in have]
    return files


def extra_set_of(dest: str) -> str | None:
    """The ``--with`` set that installs ``dest`` (``folder/name``); None for a base file or an unknown one."""
    return _extra_dests().get(dest)


def setup_command(dest: str) -> str:
    """The `wanclip setup` line that installs ``dest``: with ``--with SET`` for a file of a set."""
    name = extra_set_of(dest)
    return f"wanclip setup --with {name}" if name else "wanclip setup"


@cache
def _extra_dests() -> dict[str, str]:
    """dest -> the ``--with`` set whose built-in manifest lists it (and the base manifest does not)."""
    base = {f.dest for f in _read_manifest(None)}
    return {f.dest: name for name, file in EXTRAS.items()
            for f in _read_manifest(Path(str(resources.files("wanclip") / "data" / file)))
            if f.dest not in base}


def _read_manifest(path: Path | None, label: str | None = None) -> list[ModelFile]:
    where = label or (str(path) if path else "the built-in manifest")
    try:
        text = Path(path).read_text("utf-8") if path else \
            resources.files("wanclip").joinpath("data/models.yaml").read_text("utf-8")
        files = Manifest.model_validate(yaml.safe_load(text)).files
    except OSError as exc:
        raise AssetError(f"cannot read the manifest {where}: {exc.strerror}", "check the --manifest path",
                         exit_code=EXIT_BAD_INPUT) from exc
    except (yaml.YAMLError, ValidationError) as exc:
        raise AssetError(f"{where} is not a valid manifest: {_first_line(exc)}",
                         "each entry needs repo, path, dest, bytes, sha256 (revision is optional)",
                         exit_code=EXIT_BAD_INPUT) from exc
    dests = [f.dest for f in files]
    if len(set(dests)) != len(dests):
        raise AssetError(f"{where} names the same dest twice", "give each file its own dest",
                         exit_code=EXIT_BAD_INPUT)
    return files


def _first_line(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        return f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
    return str(exc).splitlines()[0]


# -- typed results and events ----------------------------------------------------------------------
@dataclass
class Event:
    """Progress for the CLI: kind is plan | start | progress | done | warning."""

    kind: str
    file: str = ""
    done: int = 0
    total: int = 0
    message: str = ""


@dataclass
class FileResult:
    """status: installed | skipped (already verified) | ok (--check) | missing | wrong | failed."""

    dest: str
    status: str
    bytes: int = 0
    detail: str = ""
    fix: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("installed", "skipped", "ok")


@dataclass
class SetupResult:
    models_dir: str
    files: list[FileResult] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    fetched_bytes: int = 0

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.files)

    def to_dict(self) -> dict:
        return {"models_dir": self.models_dir, "ok": self.ok, "fetched_bytes": self.fetched_bytes,
                "warnings": self.warnings, "files": [asdict(f) for f in self.files]}


OnEvent = Callable[[Event], None]


class _Failed(Exception):
    """One file failed; the others go on. Carries what the person reads and what to do."""

    def __init__(self, detail: str, fix: str):
        super().__init__(detail)
        self.detail, self.fix = detail, fix


# -- the record of verified files ------------------------------------------------------------------
class VerifiedState:
    """``$WANCLIP_HOME/verified.json``: files hashed once, trusted while size and mtime are unchanged."""

    def __init__(self, path: Path | None = None):
        self.path = path or config.home() / "verified.json"
        self._lock = threading.Lock()
        try:
            self._records = json.loads(self.path.read_text("utf-8"))
        except (OSError, ValueError):
            self._records = {}

    def trusted(self, target: Path, sha256: str) -> bool:
        record = self._records.get(str(target.resolve()))
        stat = _stat(target)
        return bool(record and stat and record == {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                                                   "sha256": sha256})

    def remember(self, target: Path, sha256: str) -> None:
        stat = target.stat()
        with self._lock:
            self._records[str(target.resolve())] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                                                    "sha256": sha256}
            try:
                atomic_write_text(self.path, json.dumps(self._records, indent=1, sort_keys=True))
            except OSError:  # only a cache: the file stays verified, a later run hashes it again
                pass


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except OSError:
        return None


# -- verification ----------------------------------------------------------------------------------
def verify_file(item: ModelFile, target: Path, state: VerifiedState) -> str | None:
    """None when ``target`` holds the manifest's bytes, else why not (hashes only when needed)."""
    stat = _stat(target)
    if stat is None:
        return "missing"
    if stat.st_size != item.bytes:
        return f"{stat.st_size:,} bytes, expected {item.bytes:,}"
    if state.trusted(target, item.sha256):
        return None
    digest = sha256_file(target)
    if digest != item.sha256:
        return f"sha256 {digest[:12]}…, expected {item.sha256[:12]}…"
    state.remember(target, item.sha256)
    return None


def check(items: Iterable[ModelFile], models_dir: Path, state: VerifiedState | None = None) -> SetupResult:
    """``setup --check``: verify only, no network; every file ok, missing or wrong."""
    state = state or VerifiedState()
    result = SetupResult(str(models_dir), warnings=_vae_warnings(models_dir))
    for item in items:
        problem = verify_file(item, models_dir / item.dest, state)
        if problem is None:
            result.files.append(FileResult(item.dest, "ok", item.bytes))
        elif problem == "missing":
            result.files.append(FileResult(item.dest, "missing", item.bytes, f"models/{item.dest} is missing",
                                           f"run {setup_command(item.dest)}"))
        else:
            result.files.append(FileResult(item.dest, "wrong", item.bytes, f"models/{item.dest}: {problem}",
                                           f"run {setup_command(item.dest)} to fetch it again"))
    return result


def _vae_warnings(models_dir: Path) -> list[str]:
    return [VAE_WARNING.format(path=f"models/{WRONG_VAE}")] if (models_dir / WRONG_VAE).exists() else []


# -- install ---------------------------------------------------------------------------------------
@dataclass
class Source:
    """Where bytes come from: the hub (endpoint, token) or a local folder (from_dir)."""

    endpoint: str = DEFAULT_ENDPOINT
    token: str | None = None
    from_dir: Path | None = None
    retries: int = RETRIES


OpenFile = Callable[[Path, str], BinaryIO]  # how part files are opened for writing: ``open``, or a test's


def models_dir_of(comfy_dir: Path) -> Path:
    """``comfy_dir/models``, once ``comfy_dir`` is a ComfyUI folder (exit 2 when it is not)."""
    comfy_dir = Path(comfy_dir)
    if not comfy_dir.is_dir():
        raise AssetError(f"{comfy_dir} is not a folder", "give the folder that holds ComfyUI's main.py",
                         exit_code=EXIT_BAD_INPUT)
    if (comfy_dir / "main.py").is_file() or all((comfy_dir / d).is_dir() for d in ("models", "custom_nodes")):
        return comfy_dir / "models"
    if any((comfy_dir / d).is_dir() for d in MODEL_FOLDERS):
        hint = f"this looks like the models folder itself: use --models-dir {comfy_dir}"
    else:
        hint = ("give the folder that holds ComfyUI's main.py, or the models folder itself with "
                "--models-dir DIR")
    raise AssetError(f"{comfy_dir} is not a ComfyUI folder (no main.py, nor models/ and custom_nodes/)", hint,
                     exit_code=EXIT_BAD_INPUT)


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
    result = SetupResult(str(models_dir), warnings=_vae_warnings(models_dir))
    for warning in result.warnings:
        run.emit(Event("warning", message=warning))
    todo = [item for item in items if not _already_there(item, models_dir, run.state)]
    done = {item.dest: FileResult(item.dest, "skipped", item.bytes) for item in items if item not in todo}
    _check_writable(todo, models_dir, open_file)
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
    stat = _stat(_part_of(target))
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
        stat = _stat(self.path)
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
                raise _Failed(f"the download of models/{item.dest} from {run.source.endpoint} kept breaking off "
                              f"({type(exc).__name__}); {partial.have:,} of {item.bytes:,} bytes are kept",
                              "run wanclip setup again: it continues where it stopped") from exc
    _finish(item, partial.path, target, partial.digest.hexdigest(), "the download")


class _ShortBody(Exception):
    pass


def _locate(item: ModelFile, source: Source) -> tuple[str, dict]:
    """HEAD through huggingface_hub: the byte URL (maybe a CDN) and the headers to send there."""
    import httpx2
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import FileMetadataError, HfHubHTTPError
    from huggingface_hub.utils import build_hf_headers

    url = hf_hub_url(item.repo, item.path, revision=item.revision, endpoint=source.endpoint)
    try:
        meta = get_hf_file_metadata(url, token=source.token, endpoint=source.endpoint)
    except (HfHubHTTPError, FileMetadataError, httpx2.HTTPError) as exc:
        raise _hub_failure(item, source, exc) from exc
    if meta.etag and len(meta.etag) == 64 and meta.etag != item.sha256:
        raise _Failed(f"{item.repo}/{item.path} changed upstream: the hub says sha256 {meta.etag[:12]}…, "
                      f"the manifest {item.sha256[:12]}…; nothing was downloaded",
                      "update wanclip (or your --manifest) once you trust the new file")
    if meta.size is not None and meta.size != item.bytes:
        raise _Failed(f"{item.repo}/{item.path} has {meta.size:,} bytes upstream, the manifest says "
                      f"{item.bytes:,}", "update wanclip (or your --manifest) once you trust the new file")
    headers = {"Accept-Encoding": "identity"}
    if _origin(meta.location) == _origin(url):  # a token never leaves the hub for a CDN
        headers.update(build_hf_headers(token=source.token))
    return meta.location, headers


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
        return _Failed(f"{where} is not on {source.endpoint}: it was moved or renamed upstream",
                       "find its new path on the repo page and pass a --manifest with it")
    if isinstance(exc, RevisionNotFoundError):
        return _Failed(f"{where}: revision {item.revision} does not exist", "fix the revision in the manifest")
    if isinstance(exc, RepositoryNotFoundError):
        return _Failed(f"{source.endpoint} refused {where} (HTTP {_status(exc)}): the repo is private, "
                       "missing, or the token is not valid", "set HF_TOKEN to a valid token with access")
    if isinstance(exc, HfHubHTTPError):
        return _Failed(f"{source.endpoint} answered HTTP {_status(exc)} for {where}",
                       "try again later, or another mirror with --endpoint")
    return _Failed(f"cannot reach {source.endpoint} for {where} ({type(exc).__name__})",
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
