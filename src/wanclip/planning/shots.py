"""The shots file: a film's shots, seeds, lengths and transitions. Pure apart from reading YAML.

Frame counts follow the Wan VAE: ``4n+1`` frames (81 = 5.06 s at 16 fps). Width and height are
multiples of 16. Every validation error names the file, the line and the field, and says what to
write instead.
"""

from __future__ import annotations

import difflib
import unicodedata
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from wanclip.errors import ShotsFileError
from wanclip.planning.names import name_problem, slug_or_empty, slugify
from wanclip.planning.post import MAX_SIDE, Post, PostJob, merged_post, post_job, upscaled_size
from wanclip.planning.timeline import (
    CUT,
    film_frame_count,
    film_seconds,
    kept_frames,
    transition_name_problem,
)

TRAINED_FRAMES = 81
DEFAULT_SECONDS = 5.0
SEED_MAX = 2**64 - 1  # ComfyUI's noise_seed maximum (0xffffffffffffffff)
MAX_SIZE = 16384  # ComfyUI's MAX_RESOLUTION: the largest width and height its latent nodes take
MAX_FRAMES = 16384  # and the longest video length they take
MAX_FPS = 120.0
MAX_SHOTS_FILE_BYTES = 1 << 20  # a 60 s film's shots file is a few KB; /dev/zero must not fill the memory
NUMBERS = ("fps", "seconds", "frames", "width", "height", "seed_base", "steps", "switch_step", "cfg", "shift",
           "lora_strength", "seed", "duration")


class At(ValueError):
    """A model-level problem that belongs to one field: ``loc`` is its key path in the file (from
    the model that raised it: a shot's validator says ``("frames",)``, the film's ``("shots", 1, ...)``).

    ``{also}`` in the message becomes `` (line N)`` of the key path ``also`` when the file is known
    (``also_says`` words it: ``"seconds is at line {line}"``); ``also`` is looked up beside ``loc``
    first (within the same shot), then from the top of the file.
    """

    def __init__(self, loc: tuple, message: str, hint: str = "", also: tuple | None = None,
                 also_says: str = "line {line}"):
        super().__init__(message.format(also=""))
        self.loc, self.template, self.hint, self.also, self.also_says = loc, message, hint, also, also_says

    def located(self, lines: dict[tuple, int], base: tuple = ()) -> str:
        line = (lines.get((*base, *self.also)) or lines.get(self.also)) if self.also else None
        return self.template.format(also=f" ({self.also_says.format(line=line)})" if line else "")


def frames_for_seconds(seconds: float, fps: float) -> int:
    """The nearest valid ``4n+1`` frame count: 5 s -> 81, 10 s -> 161, 30 s -> 481 at 16 fps."""
    n = max(0, round((seconds * fps - 1) / 4))
    return 4 * n + 1


def nearest_frames(frames: int) -> tuple[int, int]:
    below = max(1, frames - ((frames - 1) % 4))
    return below, below + 4


def nearest_multiples(value: int, step: int = 16) -> tuple[int, int]:
    below = max(step, value - value % step)
    return below, below + step


class Transition(BaseModel):
    """The cut into a shot: any ffmpeg xfade transition name, or ``cut`` (no overlap)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    type: str = "fade"
    duration: float = Field(0.3, ge=0)
    _numbers = field_validator("duration", mode="before")(classmethod(lambda cls, v: _not_a_boolean(v)))

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"type": value} if isinstance(value, str) else value

    @field_validator("type")
    @classmethod
    def _name(cls, value: str) -> str:
        problem = transition_name_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @property
    def overlap(self) -> float:
        return 0.0 if self.type == CUT else self.duration

    @property
    def overlap_or_cut(self) -> float | None:
        """Seconds the two clips overlap, or None for a hard cut (as ``timeline.cut_problem`` takes it)."""
        return None if self.type == CUT else self.duration


def _not_a_boolean(value: Any) -> Any:
    """YAML reads true/false (and yes/no/on/off) as booleans, which Python would take as 1 and 0."""
    if isinstance(value, bool):
        raise ValueError(f"{str(value).lower()}: true/false is not a number (YAML reads yes/no/on/off as "
                         "true/false): write a number")
    return value


def _check_frames(value: int | None) -> int | None:
    if value is not None and value > MAX_FRAMES:
        raise ValueError(f"{value} frames: at most {MAX_FRAMES} (ComfyUI's longest video)")
    if value is not None and (value < 1 or (value - 1) % 4):
        low, high = nearest_frames(max(value, 1))
        raise ValueError(f"{value} frames is not 4n+1 (the Wan VAE makes 4n+1 frames): use {low} or {high}")
    return value


def _check_size(value: int) -> int:
    if value < 16:
        raise ValueError(f"{value}: at least 16 (and a multiple of 16)")
    if value > MAX_SIZE:
        raise ValueError(f"{value}: at most {MAX_SIZE} (ComfyUI's largest size), a multiple of 16")
    if value % 16:
        low, high = nearest_multiples(value)
        raise ValueError(f"{value} is not a multiple of 16: use {low} or {high}")
    return value


class Shot(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)
    name: str
    prompt: str = Field(min_length=1)
    seed: int | None = Field(None, ge=0)
    seconds: float | None = Field(None, gt=0)
    frames: int | None = None
    negative: str | None = None
    style: str | None = None
    transition: Transition | None = None
    # continuity (image-to-video): start from the previous shot's last frame, or from a keyframe;
    # land on an end frame (first-last-frame). Paths are relative to the shots file.
    continues: bool = Field(False, alias="continue")
    image: str | None = Field(None, min_length=1)
    end_image: str | None = Field(None, min_length=1)
    take: int | None = Field(None, ge=1)  # the take the film uses (`wanclip takes` lists them); default the newest
    post: Post | Literal[False] | None = None  # over the film's `post:` key by key; false: none for this shot

    @property
    def image_to_video(self) -> bool:
        """Whether this shot needs the image-to-video graph (it starts from or lands on a picture)."""
        return self.continues or self.image is not None or self.end_image is not None

    @field_validator("name")
    @classmethod
    def _slug(cls, value: str) -> str:
        """A name becomes part of file names (``clips/NN_name.mp4``): any script's letters and digits."""
        value = unicodedata.normalize("NFC", value)  # a name typed on macOS (NFD) is the same name
        problem = name_problem(value)
        if problem:
            raise ValueError(f"{value!r} is not a slug ({problem}; a name is letters in lower case, digits, "
                             f"- and _, in any script; no '/', no '..'): write {slug_or_empty(value) or 'shot'!r}")
        return value

    _frames = field_validator("frames")(classmethod(lambda cls, v: _check_frames(v)))
    _numbers = field_validator("seed", "seconds", "frames", "take", mode="before")(classmethod(lambda cls, v: _not_a_boolean(v)))

    @field_validator("prompt")
    @classmethod
    def _said(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("is empty (only spaces): say what the shot shows")
        return value

    @field_validator("seed")
    @classmethod
    def _seed(cls, value: int | None) -> int | None:
        if value is not None and value > SEED_MAX:
            raise ValueError(f"{value} is past ComfyUI's noise_seed maximum {SEED_MAX} (2^64 - 1): "
                             f"use a seed from 0 to {SEED_MAX}")
        return value

    @model_validator(mode="after")
    def _one_length(self) -> Shot:
        if self.seconds is not None and self.frames is not None:
            raise At(("frames",), "give seconds or frames, not both{also}", "keep one of them",
                     also=("seconds",), also_says="seconds is at line {line}")
        if self.continues and self.image is not None:
            raise At(("image",), "a shot that continues starts from the previous shot's last frame; it cannot "
                     "also start from `image:`", "keep `continue: true` or `image:`, not both (an `end_image:` "
                     "may go with either)")
        return self


class Film(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    title: str = Field(min_length=1)
    workflow: str | None = None
    fps: float = 16.0
    seconds: float | None = Field(None, gt=0)
    frames: int | None = None
    width: int = 832
    height: int = 480
    seed_base: int = Field(0, ge=0)
    style: str = ""
    negative: str | None = None
    transition: Transition = Field(default_factory=Transition)
    out: str | None = None
    steps: int | None = Field(None, ge=1, le=10000)
    switch_step: int | None = Field(None, ge=0)
    cfg: float | None = Field(None, ge=0, le=100)
    shift: float | None = Field(None, ge=0, le=100)
    lora_strength: float | None = Field(None, ge=-100, le=100)
    # The experts' weight_dtype (UNETLoader): fp8_e4m3fn_fast samples ~11-12.5 % faster per step on
    # Hopper GPUs (H100/H200; fp8 matrix multiplies) at the cost of more numeric drift. Unset keeps
    # the graph's ("default": the weights' own fp8, exact as shipped).
    weight_dtype: Literal["default", "fp8_e4m3fn", "fp8_e4m3fn_fast", "fp8_e5m2"] | None = None
    i2v_workflow: str | None = None  # the image-to-video graph (default: the shipped Wan 2.2 I2V one)
    colour_match: bool = True  # match each chain link's input to the chain's first keyframe (drift)
    # The post stage on the server after each shot: frame interpolation and upscaling (planning.post)
    post: Post | None = None
    # The LightX2V 4-step distillation LoRAs the graph loads (by role): v1.1 (default, what the shipped
    # graphs name) or 1217 (T2V 4step_1217, with the I2V 4step_1022 pair for image-to-video shots)
    lightx2v: Literal["v1.1", "1217"] | None = None
    shots: list[Shot] = Field(min_length=1)
    _lines: dict[tuple, int] = PrivateAttr(default_factory=dict)  # key path -> line, when read from a file

    _frames = field_validator("frames")(classmethod(lambda cls, v: _check_frames(v)))
    _size = field_validator("width", "height")(classmethod(lambda cls, v: _check_size(v)))
    _numbers = field_validator(*(n for n in NUMBERS if n not in ("seed", "duration")), mode="before")(
        classmethod(lambda cls, v: _not_a_boolean(v)))

    @field_validator("fps")
    @classmethod
    def _fps(cls, value: float) -> float:
        if not 1 <= value <= MAX_FPS:
            raise ValueError(f"{value:g} fps: at least 1 and at most {MAX_FPS:g} (what ComfyUI's video nodes take)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Film:
        if self.seconds is not None and self.frames is not None:
            raise At(("frames",), "give seconds or frames, not both{also}", "keep one of them",
                     also=("seconds",), also_says="seconds is at line {line}")
        first: dict[str, int] = {}
        for i, shot in enumerate(self.shots):
            if shot.name in first:
                raise At(("shots", i, "name"), f"shot names must be unique; shots[{first[shot.name] + 1}]{{also}} "
                         f"is also {shot.name!r}", "give this shot another name",
                         also=("shots", first[shot.name], "name"))
            first[shot.name] = i
        self._check_lengths()
        self._check_seeds()
        self._check_chains()
        self._check_post()
        if self.steps is not None and self.switch_step is not None and self.switch_step > self.steps:
            raise At(("switch_step",), f"switch_step {self.switch_step} is past steps {self.steps}{{also}}",
                     f"the sampler switches experts at a step from 0 to {self.steps}", also=("steps",))
        return self

    def _check_lengths(self) -> None:
        """A length in seconds becomes frames only with the film's fps: bound it here."""
        for loc, seconds in [(("seconds",), self.seconds)] + [(("shots", i, "seconds"), s.seconds)
                                                             for i, s in enumerate(self.shots)]:
            if seconds is not None and frames_for_seconds(seconds, self.fps) > MAX_FRAMES:
                raise At(loc, f"{seconds:g} s is {frames_for_seconds(seconds, self.fps)} frames at {self.fps:g} fps: "
                         f"at most {MAX_FRAMES} frames ({(MAX_FRAMES - 1) / self.fps:g} s; ComfyUI's longest video)",
                         "a Wan shot is best at 5 s (81 frames): split a long scene into shots")

    def _check_seeds(self) -> None:
        """``seed_base + i`` must stay within ComfyUI's noise_seed range for every shot it seeds."""
        derived = [i for i, shot in enumerate(self.shots, 1) if shot.seed is None]
        last = derived[-1] if derived else 0
        if derived and self.seed_base + last > SEED_MAX:
            i = next(i for i in derived if self.seed_base + i > SEED_MAX)
            raise At(("seed_base",), f"shot {i} ({self.shots[i - 1].name}) would get seed {self.seed_base + i}, "
                     f"past ComfyUI's noise_seed maximum {SEED_MAX} (2^64 - 1)",
                     f"use a seed_base of at most {SEED_MAX - last} (shot i gets seed_base + i), "
                     "or give those shots their own `seed:`")

    def _check_chains(self) -> None:
        """A chain needs a shot before it, and the cut into a continued shot is a hard cut."""
        if self.shots[0].continues:
            raise At(("shots", 0, "continue"), "the first shot cannot continue: there is no shot before it",
                     "remove `continue: true`, or give it `image:` to start from a keyframe")
        for i, shot in enumerate(self.shots):
            if shot.continues and shot.transition is not None and shot.transition.type != CUT:
                raise At(("shots", i, "transition"), f"the cut into a continued shot is a hard cut that drops "
                         f"its first frame (the previous shot's last frame), not a {shot.transition.type}",
                         "remove `transition:` from this shot (or end the chain: remove `continue: true`)")

    def _check_post(self) -> None:
        """An upscale past what the upscalers and the stitch take is refused at the key that asks it."""
        for i in range(1, len(self.shots) + 1):
            job = self.post_job(i)
            if job is not None and max(job.width, job.height) > MAX_SIDE:
                own = self.shots[i - 1].post
                loc = ("shots", i - 1, "post", "upscale") if own and "upscale" in own.model_fields_set \
                    else ("post", "upscale")
                raise At(loc, f"{self.width}x{self.height} upscaled is {job.width}x{job.height}: past "
                         f"{MAX_SIDE} pixels a side", "ask for a smaller upscale (2, or 1080p)")

    def chains(self) -> list[list[int]]:
        """Each chain as 1-based shot indexes (``[3, 4, 5]``): a shot and the continued shots after it."""
        found: list[list[int]] = []
        for i, shot in enumerate(self.shots, 1):
            if shot.continues:
                if found and found[-1][-1] == i - 1:
                    found[-1].append(i)
                else:
                    found.append([i - 1, i])
        return found

    def continues_from(self, index: int) -> int | None:
        """The 1-based index of the shot whose last frame shot ``index`` starts from, or None."""
        return index - 1 if self.shots[index - 1].continues else None

    def kept_frames(self, index: int) -> int:
        """Frames of shot ``index`` in the film: a continued shot's first frame is its predecessor's
        last frame, so the stitch drops it."""
        return kept_frames(self.shot_frames(index), self.shots[index - 1].continues)

    @property
    def slug(self) -> str:
        return slugify(self.title)

    def shot_seed(self, index: int) -> int:
        """Shot ``index`` (1-based) gets ``seed_base + index`` unless it sets its own."""
        own = self.shots[index - 1].seed
        return own if own is not None else self.seed_base + index

    def shot_frames(self, index: int) -> int:
        shot = self.shots[index - 1]
        if shot.frames is not None:
            return shot.frames
        if shot.seconds is not None:
            return frames_for_seconds(shot.seconds, self.fps)
        if self.frames is not None:
            return self.frames
        return frames_for_seconds(self.seconds or DEFAULT_SECONDS, self.fps)

    def shot_post(self, index: int) -> Post | None:
        """Shot ``index``'s post settings: the film's, each key the shot gives replacing the film's;
        None when there is nothing to do."""
        return merged_post(self.post, self.shots[index - 1].post)

    def post_job(self, index: int) -> PostJob | None:
        """What shot ``index``'s post step must produce, or None (``planning.post``)."""
        post = self.shot_post(index)
        if post is None:
            return None
        return post_job(post.interpolate, post.upscale, self.shot_frames(index), self.fps, self.width, self.height)

    @property
    def out_fps(self) -> float:
        """The film's frame rate after the film-level post stage."""
        return self.fps * (self.post.interpolate if self.post is not None else 1)

    @property
    def out_size(self) -> tuple[int, int]:
        """The film's size after the film-level post stage."""
        return upscaled_size(self.width, self.height, self.post.upscale if self.post is not None else None)

    def shot_prompt(self, index: int) -> str:
        shot = self.shots[index - 1]
        style = shot.style if shot.style is not None else self.style
        return f"{shot.prompt.strip().rstrip(',')}, {style.strip()}" if style.strip() else shot.prompt.strip()

    def transition_into(self, index: int) -> Transition | None:
        """The cut into shot ``index`` from the one before; none for the first shot."""
        if index == 1:
            return None
        shot = self.shots[index - 1]
        if shot.continues:
            return shot.transition or Transition(type=CUT, duration=0.0)
        return shot.transition or self.transition

    def where(self, *loc: str | int) -> str:
        """``"line N: "`` of a key path (``"shots", 0, "transition"``) in the file, or ``""``."""
        line = line_of(self._lines, loc) if self._lines else None
        return f"line {line}: " if line else ""

    def line(self, *loc: str | int) -> int | None:
        """The line of exactly this key path (``"transition"``), or None when the file does not
        have it (it is a default) or the film was not read from a file."""
        return self._lines.get(tuple(loc))

    def seconds_after_transitions(self, whole_frames: bool = True) -> float:
        """The film's length as the stitch writes it: Σ kept frames / fps − Σ transition overlaps (a
        continued shot keeps all its frames but the first, which is the previous shot's last frame),
        rounded up to a whole frame (``timeline.film_frame_count``); ``whole_frames=False``: the
        formula alone."""
        count, fps = len(self.shots), self.out_fps
        overlaps = [self.transition_into(i).overlap_or_cut for i in range(2, count + 1)]
        kept = [self.kept_out_frames(i) for i in range(1, count + 1)]
        if whole_frames:
            return film_frame_count(kept, overlaps, fps) / fps
        return film_seconds(kept, overlaps, fps)

    def kept_out_frames(self, index: int) -> int:
        """``kept_frames`` after the film-level post stage: ``(N - 1) * m + 1`` frames, the first of a
        continued shot still dropped (it is the same last frame of its predecessor)."""
        m = self.post.interpolate if self.post is not None else 1
        return kept_frames((self.shot_frames(index) - 1) * m + 1, self.shots[index - 1].continues)

    def warnings(self, shot_seeds: list[int] | None = None) -> list[str]:
        """What is allowed but likely a mistake; ``shot_seeds``: each shot's seed when the plan knows
        them (kept from the ledger), else ``shot_seed``."""
        notes = []
        seeds: dict[int, list[str]] = {}
        for i, shot in enumerate(self.shots, 1):
            seeds.setdefault(shot_seeds[i - 1] if shot_seeds else self.shot_seed(i), []).append(shot.name)
            frames = self.shot_frames(i)
            if frames > TRAINED_FRAMES:
                notes.append(f"shot {shot.name}: {frames} frames is past the {TRAINED_FRAMES} frames Wan 2.2 was "
                             "trained on; quality may fall (splitting it into shots is safer)")
        for seed, names in seeds.items():
            if len(names) > 1:
                notes.append(f"shots {', '.join(names)} share seed {seed}: they will start from the same noise")
        return notes


# -- reading the file ---------------------------------------------------------------------------

def load_film(path: Path) -> Film:
    """Read and validate a shots file; every problem raises ``ShotsFileError`` (exit 2)."""
    path = Path(path)
    text = _read_text(path)
    try:
        node = _compose(text)
        data = _StrictLoader(text).construct_document(node) if node is not None else None
        _refuse_duplicate_keys(path, node, data if isinstance(data, dict) else {})
        lines = _line_index(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ShotsFileError(str(path), f"{where}YAML syntax error: {problem}",
                             "check indentation and quote prompts that contain ':' or '#'") from exc
    if not isinstance(data, dict):
        raise ShotsFileError(str(path), "the file must be a mapping with a title and a list of shots",
                             "start from an example: `wanclip examples copy tomato_egg`")
    try:
        film = Film.model_validate(data)
    except ValidationError as exc:
        raise _explain(path, exc, data, lines) from exc
    film._lines = lines
    return film


class _StrictLoader(yaml.SafeLoader):
    """YAML without aliases: ``*name`` can expand a 1 KB file into gigabytes (a "billion laughs")."""

    def compose_node(self, parent, index):  # noqa: ANN001 - PyYAML's signature
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed in a shots file: "
                                              "write the value out where it is used", mark)
        return super().compose_node(parent, index)


def _compose(text: str) -> yaml.Node | None:
    loader = _StrictLoader(text)
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


def _refuse_duplicate_keys(path: Path, node: yaml.Node | None, data: dict, at: tuple = ()) -> None:
    """YAML lets the last of two equal keys win in silence: in a shots file that hides a mistake."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            line = key.start_mark.line + 1
            if key.value in seen:
                raise ShotsFileError(str(path), f"line {line}: {_field_name((*at, key.value), data)}: "
                                     f"{key.value!r} is given twice (first at line {seen[key.value]})",
                                     "keep one of them: YAML would silently use the last")
            seen[key.value] = line
            _refuse_duplicate_keys(path, value, data, (*at, key.value))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _refuse_duplicate_keys(path, item, data, (*at, i))


def _read_text(path: Path) -> str:
    """The file as text: a folder, a missing file and bytes that are not UTF-8 are named as such."""
    if path.is_dir():
        inside = sorted(p.name for p in path.glob("*.y*ml"))
        listed = ", ".join(inside[:8]) + (f" (and {len(inside) - 8} more)" if len(inside) > 8 else "")
        raise ShotsFileError(str(path), "is a folder, not a shots file",
                             f"give one of its files: {listed}" if inside
                             else "give the path of a .yaml shots file")
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_SHOTS_FILE_BYTES + 1)
    except FileNotFoundError as exc:
        raise ShotsFileError(str(path), "no such shots file",
                             "check the path; `wanclip examples` lists the films wanclip ships") from exc
    except OSError as exc:
        raise ShotsFileError(str(path), f"cannot read the shots file: {exc.strerror or exc}",
                             "check the path and its permissions") from exc
    if len(raw) > MAX_SHOTS_FILE_BYTES:
        raise ShotsFileError(str(path), f"is larger than {MAX_SHOTS_FILE_BYTES >> 20} MiB: not a shots file",
                             "give the path of a .yaml shots file (a 60 s film's is a few KB)")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ShotsFileError(str(path), f"line {line} (byte {exc.start}): not UTF-8 text "
                             f"(byte 0x{raw[exc.start]:02x}: {exc.reason})",
                             "save it as UTF-8 (in most editors: Save As, encoding UTF-8)") from exc


def _line_index(node: yaml.Node | None, path: tuple = ()) -> dict[tuple, int]:
    """Map each key path (``("shots", 2, "seed")``) to its 1-based line in the file."""
    index: dict[tuple, int] = {}
    if node is None:
        return index
    index[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            index[(*path, key.value)] = key.start_mark.line + 1
            index.update({k: v for k, v in _line_index(value, (*path, key.value)).items() if k != (*path, key.value)})
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            index.update(_line_index(item, (*path, i)))
    return index


def _explain(path: Path, exc: ValidationError, data: dict, lines: dict[tuple, int]) -> ShotsFileError:
    error = exc.errors()[0]
    loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith(("function-", "str"))))
    loc = tuple(p for p in loc if p not in ("Transition",))
    at = (error.get("ctx") or {}).get("error")
    if isinstance(at, At):
        loc = (*loc, *at.loc)
    field = _field_name(loc, data)
    line = line_of(lines, loc)
    where = f"line {line}: " if line else ""
    message, hint = ((at.located(lines, loc[:len(loc) - len(at.loc)]), at.hint) if isinstance(at, At)
                     else _message(error, loc))
    extra = len(exc.errors()) - 1
    more = f" (and {extra} more problem{'s' if extra > 1 else ''})" if extra else ""
    return ShotsFileError(str(path), f"{where}{field}: {message}{more}", hint)


def line_of(lines: dict[tuple, int], loc: tuple) -> int | None:
    """The line of ``loc``, else of the nearest key above it that the file has."""
    return next((lines[loc[:i]] for i in range(len(loc), -1, -1) if loc[:i] in lines), None)


def _field_name(loc: tuple, data: dict) -> str:
    parts = []
    for i, part in enumerate(loc):
        if isinstance(part, int) and i and loc[i - 1] == "shots":
            shots = data.get("shots") or []
            name = shots[part].get("name") if part < len(shots) and isinstance(shots[part], dict) else None
            parts[-1] = f"shots[{part + 1}]" + (f" ({name})" if name else "")
        else:
            parts.append(str(part))
    return ".".join(parts) or "file"


def _message(error: dict, loc: tuple) -> tuple[str, str]:
    kind, key = error["type"], str(loc[-1]) if loc else ""
    if kind == "extra_forbidden":
        model = (Post if "post" in loc else Shot if "shots" in loc and isinstance(loc[-2], int)
                 else Transition if "transition" in loc else Film)
        keys = [f.alias or name for name, f in model.model_fields.items()]
        close = difflib.get_close_matches(key, keys, n=1)
        return (f"unknown key {key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""),
                f"allowed keys here: {', '.join(keys)}")
    if kind == "missing":
        return "is required", f"add `{key}:` here"
    if kind == "too_short" and key == "shots":
        return "the film has no shots", "add at least one shot with a name and a prompt"
    text = error["msg"].removeprefix("Value error, ")
    return text, ""
