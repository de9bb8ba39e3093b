"""wanclip's ComfyUI node pack: install it into ``custom_nodes/``, verify it, report it.

The pack (``data/comfy_nodes/wanclip_nodes/``: ``WanclipSaveVideo``, an output node that encodes
the clip in the background so the GPU never waits for it) is copied to
``DIR/custom_nodes/wanclip_nodes/`` and every file's sha256 checked against the shipped bytes. The
folder carries ``wanclip_pack.json`` (the files and their hashes): that is how a later run knows
the folder is wanclip's to update, and a folder of that name without it is someone else's and
is never touched. A fresh install is built beside the target and renamed into place; an update
replaces changed files one by one (each via ``.part``), the record last.

When VideoHelperSuite is there, its ``video_formats/`` also gets ``wanclip-h264-ultrafast.json``
(format ``video/wanclip-h264-ultrafast``: VHS's h264-mp4 with ``-preset ultrafast``, crf 17): the
no-Python fallback, 0.94 s of GPU idle per shot instead of 2.1 s, at +16 % bytes.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

from wanclip.errors import EXIT_BAD_INPUT, AssetError
from wanclip.files import sha256_file
from wanclip.models.verify import models_dir_of

PACK = "wanclip_nodes"
NODE_CLASS = "WanclipSaveVideo"
RECORD = "wanclip_pack.json"
VHS_FORMAT_FILE = "wanclip-h264-ultrafast.json"
VHS_FORMAT = "video/wanclip-h264-ultrafast"
VHS_MARKER = "wanclip"  # the key that makes a format file ours (VHS ignores keys that hold no list)
SKIP = ("__pycache__",)
RESTART = "restart ComfyUI so it loads the nodes"


@dataclass
class PackResult:
    target: str
    status: str  # installed | updated | unchanged | ok | missing | modified
    ok: bool
    detail: str
    fix: str = ""
    files: dict[str, str] = field(default_factory=dict)  # relative path -> sha256
    vhs_format: str = ""  # "" (no VHS), installed | updated | unchanged | ok | missing | foreign
    vhs_format_path: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def _data(*parts: str) -> Path:
    return Path(str(resources.files("wanclip").joinpath("data", "comfy_nodes", *parts)))


def source_dir() -> Path:
    return _data(PACK)


def shipped_files() -> dict[str, str]:
    """The pack's files (posix relative path -> sha256), without caches."""
    root = source_dir()
    found = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.is_file() and not any(p in SKIP for p in rel.parts) and path.suffix != ".pyc":
            found[rel.as_posix()] = sha256_file(path)
    if "__init__.py" not in found:
        raise AssetError(f"the node pack is missing from this wanclip install ({root})",
                         "reinstall wanclip (pip install --force-reinstall wanclip)")
    return found


def custom_nodes_dir(comfy_dir: Path) -> Path:
    """``comfy_dir/custom_nodes`` of a real ComfyUI folder (exit 2 otherwise)."""
    comfy_dir = Path(comfy_dir)
    models_dir_of(comfy_dir)  # the same test of "a ComfyUI folder" as the models' install
    return comfy_dir / "custom_nodes"


def _record(target: Path) -> dict | None:
    """Our record in an existing folder, or None when the folder is not wanclip's."""
    try:
        data = json.loads((target / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("name") == PACK and isinstance(data.get("files"), dict) else None


def _refuse_foreign(target: Path) -> dict | None:
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise AssetError(f"{target} exists and is not a folder wanclip installed", _MOVE_IT, exit_code=EXIT_BAD_INPUT)
    if not target.exists():
        return None
    record = _record(target)
    if record is None:
        raise AssetError(f"{target} exists but was not installed by wanclip (no {RECORD}): not overwriting it",
                         _MOVE_IT, exit_code=EXIT_BAD_INPUT)
    return record


_MOVE_IT = "move or delete that folder, then run `wanclip setup --nodes --comfy-dir DIR` again"


def _copy_verified(src: Path, dest: Path, sha256: str) -> None:
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        shutil.copyfile(src, part)
        if sha256_file(part) != sha256:
            raise AssetError(f"copying {src.name} to {dest.parent} did not give the same bytes",
                             "check the disk, then run `wanclip setup --nodes` again")
        os.replace(part, dest)
    finally:
        part.unlink(missing_ok=True)


def _write_record(target: Path, files: dict[str, str]) -> None:
    from wanclip import __version__

    part = target / (RECORD + ".part")
    part.write_text(json.dumps({"name": PACK, "wanclip": __version__, "node": NODE_CLASS, "files": files},
                               indent=2) + "\n", encoding="utf-8")
    os.replace(part, target / RECORD)


def install(comfy_dir: Path) -> PackResult:
    """Copy the pack into ``custom_nodes/wanclip_nodes`` (verified, idempotent), and the VHS
    format file when VideoHelperSuite is installed."""
    nodes_dir = custom_nodes_dir(comfy_dir)
    target = nodes_dir / PACK
    files = shipped_files()
    record = _refuse_foreign(target)
    src = source_dir()
    try:
        nodes_dir.mkdir(exist_ok=True)
        if record is None:
            status = _fresh(src, nodes_dir, target, files)
        else:
            status = _update(src, target, files, record)
    except OSError as exc:
        raise AssetError(f"cannot write the node pack into {nodes_dir}: {exc.strerror or exc}",
                         "check the folder's permissions and free space") from exc
    fmt, fmt_path = install_vhs_format(nodes_dir)
    what = {"installed": "installed", "updated": "updated", "unchanged": "already installed, verified"}[status]
    return PackResult(str(target), status, True, f"{NODE_CLASS} {what} in {target}",
                      RESTART if status != "unchanged" else "", files, fmt, fmt_path)


def _fresh(src: Path, nodes_dir: Path, target: Path, files: dict[str, str]) -> str:
    tmp = nodes_dir / f".{PACK}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for rel, sha in files.items():
            _copy_verified(src / rel, tmp / rel, sha)
        _write_record(tmp, files)
        os.rename(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return "installed"


def _update(src: Path, target: Path, files: dict[str, str], record: dict) -> str:
    changed = False
    for rel, sha in files.items():
        dest = target / rel
        if not dest.is_file() or sha256_file(dest) != sha:
            _copy_verified(src / rel, dest, sha)
            changed = True
    for rel, sha in record["files"].items():  # files an older pack had and this one does not
        dest = target / rel
        if rel not in files and dest.is_file() and sha256_file(dest) == sha:
            dest.unlink()
            changed = True
    if changed or record["files"] != files:
        _write_record(target, files)
        return "updated"
    return "unchanged"


def check(comfy_dir: Path) -> PackResult:
    """Is the pack installed with exactly the shipped bytes? (no writes)"""
    nodes_dir = custom_nodes_dir(comfy_dir)
    target = nodes_dir / PACK
    files = shipped_files()
    fmt, fmt_path = check_vhs_format(nodes_dir)
    if not target.exists():
        return PackResult(str(target), "missing", False, f"{NODE_CLASS} is not installed ({target} is absent)",
                          "wanclip setup --nodes --comfy-dir DIR", files, fmt, fmt_path)
    if _record(target) is None or target.is_symlink():
        return PackResult(str(target), "foreign", False, f"{target} was not installed by wanclip",
                          _MOVE_IT, files, fmt, fmt_path)
    bad = [rel for rel, sha in files.items() if not (target / rel).is_file() or sha256_file(target / rel) != sha]
    if bad:
        differ = "1 file differs" if len(bad) == 1 else f"{len(bad)} files differ"
        return PackResult(str(target), "modified", False, f"{differ} from this wanclip's pack: "
                          f"{', '.join(bad)}", "wanclip setup --nodes --comfy-dir DIR", files, fmt, fmt_path)
    return PackResult(str(target), "ok", True, f"{NODE_CLASS} installed and verified in {target}", "", files,
                      fmt, fmt_path)


# -- the VHS format file (the no-Python fallback) ------------------------------------------------
def vhs_formats_dir(nodes_dir: Path) -> Path | None:
    """VideoHelperSuite's ``video_formats/`` under ``custom_nodes`` (any folder name), or None."""
    if not nodes_dir.is_dir():
        return None
    for folder in sorted(nodes_dir.iterdir()):
        if (folder / "videohelpersuite").is_dir() and (folder / "video_formats").is_dir():
            return folder / "video_formats"
    return None


def _ours(path: Path) -> bool:
    try:
        return VHS_MARKER in json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        return False


def install_vhs_format(nodes_dir: Path) -> tuple[str, str]:
    formats = vhs_formats_dir(nodes_dir)
    if formats is None:
        return "", ""
    src, dest = _data("vhs_video_formats", VHS_FORMAT_FILE), formats / VHS_FORMAT_FILE
    sha = sha256_file(src)
    if dest.exists() and not _ours(dest):
        return "foreign", str(dest)
    if dest.is_file() and sha256_file(dest) == sha:
        return "unchanged", str(dest)
    status = "updated" if dest.exists() else "installed"
    try:
        _copy_verified(src, dest, sha)
    except OSError as exc:
        raise AssetError(f"cannot write {dest}: {exc.strerror or exc}", "check the folder's permissions") from exc
    return status, str(dest)


def check_vhs_format(nodes_dir: Path) -> tuple[str, str]:
    formats = vhs_formats_dir(nodes_dir)
    if formats is None:
        return "", ""
    dest = formats / VHS_FORMAT_FILE
    if not dest.exists():
        return "missing", str(dest)
    if not _ours(dest):
        return "foreign", str(dest)
    ok = sha256_file(dest) == sha256_file(_data("vhs_video_formats", VHS_FORMAT_FILE))
    return ("ok" if ok else "modified"), str(dest)
