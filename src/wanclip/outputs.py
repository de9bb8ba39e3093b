"""From a finished prompt's history entry to a verified clip on disk.

Videos are listed under ``gifs`` by VideoHelperSuite and under ``images`` (with ``animated``) by
core ``SaveVideo``. The server's ``filename``/``subfolder`` are only ever sent back to ``/view``;
the local name is wanclip's own (``clips/NN_name.mp4``), so a hostile or buggy server cannot make
wanclip write outside the film folder, and ``fullpath`` is never opened.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from wanclip import media
from wanclip.comfy.client import ComfyClient
from wanclip.errors import ClipError, StitchError
from wanclip.files import sha256_file

VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv", ".mov")
MAX_CLIP_BYTES = 16 << 30  # no clip of any length is bigger than this


def size_limit(frames: int, width: int, height: int) -> int:
    """The most bytes a clip of this shape may take: its raw RGB frames plus 64 MB, capped.

    An H.264 clip is ~1/30 of that and a lossless one well under it, so only a broken or hostile
    server (``/view`` streaming forever) reaches the limit."""
    return min(frames * width * height * 3 + (64 << 20), MAX_CLIP_BYTES)


@dataclass(frozen=True)
class OutputFile:
    node: str
    filename: str
    subfolder: str
    kind: str  # "output" or "temp"

    @property
    def extension(self) -> str:
        suffix = PurePosixPath(self.filename).suffix.lower()
        return suffix if suffix in VIDEO_EXTENSIONS else ".mp4"


def _is_video(item: dict, key: str, output: dict) -> bool:
    name = str(item.get("filename", ""))
    fmt = str(item.get("format", ""))
    if PurePosixPath(name).suffix.lower() in VIDEO_EXTENSIONS or fmt.startswith("video/"):
        return True
    return key == "images" and bool(output.get("animated")) and any(output.get("animated"))


def video_outputs(outputs: dict) -> list[OutputFile]:
    """Every video file in a history entry's ``outputs`` (or ``executed`` events), in node order."""
    found = []
    for node, output in (outputs or {}).items():
        if not isinstance(output, dict):
            continue
        for key in ("gifs", "images", "videos"):
            for item in output.get(key) or []:
                if isinstance(item, dict) and "filename" in item and _is_video(item, key, output):
                    found.append(OutputFile(str(node), str(item["filename"]), str(item.get("subfolder") or ""),
                                            str(item.get("type") or "output")))
    return found


def check_safe(out: OutputFile) -> None:
    """Refuse names that could point anywhere but a file in ComfyUI's output folder."""
    name, sub = out.filename, PurePosixPath(out.subfolder.replace("\\", "/"))
    if not name or "/" in name or "\\" in name or name in (".", "..") or sub.is_absolute() or ".." in sub.parts:
        raise ClipError(f"the server named an unsafe output file: subfolder {out.subfolder!r}, "
                        f"filename {out.filename!r}", "this is not something ComfyUI writes; check the server")


@dataclass(frozen=True)
class Clip:
    path: Path
    sha256: str
    frames: int
    width: int
    height: int
    seconds: float


def fetch_clip(client: ComfyClient, outputs: dict, dest_stem: Path, frames: int, width: int, height: int,
               fps: float) -> Clip:
    """Download the shot's video through ``/view`` and check it is the clip asked for."""
    videos = video_outputs(outputs)
    if not videos:
        raise ClipError("the prompt finished but produced no video output",
                        "does the workflow end in VHS_VideoCombine (video/h264-mp4) or SaveVideo?")
    video = videos[-1]
    check_safe(video)
    dest = dest_stem.with_suffix(video.extension)
    client.download(video.filename, video.subfolder, video.kind, dest, limit=size_limit(frames, width, height))
    try:
        info = media.probe(dest)
    except StitchError as exc:
        dest.unlink(missing_ok=True)
        raise ClipError(f"the downloaded clip is not a readable video: {exc.message}",
                        "rerun to render the shot again") from exc
    problems = []
    if info.frames != frames:
        problems.append(f"{info.frames} frames, expected {frames}")
    if (info.width, info.height) != (width, height):
        problems.append(f"{info.width}x{info.height}, expected {width}x{height}")
    if abs(float(info.fps) - fps) > 0.01:  # the same frames at another rate: another length
        problems.append(f"{float(info.fps):g} fps ({info.duration:.3f} s), expected {fps:g} fps "
                        f"({frames / fps:.3f} s)")
    if problems:
        raise ClipError(f"the clip {video.filename} is not what the shot asked for: {'; '.join(problems)}",
                        "check that the workflow's latent and output nodes are the ones wanclip edits")
    return Clip(dest, sha256_file(dest), info.frames, info.width, info.height, info.duration)

