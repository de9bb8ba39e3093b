"""Real H.264 files with a test picture: the shot's prompt and seed on a seed-coloured card.

A clip whose latent came from an image-to-video node starts from its image instead: frame 0 is the
start image, later frames carry the card only in a band along the bottom, and with an end image
the last frame is that image (see `i2v_frames`).
"""

from __future__ import annotations

import colorsys
import contextlib
import dataclasses
import hashlib
import json
import os
import re
import subprocess
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps
from PIL.PngImagePlugin import PngInfo


@dataclass(frozen=True)
class Picture:
    """An RGB picture travelling along links (LoadImage's IMAGE, an image-to-video latent's frames)."""

    width: int
    height: int
    rgb: bytes = field(repr=False)  # width * height * 3 bytes, row by row
    name: str = ""  # the input file it came from, for error messages

    @classmethod
    def from_image(cls, image: Image.Image, name: str = "") -> Picture:
        rgb = image.convert("RGB")
        return cls(rgb.width, rgb.height, rgb.tobytes(), name)

    def image(self) -> Image.Image:
        return Image.frombytes("RGB", (self.width, self.height), self.rgb)

    def fitted(self, width: int, height: int) -> Picture:
        """Resized to cover width x height and centre-cropped, like ComfyUI's common_upscale(..., "center")."""
        if (self.width, self.height) == (width, height):
            return self
        image = ImageOps.fit(self.image(), (width, height), method=Image.Resampling.BILINEAR, centering=(0.5, 0.5))
        return Picture.from_image(image, self.name)


@dataclass(frozen=True)
class Clip:
    """What a decoded latent would have shown: enough to draw a recognisable card.

    start/end: the pictures an image-to-video latent carried (None for text-to-video).
    drift: the colour shift a clip started from an image picks up by its last frame (`drifted`)."""

    width: int
    height: int
    frames: int
    text: str
    seed: int
    start: Picture | None = None
    end: Picture | None = None
    drift: float = 0.0

    @property
    def from_image(self) -> bool:
        return self.start is not None or self.end is not None


@dataclass(frozen=True)
class Frames:
    """Real frames travelling along links (a loaded clip, upscaled, interpolated): made on demand by
    ``source`` (a fresh iterator of RGB images each call), so a long clip is never held whole."""

    width: int
    height: int
    frames: int
    source: Callable[[], Iterator[Image.Image]] = field(repr=False)

    def images(self) -> Iterator[Image.Image]:
        return self.source()

    def mapped(self, width: int, height: int, change: Callable[[Image.Image], Image.Image]) -> Frames:
        """Each frame through ``change``, which makes it ``width`` x ``height``."""
        return Frames(width, height, self.frames, lambda: (change(i) for i in self.images()))

    def resized(self, width: int, height: int) -> Frames:
        if (width, height) == (self.width, self.height):
            return self
        return self.mapped(width, height, lambda i: i.resize((width, height), Image.Resampling.LANCZOS))

    def cropped(self, width: int, height: int) -> Frames:
        """The top-left ``width`` x ``height`` of each frame (padding cut off)."""
        if (width, height) == (self.width, self.height):
            return self
        return self.mapped(width, height, lambda i: i.crop((0, 0, width, height)))


def probe_mp4(path: Path) -> tuple[int, int, float, int]:
    """(width, height, fps, frames) of a video file: its header, and its packets counted (no decoding)."""
    env = dict(os.environ)  # see media.child_env
    done = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path), "-map", "0:v:0", "-c", "copy",
                           "-f", "framecrc", "-"], capture_output=True, env=env)
    said = done.stderr.decode(errors="replace")
    size = re.search(r"Stream #[^\n]*Video:[^\n]*?, (\d+)x(\d+)", said)
    if done.returncode != 0 or size is None:
        last = said.strip().splitlines()[-1] if said.strip() else "no video stream"
        raise RuntimeError(f"cannot read video {path.name}: {last}")
    rate = re.search(r"Stream #[^\n]*Video:[^\n]*?, ([\d.]+) (?:fps|tbr)", said)
    count = sum(1 for line in done.stdout.decode(errors="replace").splitlines() if line and not line.startswith("#"))
    return int(size.group(1)), int(size.group(2)), float(rate.group(1)) if rate else 0.0, count


def stream_mp4(path: Path, width: int, height: int) -> Iterator[Image.Image]:
    """The frames of a video file as RGB images, decoded while they are read (ffmpeg ends with the loop)."""
    cmd = [ffmpeg_exe(), "-v", "error", "-nostdin", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    step = width * height * 3
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=dict(os.environ)) as proc:
        try:
            while len(raw := proc.stdout.read(step)) == step:
                yield Image.frombytes("RGB", (width, height), raw)
        finally:
            if proc.poll() is None:
                proc.kill()


def video_frames(path: Path) -> tuple[Frames, float]:
    """A video file's frames (read from the file each time they are used) and its fps."""
    width, height, fps, count = probe_mp4(path)
    return Frames(width, height, count, lambda: stream_mp4(path, width, height)), fps


def read_mp4(path: Path) -> tuple[list[bytes], int, int, float]:
    """(raw RGB frames, width, height, fps) of a video file."""
    frames, fps = video_frames(path)
    return [image.tobytes() for image in frames.images()], frames.width, frames.height, fps


def frames_of(raw: list[bytes], width: int, height: int) -> Frames:
    return Frames(width, height, len(raw), lambda: (Image.frombytes("RGB", (width, height), r) for r in raw))


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
    if isinstance(clip, Frames):
        for image in clip.images():
            yield image.convert("RGB").tobytes()
        return
    if clip.from_image:
        for frame in i2v_frames(clip):
            yield frame.tobytes()
        return
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


def band_height(height: int) -> int:
    """Rows at the bottom of an image-to-video frame that carry the card (prompt, seed, bar, counter)."""
    return min(height, max(16, height // 5)) // 2 * 2


def strip_height(band: int) -> int:
    """Rows of the band's prompt-and-seed strip (its top); the last frame of a link keeps only it."""
    return max(2, band // 8)


def drifted(image: Image.Image, amount: float) -> Image.Image:
    """The warm colour shift of a drifting link: R x (1 + amount), B x (1 - amount), clipped to 0-255."""
    if amount == 0:
        return image.copy()
    r, g, b = image.split()
    r = r.point([min(255, max(0, round(v * (1 + amount)))) for v in range(256)])
    b = b.point([min(255, max(0, round(v * (1 - amount)))) for v in range(256)])
    return Image.merge("RGB", (r, g, b))


def _band(clip: Clip, index: int, height: int) -> Image.Image:
    """The card squeezed into a band: a strip of blocks coloured by the prompt and seed (so any
    change of either shows in every frame, the last included), the prompt's first words where
    they fit, the seed, the frame counter and a moving bar."""
    band = Image.new("RGB", (clip.width, height), _background(clip.seed))
    d = ImageDraw.Draw(band)
    digest = hashlib.sha256(f"{clip.seed}\n{clip.text}".encode()).digest()
    strip, blocks = strip_height(height), 8
    for k in range(blocks):
        x0, x1 = clip.width * k // blocks, clip.width * (k + 1) // blocks - 1
        d.rectangle([x0, 0, x1, strip - 1], fill=tuple(digest[3 * k: 3 * k + 3]))
    size = max(8, min(height // 4, clip.height // 16))
    font = _font(size)
    bar_h = max(2, height // 12)
    y_seed = height - bar_h - size - 2
    y_text = strip + size // 4
    if y_text + size <= y_seed:
        chars = max(8, int(clip.width / (size * 0.55)))
        d.text((size // 2, y_text), (textwrap.wrap(clip.text, chars) or [""])[0], fill=(255, 255, 255), font=font)
    d.text((size // 2, y_seed), f"seed {clip.seed}", fill=(255, 255, 210), font=font)
    d.text((clip.width - size // 2, y_seed), f"frame {index + 1}/{clip.frames}", fill=(255, 255, 210), font=font,
           anchor="ra")
    bar = max(2, clip.width // 40)
    x = (clip.width - bar) * index // max(1, clip.frames - 1)
    d.rectangle([x, height - bar_h, x + bar, height - 1], fill=(255, 255, 255))
    return band


def i2v_frames(clip: Clip):
    """The frames of a clip that came from an image-to-video latent, as RGB images.

    - start image only: frame 0 is the start image; frame i is it with i/(n-1) of the clip's drift.
    - start and end image: a dissolve from one to the other; the last frame is the end image.
    - end image only: a dissolve from the usual card to the end image.
    Every frame but the first and the last has the card band at the bottom; the last frame of a
    clip with no end image has only the band's thin prompt-and-seed strip (it is the next link's
    start picture), with an end image none;
    the pictures are cover-resized and centre-cropped to the clip's size.
    """
    w, h, n = clip.width, clip.height, clip.frames
    start = clip.start.fitted(w, h).image() if clip.start is not None else draw_still(clip)
    end = clip.end.fitted(w, h).image() if clip.end is not None else None
    rows = band_height(h)
    for i in range(n):
        t = i / (n - 1) if n > 1 else 0.0
        if end is None:
            frame = drifted(start, clip.drift * t)
        elif i == n - 1:
            frame = end.copy()
        else:
            frame = Image.blend(start, end, t)
        if i == n - 1 and i > 0 and end is None:
            # the last frame is the next link's start picture: only the thin prompt-and-seed strip
            # of the band, so a changed prompt still changes it while its colours stay the picture's
            strip = _band(clip, i, rows).crop((0, 0, w, strip_height(rows)))
            frame.paste(strip, (0, h - strip.height))
        elif i > 0 and not (end is not None and i == n - 1):
            frame.paste(_band(clip, i, rows), (0, h - rows))
        yield frame


def write_mp4(path: Path, clip: Clip | Frames, fps: float, fmt: str | None = None) -> None:
    """Pipes frames to ffmpeg: H.264 yuv420p, exactly clip.frames frames at fps.

    fmt: the container when the name does not say it (``NAME.mp4.part``: "mp4")."""
    # yuv420p needs even dimensions; the latent grid is a multiple of 8 anyway.
    w, h = clip.width - clip.width % 2, clip.height - clip.height % 2
    clip = clip.cropped(w, h) if isinstance(clip, Frames) else dataclasses.replace(clip, width=w, height=h)
    cmd = [
        # a .part (fmt given) was created empty to reserve the name: ffmpeg may overwrite only that
        ffmpeg_exe(), "-v", "error", "-y" if fmt else "-n", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
        "-r", str(fps), "-i", "-", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
        "-movflags", "+faststart", *(["-f", fmt] if fmt else []), str(path),
    ]
    # The context manager closes both pipes and reaps the process even when a frame write fails.
    with subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ)) as proc:  # see media.child_env
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
    first = next(i2v_frames(clip)) if clip.from_image else draw_still(clip)
    first.save(path, pnginfo=info, compress_level=1)
