"""The render ledger: what was rendered, where, from which graph. The contract render <-> stitch.

``out/<film>/ledger.json`` is ``{"version": 1, "film": {...}, "shots": [...]}``. It is rewritten
atomically after every state change, so a crash or Ctrl-C always leaves a file a rerun can resume
from. Per shot:

``index`` (1-based), ``name``, ``graph_sha256``, ``seed``, ``frames``, ``width``, ``height``,
``fps``, ``status`` (``pending|queued|running|done|failed|lost``), ``server``, ``prompt_id``,
``clip`` (path relative to the film folder), ``clip_sha256``, ``error`` (``{node, class, message}``),
``execution_start_ms`` / ``execution_success_ms`` (the server's own timestamps), ``node_seconds``
(``{label: seconds}``), ``transition`` (the cut *into* this shot from the previous one:
``{"type": "fade", "duration": 0.3}``; ``null`` for the first shot), ``attempts``, ``cancelled``
(a stop was asked of the server and not yet confirmed: the next run looks the prompt up),
``prompt`` / ``style`` / ``negative`` (what the shot asked for, for the storyboard page).
Continuity (image-to-video): ``continues`` (the name of the shot whose last frame this one starts
from; the cut into it is a hard cut that drops this clip's first frame), ``start_sha256`` (the
sha256 of that predecessor's clip when this shot was submitted: a re-rendered predecessor makes
this shot stale), ``last_frame`` (the exactly decoded last frame of this clip, a PNG beside it,
relative to the film folder; written when a later shot continues from it).
Takes: ``take`` (the number of the newest take, which the fields above describe; the first render is
take 1, in ``clips/NN_name.mp4``; take N >= 2 in ``clips/NN_name.take<N>.mp4``), ``rendered_at``,
``takes`` (the earlier takes, oldest first: ``take``, ``clip``, ``clip_sha256``, ``seed``, ``prompt``,
``graph_sha256``, ``rendered_at``, ``edited``, ``edited_sha256``), ``edited_sha256`` (the newest clip's
bytes changed since it was rendered: the user's version, used and never overwritten), ``use_take`` (the
take the film uses when pinned), ``seed_source`` (why the shot has its seed). ``Ledger.film_clip`` is
the clip the film uses. A shot is known by its name: its position (``index``) may change.
The film's record also keeps ``seed_base`` (the seeds kept by name came from it), ``take_pins``
(``render --take`` pins, kept for later renders) and ``removed_shots`` (records of shots taken out of
the film, with their seeds and takes, until pruned; see ``Ledger.removed``).

Two graph hashes, for two questions. ``graph_sha256`` is the shot's *identity*: the sha256 of the
planned graph (``plan.PlannedShot.graph``), before any server or attempt touches it; a change of it
(a new prompt, seed, size, model...) is what makes a done shot render again, so it must not depend
on which server renders the shot or when. ``posted_sha256`` is the sha256 of the graph exactly as
it was posted for the current attempt (``planning.workflow.posted_graph``: the output named after
the attempt, the node pack's output node where the server has it, the uploaded pictures' names);
it changes with every attempt and decides nothing: it says what the server was sent.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path, PurePosixPath, PureWindowsPath

from filelock import FileLock, Timeout

from wanclip.errors import EXIT_BAD_INPUT, LocalIOError, WanclipError
from wanclip.files import atomic_write_text

LEDGER_NAME = "ledger.json"
REMOVED = "removed_shots"  # the ledger film's key for shots taken out of the film (see Ledger.removed)
LOCK_NAME = ".render.lock"
OWNER_NAME = ".render.lock.owner"  # who holds the lock: beside it, as a lock file may be truncated by a waiter
# How long a lock found held is waited for before the refusal. A holder killed while it was starting a
# child (ffmpeg) leaves the lock with that child for the moment between its fork and its exec (the
# exec closes the descriptor): a render run again at once found it held ("another wanclip render
# (pid N)", N the killed one; seen once in the suite under load). A real holder still is refused.
HELD_GRACE = 1.0
STATUSES = ("pending", "queued", "running", "done", "failed", "lost")
# node_seconds' key for the node pack's background encode: seconds off the GPU's path, not a node's
BACKGROUND_ENCODE = "background encode"


@dataclass
class ShotRecord:
    index: int
    name: str
    graph_sha256: str
    seed: int
    frames: int
    width: int
    height: int
    fps: float
    status: str = "pending"
    server: str | None = None
    prompt_id: str | None = None
    clip: str | None = None
    clip_sha256: str | None = None
    error: dict | None = None
    execution_start_ms: int | None = None
    execution_success_ms: int | None = None
    node_seconds: dict[str, float] = field(default_factory=dict)
    transition: dict | None = None
    attempts: int = 0
    cancelled: bool = False  # we asked the server to stop it (Ctrl-C/SIGTERM); not confirmed yet
    prompt: str = ""  # the positive prompt as sent, style suffix included
    style: str = ""  # the style suffix that was appended to the shot's own prompt
    negative: str | None = None
    continues: str | None = None  # the shot whose last frame this one starts from (a chain link)
    start_sha256: str | None = None  # that shot's clip sha256 when this one was submitted
    last_frame: str | None = None  # clips/NN_name.last.png: the decoded last frame, for the next link
    posted_sha256: str | None = None  # the graph exactly as posted for this attempt (not an identity)
    # takes: this record's clip/clip_sha256/seed/prompt/graph_sha256 are those of take ``take``, the
    # newest; ``takes`` are the earlier ones, oldest first (see TAKE_KEYS)
    take: int = 1
    rendered_at: str | None = None  # when this take finished, ISO-8601 UTC
    takes: list[dict] = field(default_factory=list)
    edited_sha256: str | None = None  # the newest take's clip as the user changed it (the film uses it)
    use_take: int | None = None  # the take the film uses when pinned (`take: N`, `--take NAME=N`)
    seed_source: str = "seed_base"  # shots file | ledger | seed_base | next free | reseed
    # The Comfy API v2 (the server picks the job id; ``prompt_id`` is then the client's attempt id, sent
    # as the Idempotency-Key): which backend took the attempt, the server's job id once the 201 said it,
    # the submit state (sent: saved before the POST; confirmed: the job id is known; unsure: no answer),
    # and the job's output refs ({id, name, url, ...}) the moment they are seen.
    backend: str | None = None
    job_id: str | None = None
    submit_state: str | None = None
    output_refs: list[dict] | None = None
    # The post stage (planning.post): ``post_key`` is the post step the film wants of this shot (None:
    # none), ``post`` the record of its prompt on the server (a ShotRecord as a dict, named
    # ``"<name> post"``, its ``start_sha256`` the clip it starts from), ``posts`` the post clips made
    # (POST_KEYS), each keyed by the post settings and the sha256 of the clip it was made from.
    post_key: str | None = None
    post: dict | None = None
    posts: list[dict] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict) -> ShotRecord:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class Ledger:
    path: Path
    film: dict = field(default_factory=dict)
    shots: list[ShotRecord] = field(default_factory=list)

    @property
    def folder(self) -> Path:
        return self.path.parent

    def shot(self, name: str) -> ShotRecord:
        for record in self.shots:
            if record.name == name:
                return record
        raise KeyError(name)

    @property
    def removed(self) -> list[ShotRecord]:
        """Shots taken out of the film after they rendered, kept by name in ``film["removed_shots"]``
        (with their seeds and takes): one put back is not rendered again, and their clips stay listed
        (``wanclip takes``) until pruned."""
        return [ShotRecord.from_dict(r) for r in self.film.get(REMOVED) or [] if isinstance(r, dict)]

    def set_removed(self, records: list[ShotRecord]) -> None:
        kept = [asdict(r) for r in records if r.clip or r.takes or r.posts]
        if kept:
            self.film[REMOVED] = kept
        else:
            self.film.pop(REMOVED, None)

    def clip_path(self, record: ShotRecord) -> Path | None:
        return (self.folder / record.clip) if record.clip else None

    def film_take(self, record: ShotRecord) -> dict | None:
        """The take the film uses, as a take dict (``TAKE_KEYS``): the pinned one (``use_take``) when it
        is an earlier take, else the newest when it is done; None when there is none."""
        if record.use_take is not None and record.use_take != record.take:
            takes = record.takes if isinstance(record.takes, list) else []  # a ledger edited by hand
            return next((t for t in takes if isinstance(t, dict) and t.get("take") == record.use_take
                         and t.get("clip")), None)
        if record.status != "done" or not record.clip:
            return None
        return take_of(record)

    def chained_sha256(self, record: ShotRecord) -> str | None:
        """The clip a chain link after ``record`` starts from, as its rendered sha256: the take the
        film uses (a pinned earlier take, or the newest), as it was rendered (a grade of it by the
        user does not make the link stale)."""
        take = self.film_take(record)
        return take.get("clip_sha256") if take else None

    def film_clip(self, record: ShotRecord) -> Path | None:
        """The clip file the film uses for ``record``'s shot: its post clip when the film wants one
        and it is made, else the chosen take's (or the newest's) rendered clip."""
        post = self.post_clip(record)
        if post is not None:
            return self.folder / post["clip"]
        return self.rendered_clip(record)

    def film_clip_sha256(self, record: ShotRecord) -> str | None:
        """The sha256 that clip must have: the post clip's, else the user's version of the rendered
        clip when they edited it, else the rendered one."""
        post = self.post_clip(record)
        return post["clip_sha256"] if post is not None else self.rendered_clip_sha256(record)

    def rendered_clip(self, record: ShotRecord) -> Path | None:
        """The rendered clip of the take the film uses (what a post step starts from)."""
        take = self.film_take(record)
        return self.folder / take["clip"] if take and isinstance(take["clip"], str) else None

    def rendered_clip_sha256(self, record: ShotRecord) -> str | None:
        take = self.film_take(record)
        return (take.get("edited_sha256") or take.get("clip_sha256")) if take else None

    def post_clip(self, record: ShotRecord) -> dict | None:
        """The post clip (a ``posts`` entry) the film uses: made with the settings the film wants
        (``post_key``) from the clip the film uses now; None when there is none (yet)."""
        if not record.post_key:
            return None
        source = self.rendered_clip_sha256(record)
        posts = record.posts if isinstance(record.posts, list) else []
        return next((p for p in reversed(posts) if isinstance(p, dict) and p.get("key") == record.post_key
                     and source and p.get("from_sha256") == source and isinstance(p.get("clip"), str)
                     and inside(self.folder, p["clip"]) is not None), None)

    def post_wanted(self, record: ShotRecord) -> bool:
        """The film wants a post clip of this shot that is not made (or whose file is gone)."""
        if not record.post_key or self.film_take(record) is None:
            return bool(record.post_key)
        post = self.post_clip(record)
        return post is None or not (self.folder / post["clip"]).is_file()

    def to_dict(self) -> dict:
        return {"version": 1, "film": self.film, "shots": [asdict(s) for s in self.shots]}

    def save(self) -> None:
        atomic_write_text(self.path, json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n")


POST_KEYS = ("key", "from_sha256", "clip", "clip_sha256", "frames", "width", "height", "fps", "made_at")
TAKE_KEYS = ("take", "clip", "clip_sha256", "seed", "prompt", "graph_sha256", "rendered_at", "edited")


def take_of(record: ShotRecord) -> dict:
    """The newest take of ``record`` as an entry of ``takes`` (``edited_sha256``: the user's bytes)."""
    finished = record.rendered_at or (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.execution_success_ms / 1000))
                                      if record.execution_success_ms else None)  # a ledger from before takes
    return {"take": record.take, "clip": record.clip, "clip_sha256": record.clip_sha256, "seed": record.seed,
            "prompt": record.prompt, "graph_sha256": record.graph_sha256, "rendered_at": finished,
            "edited": record.edited_sha256 is not None, "edited_sha256": record.edited_sha256}


def inside(folder: Path, value: object) -> Path | None:
    """``folder / value`` when ``value`` is a relative path that stays in ``folder`` as written (no
    ``..``, not absolute, no drive), else None: a ledger edited to name ``../../etc/passwd`` is never
    read (stitch) or deleted (prune) from. The check is on the path as the ledger writes it: a shared
    ledger cannot make a symlink, and a ``clips/`` the user linked to another disk is theirs."""
    if not isinstance(value, str) or not value:
        return None
    path = PurePosixPath(value.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or PureWindowsPath(value).drive or not path.parts:
        return None
    return Path(folder) / path


def ledger_path(film_dir: Path) -> Path:
    return Path(film_dir) / LEDGER_NAME


def load_ledger(film_dir_or_file: Path) -> Ledger:
    """Read a ledger from a film folder (or the ledger file itself)."""
    path = Path(film_dir_or_file)
    if path.is_dir():
        path = path / LEDGER_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise WanclipError(f"no render ledger at {path}",
                           "render the film first with `wanclip render SHOTS.yaml`") from exc
    except (OSError, ValueError) as exc:
        raise WanclipError(f"the render ledger {path} cannot be read: {exc}",
                           "delete it to start the film over, or restore it from a backup") from exc
    return _ledger_of(path, data)


def _ledger_of(path: Path, data: object) -> Ledger:
    """The ledger ``data`` describes; a file of another shape (a list, ``null``, shots that are not
    records) is refused with the reason, never a traceback, and left as it is."""
    hint = ("it is not a file wanclip wrote: move it away (the film folder's clips stay) to start the "
            "film's ledger over, or restore it from a backup")
    if not isinstance(data, dict) or not isinstance(data.get("film", {}), dict) \
            or not isinstance(data.get("shots", []), list):
        raise WanclipError(f"{path} is not a wanclip ledger (its JSON is a {type(data).__name__} of another "
                           "shape)", hint)
    shots = []
    for i, item in enumerate(data.get("shots", []), start=1):
        try:
            shots.append(ShotRecord.from_dict(item))
        except (TypeError, ValueError, AttributeError) as exc:
            raise WanclipError(f"{path} is not a wanclip ledger: shot record {i} cannot be read ({exc})",
                               hint) from exc
    return Ledger(path=path, film=data.get("film", {}), shots=shots)


@contextmanager
def film_lock(film_dir: Path, what: str = "render") -> Iterator[None]:
    """One render (or stitch) per film folder at a time: a second render would share the first one's
    client id and steal its events, a stitch would read clips a render is replacing. A second one is
    refused at once, naming the holder. ``what`` names this holder.

    The lock is ``filelock``'s: an OS lock (flock on Unix, LockFileEx on Windows, where this was a
    no-op before) that dies with its process, so a killed render never blocks the next. Its file
    is removed on release, so no ``.render.lock`` is left in the film folder: on Unix while the lock
    is still held, and a holder checks that the file it locked is still the one at the path (a
    waiter may have opened it just before its holder removed it) and locks again if not; on
    Windows filelock removes it itself. A killed holder leaves it, harmlessly (the next takes it)."""
    folder = Path(film_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # under /proc, a read-only disk, a file in the way: before any GPU work
        raise LocalIOError(f"cannot make the film folder {folder}: {exc.strerror or exc}",
                           "choose another --out (or `out:` in the shots file), in a folder you can write",
                           path=str(folder), errno=exc.errno, exit_code=EXIT_BAD_INPUT) from exc
    lock, fd = _take_lock(folder)
    try:
        atomic_write_text(folder / OWNER_NAME, f"{what} (pid {os.getpid()})")
        yield
    finally:
        (folder / OWNER_NAME).unlink(missing_ok=True)  # before the release: never name a holder gone
        try:
            if fd is not None and _is_at(fd, folder / LOCK_NAME):
                (folder / LOCK_NAME).unlink()  # while held: a waiter that opened it locks it, sees it gone, retries
        except OSError:  # a read-only folder or a file gone: the lock is released all the same
            pass
        finally:
            lock.release()


def _take_lock(folder: Path) -> tuple[FileLock, int | None]:
    """The folder's lock, held, and the descriptor of its flock (None where filelock removes the
    file itself). Locked again while the file locked is no longer the one at the path."""
    for _ in range(100):
        lock = FileLock(folder / LOCK_NAME)
        try:
            lock.acquire(timeout=HELD_GRACE, poll_interval=0.05)
        except Timeout as exc:
            raise WanclipError(f"another wanclip {_lock_owner(folder)} is working on {folder}",
                               "let it finish or stop it (Ctrl-C); then run again to resume") from exc
        fd = _flock_fd(lock)
        if fd is None or _is_at(fd, folder / LOCK_NAME):
            return lock, fd
        lock.release()  # its holder removed it on release: the lock is now the file at the path
    raise WanclipError(f"cannot take the lock of {folder}: its {LOCK_NAME} keeps being replaced",
                       "is another program removing files in the film folder? run again once it stops")


def _flock_fd(lock: FileLock) -> int | None:
    """The descriptor ``lock`` holds its flock on; None on Windows (filelock removes the file on
    release itself) and for filelock's soft fallback (its marker file is the lock: never ours to remove)."""
    if os.name == "nt":
        return None
    context = getattr(lock, "_context", None)
    if context is None or getattr(context, "soft_fallback", False):
        return None
    fd = getattr(context, "lock_file_fd", None)
    return fd if isinstance(fd, int) else None


def _is_at(fd: int, path: Path) -> bool:
    """Whether the open file ``fd`` is the file at ``path`` (same device and inode)."""
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except OSError:
        return False


def _lock_owner(folder: Path) -> str:
    try:
        return (folder / OWNER_NAME).read_text(encoding="utf-8").strip() or "another process"
    except OSError:  # it has the lock but has not written its name yet
        return "another process"
