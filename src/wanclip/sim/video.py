"""Real H.264 files with a test picture: the shot's prompt and seed on a seed-coloured card."""

from __future__ import annotations

import colorsys
import contextlib
import hashlib
import json
import subprocess
import textwrap
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont
from PIL.PngImagePlugin import PngInfo


@dataclass(frozen=True)
class Clip:
    """What a decoded latent would have shown: enough to draw a recognisable card."""

    width: int
    height: int
    frames: int
    text: str
    seed: int


@lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    import imageio_ffmpeg  # the bundled binary: a system ffmpeg may be absent

    return imageio_ffmpeg.get_ffmpeg_exe()


def _background(seed: int) -> tuple[int, int, int]:
    """A saturated colour picked by the seed, so consecutive shots look different."""
    hue = int(hashlib.sha256(str(seed).encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    r, g, b = colorsys.hsv_to_rgb(hue, 0.55, 0.75)
    return int(r * 255), int(g * 255), int(b * 255)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: fixed-size bitmap font
        return ImageFont.load_default()


def draw_still(clip: Clip) -> Image.Image:
    """The card drawn once per clip; frames only add a moving bar and a counter."""
    img = Image.new("RGB", (clip.width, clip.height), _background(clip.seed))
    d = ImageDraw.Draw(img)
    size = max(8, clip.height // 16)
    font = _font(size)
    chars = max(8, int(clip.width / (size * 0.55)))
    lines = textwrap.wrap(clip.text, chars)[: max(1, clip.height // (size * 2))] or [""]
    y = size
    for line in lines:
        d.text((size // 2, y), line, fill=(255, 255, 255), font=font)
        y += int(size * 1.25)
    d.text((size // 2, clip.height - 3 * size), f"seed {clip.seed}", fill=(255, 255, 210), font=font)
    return img


def frames(clip: Clip):
    """Raw RGB frames: the still plus a bar sweeping left to right and a frame counter."""
    still = draw_still(clip)
    size = max(8, clip.height // 16)
    font = _font(size)
    bar = max(2, clip.width // 40)
    for i in range(clip.frames):
        frame = still.copy()
        d = ImageDraw.Draw(frame)
        x = (clip.width - bar) * i // max(1, clip.frames - 1)
        d.rectangle([x, clip.height - clip.height // 12, x + bar, clip.height - 1], fill=(255, 255, 255))
        # on the seed's row, right-aligned: clear of the prompt text at any size
        d.text((clip.width - size // 2, clip.height - 3 * size), f"frame {i + 1}/{clip.frames}",
               fill=(255, 255, 210), font=font, anchor="ra")
        yield frame.tobytes()


def write_mp4(path: Path, clip: Clip, fps: float, fmt: str | None = None) -> None:
    """Pipes frames to ffmpeg: H.264 yuv420p, exactly clip.frames frames at fps.

    fmt: the container when the name does not say it (``NAME.mp4.part``: "mp4")."""
    # yuv420p needs even dimensions; the latent grid is a multiple of 8 anyway.
    w, h = clip.width - clip.width % 2, clip.height - clip.height % 2
    clip = Clip(w, h, clip.frames, clip.text, clip.seed)
    cmd = [
        # a .part (fmt given) was created empty to reserve the name: ffmpeg may overwrite only that
        ffmpeg_exe(), "-v", "error", "-y" if fmt else "-n", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
        "-r", str(fps), "-i", "-", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
        "-movflags", "+faststart", *(["-f", fmt] if fmt else []), str(path),
    ]
    # The context manager closes both pipes and reaps the process even when a frame write fails.
    with subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        try:
            for raw in frames(clip):
                proc.stdin.write(raw)
            proc.stdin.close()
        except BrokenPipeError:  # ffmpeg died: its stderr says why
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
        err = proc.stderr.read().decode(errors="replace")
        code = proc.wait()
    if code != 0:
        raise RuntimeError(f"ffmpeg failed writing {path.name}: {err.strip()}")


def write_metadata_png(path: Path, clip: Clip, prompt: dict) -> None:
    """VHS's first-frame PNG carrying the prompt, like the real `<prefix>_00001.png`."""
    info = PngInfo()
    info.add_text("prompt", json.dumps(prompt))
    draw_still(clip).save(path, pnginfo=info, compress_level=1)
