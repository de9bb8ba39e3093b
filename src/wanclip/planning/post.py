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
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

HEIGHT = re.compile(r"^(\d{3,4})p$")
MAX_UPSCALE = 4.0
MAX_SIDE = 4096  # what the upscalers and h264 at level 5.2 take comfortably


class Post(BaseModel):
    """``post:``: the post stage on the GPU server after a shot renders (``planning.post``).
    ``interpolate``: 2, 3 or 4 times the frames (16 -> 32/48/64 fps), 1 for none; ``upscale``: a
    factor (``2``) or a target height (``720p``, ``1080p``), 1 for none. At shot level (``post:`` in a
    shot) each key given replaces the film's; ``post: false`` there turns the film's off for the shot."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    interpolate: int = Field(1, ge=1, le=4)
    upscale: float | str = 1
    @field_validator("interpolate", mode="before")
    @classmethod
    def _whole(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError(f"{str(value).lower()}: true/false is not a number (YAML reads yes/no/on/off as "
                             "true/false): write 2 for 32 fps, 1 for none")
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, (float, str)):
            raise ValueError(f"{value!r}: a whole number of times the frames: 2 (16 -> 32 fps), 3 or 4; "
                             "1 for none")
        return value

    @field_validator("upscale", mode="before")
    @classmethod
    def _upscale(cls, value: Any) -> Any:
        if isinstance(value, bool) or value is None:
            raise ValueError(f"{value!r}: a factor (2) or a target height (720p, 1080p); 1 for none")
        if isinstance(value, str):
            text = value.strip().lower()
            match = HEIGHT.match(text)
            if match is None:
                try:
                    return cls._upscale(float(text.removesuffix("x")))
                except ValueError:
                    raise ValueError(f"{value!r}: a factor (2) or a target height such as 720p or 1080p") from None
            if not 144 <= int(match.group(1)) <= MAX_SIDE:
                raise ValueError(f"{value!r}: a height from 144p to {MAX_SIDE}p")
            return text
        if not 1 <= float(value) <= MAX_UPSCALE:
            raise ValueError(f"{value:g}: a factor from 1 (none) to {MAX_UPSCALE:g}")
        return int(value) if float(value).is_integer() else float(value)

    @property
    def active(self) -> bool:
        return self.interpolate > 1 or self.upscale not in (1, 1.0)


def merged_post(film: Post | None, shot: Post | Literal[False] | None) -> Post | None:
    """A shot's post settings: the film's, each key the shot gives replacing the film's (``False``:
    none for this shot); None when there is nothing to do."""
    if shot is False:
        return None
    merged = film if shot is None else Post.model_validate(
        {**(film.model_dump() if film is not None else {}), **shot.model_dump(exclude_unset=True)})
    return merged if merged is not None and merged.active else None


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
