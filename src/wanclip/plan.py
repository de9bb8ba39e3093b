"""A film's plan: every shot's injected graph, its seed, length and hash. No server needed.

``plan_film()`` is what ``wanclip plan`` prints and what ``wanclip render`` submits; the graph hash
(``graph_sha256``) is the render ledger's key for "this shot is already done".
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from wanclip.errors import ShotsFileError, WorkflowError
from wanclip.files import atomic_write_text
from wanclip.shots import Film, Transition, load_film
from wanclip.timeline import cut_problem
from wanclip.workflow import ShotParams, graph_sha256, inject, load_graph

SHIPPED_WORKFLOW = "wan22_t2v_lightx2v_4step.json"


def shipped_path(kind: str, name: str) -> Path:
    """A file shipped inside the package (``workflows`` or ``shots``)."""
    return Path(str(resources.files("wanclip") / "data" / kind / name))


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
    graph_sha256: str

    @property
    def seconds(self) -> float:
        return self.frames / self.fps

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

    @property
    def seconds(self) -> float:
        """Film length after transitions: Σ shot lengths − Σ overlaps."""
        return self.film.seconds_after_transitions()

    def to_json(self) -> dict:
        return {
            "film": {"title": self.film.title, "fps": self.film.fps, "shots": len(self.shots),
                     "seconds": round(self.seconds, 4)},
            "shots": [{"index": s.index, "name": s.name, "seed": s.seed, "frames": s.frames,
                       "seconds": round(s.seconds, 4), "width": s.width, "height": s.height,
                       "prompt": s.prompt, "graph_sha256": s.graph_sha256} for s in self.shots],
        }

    def write_graphs(self) -> Path:
        folder = self.out_dir / "graphs"
        for shot in self.shots:
            text = json.dumps(shot.graph, indent=2, ensure_ascii=False) + "\n"
            atomic_write_text(folder / f"{shot.stem}.json", text)
        return folder


def workflow_path(film: Film, shots_file: Path) -> Path:
    if not film.workflow:
        return shipped_path("workflows", SHIPPED_WORKFLOW)
    path = Path(film.workflow).expanduser()
    return path if path.is_absolute() else shots_file.parent / path


def plan_film(shots_file: Path, out: Path | None = None, film: Film | None = None) -> Plan:
    """Validate the shots file and build every shot's graph; raises before anything is written."""
    shots_file = Path(shots_file)
    film = film or load_film(shots_file)
    wf_path = workflow_path(film, shots_file)
    try:
        base = load_graph(wf_path)
        shots = [_plan_shot(film, base, i) for i in range(1, len(film.shots) + 1)]
    except WorkflowError as exc:
        where = exc.message if exc.path else f"{wf_path}: {exc.message}"
        raise WorkflowError(where, exc.hint, role=exc.role, path=None) from exc
    out_dir = Path(out) if out else Path(film.out) if film.out else Path("out") / film.slug
    plan = Plan(film=film, shots_file=shots_file, workflow=wf_path, out_dir=out_dir, shots=shots,
                warnings=film.warnings())
    check_transitions(plan)
    return plan


def _plan_shot(film: Film, base: dict, index: int) -> PlannedShot:
    shot = film.shots[index - 1]
    seed, frames = film.shot_seed(index), film.shot_frames(index)
    params = ShotParams(
        positive=film.shot_prompt(index), seed=seed, frames=frames, width=film.width, height=film.height,
        fps=film.fps, filename_prefix=f"wanclip/{film.slug}/{index:02d}_{shot.name}",
        negative=shot.negative if shot.negative is not None else film.negative,
        steps=film.steps, switch_step=film.switch_step, cfg=film.cfg, shift=film.shift,
        lora_strength=film.lora_strength)
    graph = inject(base, params)
    return PlannedShot(index=index, name=shot.name, seed=seed, frames=frames, fps=film.fps, width=film.width,
                       height=film.height, prompt=params.positive, transition=film.transition_into(index),
                       graph=graph, graph_sha256=graph_sha256(graph))


def check_transitions(plan: Plan) -> None:
    """Refuse, before any GPU work, a transition the stitch would refuse after it (same rule)."""
    shots = plan.shots
    overlaps = [s.transition.overlap_or_cut if s.transition else None for s in shots[1:]]
    problem = cut_problem([s.frames for s in shots], overlaps, plan.film.fps)
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
    raise ShotsFileError(str(plan.shots_file), f"shots[{shot.index}] ({shot.name}): {why}", hint)
