"""The post stage of one clip: what its second prompt on the server must produce.

A film (or one shot) with ``post:`` gets, after its rendered clip, a second prompt on the GPU server:
load the clip, upscale it (``upscale:``), interpolate it (``interpolate:``), save it. Changing only
``post`` never samples a shot again: the post clip is keyed in the ledger by the sha256 of the clip it
was made from and by ``PostJob.key``; the rendered clip stays beside it.

Frames: ``m``-fold interpolation puts ``m - 1`` new frames between each pair, so ``N`` frames become
``(N - 1) * m + 1`` at ``fps * m`` (81 at 16 fps -> 161 at 32 fps: the same 5 s, ending on the same
last frame, which is what a continued shot starts from).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

HEIGHT = re.compile(r"^(\d{3,4})p$")
MAX_UPSCALE = 4.0
MAX_SIDE = 4096  # what the upscalers and h264 at level 5.2 take comfortably


def even(value: float) -> int:
    """The nearest even whole number (h264 in 4:2:0 needs even sizes), at least 2."""
    return max(2, 2 * round(value / 2))


def upscaled_size(width: int, height: int, upscale: float | str | None) -> tuple[int, int]:
    """The output size for ``upscale``: a factor (``2``) or a target height (``"720p"``), each side
    even, the aspect kept. ``None`` or ``1``: the size itself."""
    if upscale is None:
        return width, height
    if isinstance(upscale, str):
        target = int(HEIGHT.match(upscale).group(1))  # validated by the shots file
        factor = target / height
        return even(width * factor), target if target % 2 == 0 else even(target)
    if float(upscale) == 1.0:
        return width, height
    return even(width * float(upscale)), even(height * float(upscale))


@dataclass(frozen=True)
class PostJob:
    """One clip's post step; ``base_*`` describe the rendered clip it starts from."""

    interpolate: int  # frame multiplier: 1 (none), 2, 3, 4
    width: int  # output size (even); the base size when not upscaling
    height: int
    base_frames: int
    base_fps: float
    base_width: int
    base_height: int

    @property
    def frames(self) -> int:
        return (self.base_frames - 1) * self.interpolate + 1

    @property
    def fps(self) -> float:
        return self.base_fps * self.interpolate

    @property
    def upscaling(self) -> bool:
        return (self.width, self.height) != (self.base_width, self.base_height)

    @property
    def interpolating(self) -> bool:
        return self.interpolate > 1

    @property
    def scale(self) -> float:
        return self.height / self.base_height

    @property
    def key(self) -> str:
        """``i2``, ``u1664x960``, ``i2-u1664x960``: in the post clip's file name and its ledger key."""
        parts = [f"i{self.interpolate}"] if self.interpolating else []
        if self.upscaling:
            parts.append(f"u{self.width}x{self.height}")
        return "-".join(parts)

    def describe(self) -> str:
        """``x2 frames (32 fps), 1664x960``: for plan and render lines."""
        parts = []
        if self.interpolating:
            parts.append(f"x{self.interpolate} frames ({self.fps:g} fps)")
        if self.upscaling:
            parts.append(f"upscaled to {self.width}x{self.height}")
        return ", ".join(parts)


def post_job(interpolate: int, upscale: float | str | None, frames: int, fps: float, width: int,
             height: int) -> PostJob | None:
    """The job for a clip of ``frames`` at ``fps`` and ``width`` x ``height``; None when there is
    nothing to do (``interpolate: 1`` and no upscale)."""
    out_w, out_h = upscaled_size(width, height, upscale)
    job = PostJob(interpolate, out_w, out_h, frames, fps, width, height)
    return job if job.interpolating or job.upscaling else None
