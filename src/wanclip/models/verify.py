"""What is already on disk: the ComfyUI models folder, the files in it checked against the manifest
(``wanclip setup --check``, doctor), and the record of files already verified.

Verified files are recorded in ``$WANCLIP_HOME/verified.json`` (absolute path -> size, mtime_ns,
sha256), so a rerun trusts an unchanged file without hashing 38 GB again. The record lives with
wanclip's state rather than in ``models/`` because the models folder may be shared or read-only.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable
from pathlib import Path

from wanclip import config
from wanclip.errors import EXIT_BAD_INPUT, AssetError
from wanclip.files import atomic_write_text, sha256_file
from wanclip.models.manifest import ModelFile, setup_command
from wanclip.models.results import FileResult, SetupResult

MODEL_FOLDERS = ("diffusion_models", "text_encoders", "vae", "loras", "checkpoints", "unet", "clip")
WRITE_PROBE = ".wanclip-write-test"
WRONG_VAE = "vae/wan2.2_vae.safetensors"
VAE_WARNING = ("{path} is left alone, but it is the 48-channel VAE of the 5B model: the 14B graph needs "
               "vae/wan_2.1_vae.safetensors (a 48-channel VAE fails in VAEDecode only after sampling, minutes in)")


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
        stat = stat_or_none(target)
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


def stat_or_none(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except OSError:
        return None


# -- verification ----------------------------------------------------------------------------------
def size_of(item: ModelFile, target: Path) -> int:
    """The manifest's size, else (an entry without ``bytes``) the size of ``target`` on disk, else 0."""
    if item.bytes is not None:
        return item.bytes
    stat = stat_or_none(target)
    return stat.st_size if stat else 0


def verify_file(item: ModelFile, target: Path, state: VerifiedState) -> str | None:
    """None when ``target`` holds the manifest's bytes, else why not (hashes only when needed). An entry
    without ``bytes`` is verified by its sha256 alone; the record trusts it only at the size and mtime it
    was hashed at."""
    stat = stat_or_none(target)
    if stat is None:
        return "missing"
    if item.bytes is not None and stat.st_size != item.bytes:
        return f"{stat.st_size:,} bytes, expected {item.bytes:,}"
    if state.trusted(target, item.sha256):
        return None
    digest = sha256_file(target)
    if digest != item.sha256:
        return f"sha256 {digest[:12]}…, expected {item.sha256[:12]}…"
    state.remember(target, item.sha256)
    return None


def check_files(items: Iterable[ModelFile], models_dir: Path, state: VerifiedState | None = None) -> SetupResult:
    """``setup --check``: verify only, no network; every file ok, missing or wrong."""
    state = state or VerifiedState()
    result = SetupResult(str(models_dir), warnings=vae_warnings(models_dir))
    for item in items:
        target = models_dir / item.dest
        problem, size = verify_file(item, target, state), size_of(item, target)
        if problem is None:
            result.files.append(FileResult(item.dest, "ok", size))
        elif problem == "missing":
            result.files.append(FileResult(item.dest, "missing", size, f"models/{item.dest} is missing",
                                           f"run {setup_command(item.dest)}"))
        else:
            result.files.append(FileResult(item.dest, "wrong", size, f"models/{item.dest}: {problem}",
                                           f"run {setup_command(item.dest)} to fetch it again"))
    return result


def vae_warnings(models_dir: Path) -> list[str]:
    return [VAE_WARNING.format(path=f"models/{WRONG_VAE}")] if (models_dir / WRONG_VAE).exists() else []


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

