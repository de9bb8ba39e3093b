"""A film's plan: every shot's injected graph, its seed, length and hash. No server needed.

``plan_film()`` is what ``wanclip plan`` prints and what ``wanclip render`` submits; the graph hash
(``graph_sha256``) is the render ledger's key for "this shot is already done".
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path

from wanclip.errors import ShotsFileError, UsageError, WanclipError, WorkflowError
from wanclip.files import atomic_write_text
from wanclip.ledger import Ledger, ledger_path, load_ledger
from wanclip.planning.folders import check_film_folder
from wanclip.planning.identity import identity_sha256
from wanclip.planning.keyframes import fit_note, keyframe_key, read_keyframe
from wanclip.planning.post import PostJob
from wanclip.planning.post_models import LORA_SETS
from wanclip.planning.seeds import Seed, assign_seeds
from wanclip.planning.shots import Film, Transition, load_film
from wanclip.planning.timeline import cut_problem, kept_frames
from wanclip.planning.workflow import (
    CONTINUE_PLACEHOLDER,
    I2V_WORKFLOW,
    SHIPPED_WORKFLOW,
    Roles,
    ShotParams,
    image_name,
    inject_shot,
    load_graph,
    shipped_path,
)

NEWEST = 0  # `--take NAME=newest`: no pin, the film uses the newest take
IMAGE_KEYS = {"start_image": "image", "end_image": "end_image"}  # graph role -> shots-file key


# -- the example films shipped in the package -----------------------------------------------------
def example_names() -> list[str]:
    """The shipped films, by name (``tomato_egg``): `wanclip examples` lists them."""
    folder = shipped_path("shots", "")
    return sorted(p.stem for p in folder.glob("*.yaml"))


def example_path(name: str) -> Path | None:
    """The shipped film ``name`` (with or without ``.yaml``), or None."""
    stem = name.removesuffix(".yaml").removesuffix(".yml")
    return shipped_path("shots", f"{stem}.yaml") if stem in example_names() else None


def _closest_example(name: str) -> str | None:
    close = difflib.get_close_matches(name.removesuffix(".yaml"), example_names(), n=1, cutoff=0.5)
    return close[0] if close else None


def example(name: str) -> Path:
    """The shipped film ``name``; an unknown one is refused with the names there are."""
    found = example_path(name)
    if found is None:
        close = _closest_example(name)
        guess = f"did you mean {close}? " if close else ""
        raise WanclipError(f"no example named {name!r}",
                           f"{guess}the examples are: {', '.join(example_names())}")
    return found


def copy_example(name: str, dest: Path | None = None) -> Path:
    """Copy the shipped film ``name`` to ``dest`` (a file, or a folder to put NAME.yaml in; default
    here) to edit; an existing file is never overwritten."""
    source = example(name)
    dest = Path(dest) if dest is not None else Path(source.name)
    if dest.is_dir():
        dest = dest / source.name
    pictures = [Path(p) for s in load_film(source).shots for p in (s.image, s.end_image) if p]
    try:
        with dest.open("xb") as handle:
            handle.write(source.read_bytes())
        for rel in dict.fromkeys(pictures):  # its keyframes, beside the copy, as the file names them
            target = dest.parent / rel
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes((source.parent / rel).read_bytes())
    except FileExistsError:
        raise WanclipError(f"{dest} already exists; wanclip never overwrites it",
                           "give another destination, or remove that file first") from None
    except OSError as exc:
        raise WanclipError(f"cannot write {dest}: {exc.strerror or exc}", "give another destination") from exc
    return dest


def resolve_shots_file(arg: Path) -> Path:
    """``arg`` when that file exists, else the shipped example of that name (``tomato_egg``,
    ``tomato_egg.yaml`` or ``shots/tomato_egg.yaml``, as the README writes it, from any folder)."""
    arg = Path(arg)
    if arg.exists() or arg.is_symlink():
        return arg
    found = example_path(arg.name) if arg.parent in (Path("."), Path("shots")) else None
    if found is not None:
        return found
    close = _closest_example(arg.name)
    guess = f"did you mean the example {close}? " if close else ""
    raise ShotsFileError(str(arg), "no such shots file",
                         f"{guess}check the path; `wanclip examples` lists the films wanclip ships "
                         "(`wanclip examples copy NAME` copies one here to edit)")


@dataclass
class PlannedShot:
    index: int
    name: str
    seed: int
    frames: int
    fps: float
    width: int
    height: int
    prompt: str
    transition: Transition | None
    graph: dict
    graph_sha256: str  # the shot's identity (the ledger's key for "already done"): see planning.identity
    roles: Roles  # the graph's roles, found once here; every later use (labels, submit) takes these
    continues: str | None = None  # the shot whose last frame this one starts from
    keyframes: dict[str, Path] = field(default_factory=dict)  # "start_image"/"end_image" -> the picture
    seed_source: str = "seed_base"  # why it has its seed: see planning.seeds
    take: int | None = None  # the take the film uses when pinned (`take: N`, `--take NAME=N`)
    reseed: bool = False  # `--reseed NAME`: render a new take with a fresh seed
    post: PostJob | None = None  # the post step on the server after it renders (planning.post)

    @property
    def seconds(self) -> float:
        return self.frames / self.fps

    @property
    def kept_frames(self) -> int:
        """Frames in the film: a continued shot's first frame is its predecessor's last one."""
        return kept_frames(self.frames, bool(self.continues))

    @property
    def stem(self) -> str:
        return f"{self.index:02d}_{self.name}"


@dataclass
class Plan:
    film: Film
    shots_file: Path
    workflow: Path
    out_dir: Path
    shots: list[PlannedShot]
    warnings: list[str] = field(default_factory=list)
    i2v_workflow: Path | None = None  # the image-to-video graph, when a shot needs it
    ledger: Ledger | None = None  # the film folder's ledger when the plan was made (seeds, takes)
    take_pins: dict[str, int] = field(default_factory=dict)  # `--take` pins, kept in the ledger for later runs

    @property
    def chains(self) -> list[list[PlannedShot]]:
        """Each chain: a shot and the shots that continue from it, in order."""
        return [[self.shots[i - 1] for i in chain] for chain in self.film.chains()]

    @property
    def seconds(self) -> float:
        """Film length after transitions: Σ shot lengths − Σ overlaps."""
        return self.film.seconds_after_transitions()

    def to_json(self) -> dict:
        return {
            "film": {"title": self.film.title, "fps": self.film.out_fps, "rendered_fps": self.film.fps,
                     "size": list(self.film.out_size), "shots": len(self.shots), "seconds": round(self.seconds, 4)},
            "shots": [{"index": s.index, "name": s.name, "seed": s.seed, "seed_source": s.seed_source,
                       "take": s.take, "frames": s.frames,
                       "seconds": round(s.seconds, 4), "width": s.width, "height": s.height,
                       "prompt": s.prompt, "graph_sha256": s.graph_sha256, "continues": s.continues,
                       "keyframes": {k: str(v) for k, v in s.keyframes.items()},
                       "post": None if s.post is None else {
                           "key": s.post.key, "interpolate": s.post.interpolate, "frames": s.post.frames,
                           "fps": s.post.fps, "width": s.post.width, "height": s.post.height}} for s in self.shots],
            "chains": [[s.name for s in chain] for chain in self.chains],
        }

    def check_folder(self) -> None:
        """Refuse ``out_dir`` when it is another film's or holds files wanclip did not make
        (``planning.folders``): ``plan_film`` checks it; a render checks it again under its lock."""
        check_film_folder(self.out_dir, self.film.title, self.shots_file)

    def write_graphs(self) -> Path:
        folder = self.out_dir / "graphs"
        for shot in self.shots:
            text = json.dumps(shot.graph, indent=2, ensure_ascii=False) + "\n"
            atomic_write_text(folder / f"{shot.stem}.json", text)
        return folder


def workflow_path(film: Film, shots_file: Path, i2v: bool = False) -> Path:
    """The film's text-to-video graph, or (``i2v``) its image-to-video one."""
    own = film.i2v_workflow if i2v else film.workflow
    if not own:
        return shipped_path("workflows", I2V_WORKFLOW if i2v else SHIPPED_WORKFLOW)
    path = Path(own).expanduser()
    return path if path.is_absolute() else shots_file.parent / path


def _named(path: Path, exc: WorkflowError) -> WorkflowError:
    """The error with the graph's file named in the message (once)."""
    where = exc.message if exc.path else f"{path}: {exc.message}"
    return WorkflowError(where, exc.hint, role=exc.role, path=None)


def _load(path: Path) -> dict:
    try:
        return load_graph(path)
    except WorkflowError as exc:
        raise _named(path, exc) from exc


def plan_film(shots_file: Path, out: Path | None = None, film: Film | None = None, *,
              reseed: list[str] | tuple[str, ...] = (), takes: dict[str, int] | None = None,
              check_folder: bool = True) -> Plan:
    """Validate the shots file and build every shot's graph; raises before anything is written.

    Seeds come from the film folder's ledger where the shots rendered before (``planning.seeds``);
    ``reseed``: shots to give a fresh seed; ``takes``: ``{name: N}`` (``--take``) over the shots
    file's ``take: N``, over an earlier ``--take`` (kept in the ledger), each refused when the ledger
    has no such take; ``{name: NEWEST}`` drops the pin of an earlier ``--take``.
    ``check_folder=False``: the film folder is not looked into (for a caller that writes nothing
    there, as `wanclip doctor`: no folder check, no ledger read); a render checks it again anyway."""
    shots_file = Path(shots_file)
    if film is None:
        shots_file = resolve_shots_file(shots_file)
        film = load_film(shots_file)
    wf_path = workflow_path(film, shots_file)
    i2v_path = workflow_path(film, shots_file, i2v=True) if any(s.image_to_video for s in film.shots) else None
    bases = {False: _load(wf_path), True: _load(i2v_path) if i2v_path else None}
    out_dir = _film_folder(film, shots_file, out, check_folder)
    ledger = load_ledger(out_dir) if check_folder and ledger_path(out_dir).is_file() else None
    seeds = assign_seeds(film, ledger, list(reseed))
    notes = film.warnings([s.value for s in seeds])
    keyframes = [_keyframes(film, shots_file, i, notes) for i in range(1, len(film.shots) + 1)]
    pins = _pinned_takes(film, shots_file, ledger, takes or {})
    shots = []
    for i in range(1, len(film.shots) + 1):
        path = i2v_path if film.shots[i - 1].image_to_video else wf_path
        try:
            shot = _plan_shot(film, bases[path == i2v_path], i, keyframes[i - 1], seeds[i - 1])
        except WorkflowError as exc:
            raise _named(path, exc) from exc
        shot.take, shot.reseed = pins.get(shot.name), shot.name in reseed
        shots.append(shot)
    earlier = (ledger.film.get("take_pins") or {}) if ledger else {}
    kept_pins = {name: n for name, n in pins.items()  # --take pins, now and from earlier runs, for the ledger
                 if (takes or {}).get(name) == n or (name not in (takes or {}) and earlier.get(name) == n)}
    plan = Plan(film=film, shots_file=shots_file, workflow=wf_path, out_dir=out_dir, shots=shots,
                warnings=notes, i2v_workflow=i2v_path, ledger=ledger, take_pins=kept_pins)
    check_transitions(plan)
    return plan


def _takes_there(record) -> list[int]:
    """The take numbers of ``record``'s shot that have a clip."""
    there = [t["take"] for t in record.takes if t.get("clip")] if record else []
    return there + [record.take] if record and record.status == "done" and record.clip else there


def _pinned_takes(film: Film, shots_file: Path, ledger: Ledger | None, given: dict[str, int]) -> dict[str, int]:
    """Each shot's pinned take: this run's ``--take``, else the shots file's ``take:``, else an earlier
    ``--take`` (kept in the ledger while that take is there). A pin asked for now that names no take
    of the shot is refused with the takes there are."""
    names = [s.name for s in film.shots]
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise UsageError(f"--take names no shot of this film: {', '.join(unknown)}",
                         f"shots are: {', '.join(names)}", "--take")
    records = {r.name: r for r in [*ledger.removed, *ledger.shots]} if ledger else {}
    earlier = (ledger.film.get("take_pins") or {}) if ledger else {}
    pins = {}
    for index, shot in enumerate(film.shots):
        record = records.get(shot.name)
        wanted = given.get(shot.name, shot.take)
        if wanted is None:
            kept = earlier.get(shot.name)
            if isinstance(kept, int) and kept in _takes_there(record):
                pins[shot.name] = kept
            continue
        if wanted == NEWEST:
            continue
        there = _takes_there(record)
        if wanted in there:
            pins[shot.name] = wanted
            continue
        has = f"it has take{'s' if len(there) > 1 else ''} {', '.join(map(str, there))}" if there \
            else "it has no take yet"
        hint = "choose one of those (`wanclip takes` lists them), or remove the pin to use the newest"
        if shot.name in given:
            raise UsageError(f"--take {shot.name}={wanted}: shot {shot.name} has no take {wanted}; {has}", hint,
                             "--take")
        raise ShotsFileError(str(shots_file), f"{film.where('shots', index, 'take')}shots[{index + 1}] "
                             f"({shot.name}).take: shot {shot.name} has no take {wanted}; {has}", hint)
    return pins


def film_folder(shots_file: Path, out: Path | None = None) -> Path:
    """The film folder of ``shots_file`` (a file or a shipped example's name), without planning it."""
    shots_file = resolve_shots_file(Path(shots_file))
    return _film_folder(load_film(shots_file), shots_file, out, check=False)


def _film_folder(film: Film, shots_file: Path, out: Path | None, check: bool = True) -> Path:
    """``--out``, else the film's ``out:``, else out/<slug>; refused when a file stands in its way, or
    when the folder is another film's or holds files wanclip did not make (``planning.folders``)."""
    out_dir = Path(out) if out else Path(film.out).expanduser() if film.out else Path("out") / film.slug
    blocker = next((p for p in (out_dir, *out_dir.parents) if p.exists()), None)
    if blocker is None or blocker.is_dir():
        where = "--out" if out else f"{shots_file}: {film.where('out')}out:" if film.out else ""
        if check:
            check_film_folder(out_dir, film.title, shots_file, where)  # another film's, or the user's files
        return out_dir
    what = f"{blocker} is a file, not a folder"
    if out:
        raise WanclipError(f"--out: {what}", "give --out a folder (it is created when missing)")
    if film.out:
        raise ShotsFileError(str(shots_file), f"{film.where('out')}out: {what}",
                             "point `out:` at a folder, or remove it (the default is out/<film>)")
    raise WanclipError(f"the film folder {out_dir}: {what}", "move that file, or give --out another folder")


def _keyframes(film: Film, shots_file: Path, index: int, notes: list[str]) -> dict[str, Path]:
    """The shot's pictures (``image:``, ``end_image:``), each checked: it exists, is a picture, fits."""
    shot, found = film.shots[index - 1], {}
    for role, key in IMAGE_KEYS.items():
        value = getattr(shot, key)
        if value is None:
            continue
        path = Path(value).expanduser()
        path = path if path.is_absolute() else shots_file.parent / path
        where = film.where("shots", index - 1, key)
        field_name = f"shots[{index}] ({shot.name}).{key}"
        try:
            size = read_keyframe(path)
        except ValueError as exc:
            raise ShotsFileError(str(shots_file), f"{where}{field_name}: {path} {exc}",
                                 "give the path of a PNG or JPEG, relative to the shots file") from None
        problem, note = fit_note(size, film.width, film.height)
        if problem:
            raise ShotsFileError(str(shots_file), f"{where}{field_name}: {path}: {problem}",
                                 f"crop it to about {film.width}:{film.height} first, or change the film's "
                                 "width and height")
        if note:
            notes.append(f"shot {shot.name}: {key} {path.name}: {note}")
        found[role] = path
    return found


def _plan_shot(film: Film, base: dict, index: int, keyframes: dict[str, Path], seed_of: Seed) -> PlannedShot:
    shot = film.shots[index - 1]
    seed, frames = seed_of.value, film.shot_frames(index)
    images = {role: image_name(keyframe_key(path, film.width, film.height))
              for role, path in keyframes.items()}
    if shot.continues:
        images["start_image"] = CONTINUE_PLACEHOLDER
    params = ShotParams(
        positive=film.shot_prompt(index), seed=seed, frames=frames, width=film.width, height=film.height,
        fps=film.fps, filename_prefix=f"wanclip/{film.slug}/{shot.name}",  # no index: see planning.identity
        negative=shot.negative if shot.negative is not None else film.negative,
        steps=film.steps, switch_step=film.switch_step, cfg=film.cfg, shift=film.shift,
        lora_strength=film.lora_strength, weight_dtype=film.weight_dtype,
        distill_loras=LORA_SETS[film.lightx2v]["i2v" if shot.image_to_video else "t2v"] if film.lightx2v else None,
        start_image=images.get("start_image"),
        end_image=images.get("end_image"))
    graph, roles = inject_shot(base, params)  # the shot's roles, found once: they travel with it
    before = film.continues_from(index)
    return PlannedShot(index=index, name=shot.name, seed=seed, frames=frames, fps=film.fps, width=film.width,
                       height=film.height, prompt=params.positive, transition=film.transition_into(index),
                       graph=graph, graph_sha256=identity_sha256(graph, roles), roles=roles,
                       continues=film.shots[before - 1].name if before else None, keyframes=keyframes,
                       seed_source=seed_of.source, post=film.post_job(index))


def check_transitions(plan: Plan) -> None:
    """Refuse, before any GPU work, a transition the stitch would refuse after it (same rule)."""
    shots = plan.shots
    overlaps = [s.transition.overlap_or_cut if s.transition else None for s in shots[1:]]
    problem = cut_problem([s.kept_frames for s in shots], overlaps, plan.film.fps)
    if problem is None:
        return
    i = problem.clip
    shot = shots[i]
    # the transitions touching clip i: the one into it (its own) and the one into the next shot
    touching = [s for s in shots[i:i + 2] if s.transition and s.transition.overlap_or_cut is not None]
    if problem.short:
        why = f"the {shot.transition.duration:g} s {shot.transition.type} into it lasts under one frame"
        hint = "lengthen the transition, or make it a `cut`"
    elif len(touching) == 1:
        shot = touching[0]
        why = f"the {shot.transition.duration:g} s {shot.transition.type} is as long as a clip it joins"
        hint = "shorten the transition or lengthen the shots"
    else:
        why = (f"the transitions into and out of it ({problem.seconds:g} s together) are as long as the shot "
               f"({shot.seconds:g} s)")
        hint = "shorten the transitions or lengthen the shot"
    # the line: the shot's own transition, else the film's `transition:`, else (the default one,
    # which is in no line of the file) the shot's own line, never line 1
    film, k = plan.film, shot.index - 1
    if film.shots[k].transition is not None:
        where = film.where("shots", k, "transition")
    elif film.line("transition") is not None:
        where = film.where("transition")
    else:
        where = film.where("shots", k)
        why = why.replace(f" {shot.transition.type} ", f" {shot.transition.type} (the default transition) ", 1)
    raise ShotsFileError(str(plan.shots_file), f"{where}shots[{shot.index}] ({shot.name}): {why}", hint)
