"""The backend seam: a whole render over a backend that is not ComfyUI.

``JobsBackend`` is a minimal stand-in shaped like the Comfy API v2 (the server picks its job ids,
the client's attempt id is only a key it remembers, no front of the queue, no event stream: state
is polled). The render reaches it through ``RenderOptions.backend_factory`` only: nothing in the
shot machine or the film's policy knows it is there. Effects run inline and look-ups are due on
every turn, so the render is deterministic and takes no sleeps.
"""

from __future__ import annotations

import itertools
import queue
import shutil
from pathlib import Path

import pytest

from fakecomfy import tiny_mp4
from test_render import tiny_film
from wanclip.checks.preflight import ServerInfo
from wanclip.comfy.outputs import Clip
from wanclip.errors import ServerError
from wanclip.files import sha256_file
from wanclip.planning.plan import plan_film
from wanclip.planning.workflow import graph_sha256
from wanclip.render.backend import Backend, Traits, Wanted
from wanclip.render.loop import Render, RenderOptions

URL = "https://jobs.example"


class NoEvents:
    connected = False  # the pool then polls ``states`` (poll_interval)

    def stop(self) -> None:
        pass


class JobsBackend:
    """Jobs named by the server; each ``states`` read moves every job one step (queued, running, done)."""

    def __init__(self, url: str, clip: Path, lose_first_answer: bool = False):
        self.url, self.clip, self.lose_first_answer = url, clip, lose_first_answer
        self.jobs: dict[str, dict] = {}  # job id (the server's) -> {attempt, graph, state}
        self.ids = (f"job-{n}" for n in itertools.count(1))
        self.runs: list[str] = []  # attempts, in the order their job ran
        self.closed = False

    def _job(self, attempt: str) -> dict | None:
        return next((j for j in self.jobs.values() if j["attempt"] == attempt), None)

    def probe(self, graphs: list[dict]) -> ServerInfo:
        return ServerInfo(self.url, "jobs 1.0", "test device")

    def traits(self) -> Traits:
        return Traits()

    def open_events(self, sink: queue.Queue) -> NoEvents:
        return NoEvents()

    def upload(self, picture: Path) -> str:
        return f"asset-{sha256_file(picture)[:12]}"

    def submit(self, graph: dict, attempt: str, front: bool = False) -> None:
        if self._job(attempt) is None:  # the attempt id is an idempotency key
            self.jobs[next(self.ids)] = {"attempt": attempt, "graph": graph, "state": "pending"}
        if self.lose_first_answer:
            self.lose_first_answer = False
            raise ServerError("502 Bad Gateway after the job was made", server=self.url, transient=True)

    def states(self, attempts: list[str]) -> dict[str, tuple[str, dict | None]]:
        for job in self.jobs.values():
            if job["state"] == "running":
                job["state"] = "done"
            elif job["state"] == "pending" and not any(j["state"] == "running" for j in self.jobs.values()):
                job["state"] = "running"
                self.runs.append(job["attempt"])
        out: dict[str, tuple[str, dict | None]] = {}
        for attempt in attempts:
            job = self._job(attempt)
            if job is None:
                out[attempt] = ("missing", None)
            elif job["state"] == "done":
                out[attempt] = ("done", {"status": {"status_str": "success", "messages": []},
                                         "outputs": {"out": {"asset": attempt}}})
            else:
                out[attempt] = (job["state"], None)
        return out

    def history(self, attempt: str, wait: float) -> dict:
        return self.states([attempt])[attempt][1] or {}

    def download(self, outputs: dict, wanted: Wanted) -> Clip:
        dest = wanted.stem.with_suffix(".mp4")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.clip, dest)
        return Clip(dest, sha256_file(dest), wanted.frames, wanted.width, wanted.height, wanted.frames / wanted.fps)

    def cancel(self, attempt: str, running: bool) -> None:
        self.jobs = {k: j for k, j in self.jobs.items() if j["attempt"] != attempt}

    def close(self) -> None:
        self.closed = True


def render_over(tmp_path, backend: JobsBackend, events: list | None = None) -> Render:
    seam: Backend = backend  # what a type checker holds the stand-in to
    plan = plan_film(tiny_film(tmp_path, 3), out=tmp_path / "out")
    options = RenderOptions(servers=[seam.url], backend_factory=lambda url, client_id: seam,
                            poll_interval=0.0, reconcile_interval=0.0, stitch=False)
    render = Render(plan, options, (events if events is not None else []).append, inline=True)
    render.start()
    for _ in range(500):
        if render.settled:
            break
        render.advance()
    render.close()
    return render


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return tiny_mp4(tmp_path_factory.mktemp("clip"))


def test_a_whole_render_runs_over_another_backend(tmp_path, clip):
    backend = JobsBackend(URL, clip)
    render = render_over(tmp_path, backend)
    assert [s.status for s in render.ledger.shots] == ["done"] * 3
    assert sorted(backend.runs) == sorted(s.prompt_id for s in render.ledger.shots)  # each shot ran once
    assert all((render.ledger.folder / s.clip).exists() for s in render.ledger.shots)
    assert backend.closed


def test_the_ledger_records_the_hash_of_the_graph_the_backend_received(tmp_path, clip):
    backend = JobsBackend(URL, clip)
    render = render_over(tmp_path, backend)
    posted = {job["attempt"]: graph_sha256(job["graph"]) for job in backend.jobs.values()}
    for record in render.ledger.shots:
        assert record.posted_sha256 == posted[record.prompt_id]
        assert record.posted_sha256 != record.graph_sha256  # the identity hash stays the planned graph's


def test_a_lost_answer_is_found_by_the_attempt_id_and_not_rendered_twice(tmp_path, clip):
    backend, events = JobsBackend(URL, clip, lose_first_answer=True), []
    render = render_over(tmp_path, backend, events)
    assert [s.status for s in render.ledger.shots] == ["done"] * 3
    found = [e for e in events if e.kind == "submitted" and e.data.get("found")]
    assert [e.shot for e in found] == ["shot-1"]  # looked up by its attempt id, not posted again
    assert render.ledger.shot("shot-1").attempts == 1
    assert len(backend.jobs) == 3 and len(backend.runs) == 3


def test_the_pool_and_the_effects_reach_servers_only_through_the_seam():
    """No ComfyUI client, socket, jobs API or download code in the pool or the effects: a second
    backend would otherwise have to imitate them."""
    import ast

    import wanclip.render.effects
    import wanclip.render.pool

    for module in (wanclip.render.pool, wanclip.render.effects):
        tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        imported |= {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
        assert not {name for name in imported
                    if name.startswith(("wanclip.comfy.client", "wanclip.comfy.follow", "wanclip.comfy.jobs",
                                        "wanclip.comfy.outputs", "requests", "websocket"))}, module.__name__


def test_comfyui_backend_stops_a_queued_prompt_by_deleting_and_a_running_one_by_interrupting():
    from wanclip.render.comfyui import ComfyBackend

    class Client:
        url, calls = URL, []

        def delete_pending(self, ids):
            self.calls.append(("delete", ids))

        def interrupt(self, prompt_id):
            self.calls.append(("interrupt", prompt_id))

    client = Client()
    backend = ComfyBackend(client, "wanclip-test")  # type: ignore[arg-type]
    backend.cancel("p1", running=False)
    backend.cancel("p2", running=True)
    assert client.calls == [("delete", ["p1"]), ("interrupt", "p2")]


class BuggyBackend(JobsBackend):
    def download(self, outputs: dict, wanted: Wanted) -> Clip:
        raise AttributeError("'NoneType' object has no attribute 'name'")  # a bug in a backend, not an answer


def test_a_bug_in_a_worker_job_stops_the_render_with_its_error_instead_of_hanging(tmp_path, clip):
    """A job that raises what no server answer explains (a bug) in a worker thread was kept by the
    executor's future: the render waited for its answer for ever. It now stops with that error."""
    import threading

    backend: Backend = BuggyBackend(URL, clip)
    plan = plan_film(tiny_film(tmp_path, 1), out=tmp_path / "out")
    options = RenderOptions(servers=[backend.url], backend_factory=lambda url, client_id: backend,
                            poll_interval=0.0, reconcile_interval=0.0, stitch=False)
    raised: list[BaseException] = []

    def run() -> None:
        try:
            Render(plan, options, lambda event: None).run()
        except BaseException as exc:  # noqa: BLE001 - the test looks at what it was
            raised.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive(), "the render hung on a job that raised"
    assert raised and isinstance(raised[0], AttributeError), raised
