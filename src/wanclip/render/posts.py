"""The post stage while a film renders: one more prompt per clip, after the clip (``planning.post``).

A shot whose film wants a post clip (``ShotRecord.post_key``) that is not made yet gets a second
shot in the coordinator, named ``"<name> post"`` (a space: no shot name has one), driven by the same
machine (``render.shot``): submitted, followed, re-attached after a crash, downloaded. It goes when
its shot's clip is done (its "start picture" is that clip, uploaded to the server like a keyframe),
so changing only ``post:`` samples nothing again. Its record lives in the shot's ledger record
(``ShotRecord.post``); when it is done, the post clip joins ``ShotRecord.posts``, keyed by the post
settings and the sha256 of the clip it was made from, and the film uses it (``Ledger.film_clip``).

Queue order: ``at-end`` (the default) posts each post prompt behind the shots still queued, so the
shots run back to back and the post prompts after them; ``after-each`` posts it ahead of them
(``front``), right after its shot. On ComfyUI's classic cache every switch between the two graphs
drops the other's models, so each post prompt run between two shots made the next shot load its
experts again: on an H100 (ComfyUI 0.3.64, 2026-12-07) 27-31 s instead of 15.8 s, and the 12-shot
film took 378.3 s against 240.1 s without post. At the end there is one switch, after the last shot.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

from wanclip.ledger import Ledger, ShotRecord
from wanclip.planning.plan import Plan, PlannedShot
from wanclip.planning.post import PostJob
from wanclip.render.chains import WAIT, Ready
from wanclip.render.takes import take_stem

MARK = " post"
AFTER_EACH, AT_END = "after-each", "at-end"
ORDERS = (AT_END, AFTER_EACH)


def post_name(name: str) -> str:
    return name + MARK


def is_post(name: str | None) -> bool:
    return bool(name) and name.endswith(MARK)


def base_name(name: str) -> str:
    return name[: -len(MARK)] if is_post(name) else name


def post_record(record: ShotRecord, job: PostJob, source_sha256: str | None) -> ShotRecord:
    """The post prompt's record: the one in the ledger when it is for the same settings and the same
    clip, and not finished (a crash left it on a server: re-attached), else a fresh one."""
    old = record.post if isinstance(record.post, dict) else None
    same = bool(old) and old.get("graph_sha256") == identity(job)
    if same and old.get("status") in ("queued", "running") and old.get("prompt_id") \
            and old.get("start_sha256") == source_sha256:
        return ShotRecord.from_dict({**old, "index": record.index, "name": post_name(record.name)})
    return ShotRecord(index=record.index, name=post_name(record.name), graph_sha256=identity(job), seed=0,
                      frames=job.frames, width=job.width, height=job.height, fps=job.fps,
                      continues=record.name,  # it starts from that clip: Assign records its sha256
                      attempts=old.get("attempts", 0) if same else 0)


def identity(job: PostJob) -> str:
    return f"post:{job.key}"


def post_stem(record: ShotRecord, job: PostJob, folder: Path, source: Path | None = None) -> str:
    """``NN_name.i2`` (``NN_name.take2.i2-u1664x960``...): beside the clip it is made from
    (``source``, else the record's newest take); a file there that no post entry of this shot names is
    never overwritten (a suffix avoids it)."""
    stem = f"{source.stem if source is not None else take_stem(record)}.{job.key}"
    ours = {p.get("clip") for p in record.posts if isinstance(p, dict)}
    base, n = stem, 1
    while (folder / "clips" / f"{stem}.mp4").exists() and f"clips/{stem}.mp4" not in ours:
        n += 1
        stem = f"{base}-{n}"
    return stem


@dataclass
class Posts:
    """Which post prompts may go, and the clip each one starts from (the ``ChainReady`` of posts)."""

    plan: Plan
    ledger: Ledger

    def __post_init__(self) -> None:
        self.planned: dict[str, PlannedShot] = {s.name: s for s in self.plan.shots}

    def wanted(self, names: list[str]) -> list[str]:
        """The shots among ``names`` whose film wants a post clip that is not made."""
        return [n for n in names if self.planned[n].post is not None and self.ledger.post_wanted(self.ledger.shot(n))]

    def ready(self, name: str) -> Ready:
        record = self.ledger.shot(base_name(name))
        if record.status == "failed":
            return Ready("blocked", why=f"shot {record.name} failed, so its post step cannot run; once it "
                         "renders, run the same command again")
        clip = self.ledger.rendered_clip(record)
        if record.status != "done" or clip is None:
            return WAIT
        if not clip.is_file():
            return Ready("blocked", why=f"the clip of shot {record.name} ({clip}) is gone")
        return Ready("go", clip)

    def start_sha256(self, name: str) -> str | None:
        return self.ledger.rendered_clip_sha256(self.ledger.shot(base_name(name)))

    def stem(self, name: str, source: Path | None = None) -> Path:
        """Where the post clip of ``name`` goes (without ``.mp4``), made from ``source``."""
        record = self.ledger.shot(base_name(name))
        job = self.planned[record.name].post
        assert job is not None
        return self.ledger.folder / "clips" / post_stem(record, job, self.ledger.folder, source)

    def job(self, name: str) -> PostJob:
        job = self.planned[base_name(name)].post
        assert job is not None
        return job

    def keep(self, record: ShotRecord) -> None:
        """Write the post prompt's ``record`` into its shot's ledger record; a done one (made from the
        clip the shot has now) joins the shot's post clips."""
        shot = self.ledger.shot(base_name(record.name))
        data = asdict(record)
        data.pop("index", None)
        data.pop("posts", None)
        data.pop("post", None)
        shot.post = data
        job = self.planned[shot.name].post
        if record.status != "done" or job is None or not record.clip:
            return
        entry = {"key": job.key, "from_sha256": record.start_sha256, "clip": record.clip,
                 "clip_sha256": record.clip_sha256, "frames": record.frames, "width": record.width,
                 "height": record.height, "fps": record.fps,
                 "made_at": record.rendered_at or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        posts = [p for p in shot.posts if isinstance(p, dict)]
        if not any(p.get("clip") == entry["clip"] and p.get("clip_sha256") == entry["clip_sha256"] for p in posts):
            shot.posts = [p for p in posts if p.get("clip") != entry["clip"]] + [entry]


@dataclass
class Readiness:
    """What the coordinator asks before a shot goes: chain links by ``Chains``, post prompts by ``Posts``."""

    chains: object
    posts: Posts

    def ready(self, name: str) -> Ready:
        return self.posts.ready(name) if is_post(name) else self.chains.ready(name)

    def start_sha256(self, name: str) -> str | None:
        return self.posts.start_sha256(name) if is_post(name) else self.chains.start_sha256(name)
