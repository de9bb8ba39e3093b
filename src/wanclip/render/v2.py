"""The Comfy API v2 as a render backend (``wanclip.render.backend.Backend``).

The server picks a v2 job's id, so the backend keeps the mapping from the client's attempt id (the
shot's ``prompt_id`` in the ledger, made and saved before the POST) to the job id (saved right
after the 201: ``submit`` returns it, the shot machine records it). The attempt id is the
``Idempotency-Key`` of the POST and, where the surface takes labels, the job's label, so an
unknown outcome is resolved without rendering twice:

- a same-key retry is a safe probe: 201 means the first POST made no job, 422
  ``idempotency_key_reuse`` means it did: the job is found by its label in the surface's list and
  re-attached; where it cannot be found (Comfy Cloud has no list), a new attempt is posted under a
  derived key and the person is told the shot may have rendered twice;
- a job id the ledger holds re-attaches everywhere (``GET /jobs/{id}``).

Events come from polling ``GET /jobs/{id}`` on a thread (``Poller``), turned into the same typed
events as the native socket (``comfy.v2_jobs.Watch``).
"""

from __future__ import annotations

import queue
import socket
import threading
import uuid
from pathlib import Path

from wanclip.checks import v2_probe
from wanclip.checks.preflight import ServerInfo, fit_key
from wanclip.comfy import v2
from wanclip.comfy import v2_jobs as jobs
from wanclip.comfy.outputs import Clip, size_limit, verify_clip
from wanclip.errors import ClipError, LocalIOError, PreflightError, ServerError, WanclipError
from wanclip.files import sha256_file
from wanclip.planning.workflow import image_name
from wanclip.render.backend import State, Traits, Wanted
from wanclip.render.messages import Note

SECOND_KEY = "~2"  # the key suffix of the new attempt after one that could not be found
BUSY_WAIT = 300.0  # seconds one submission waits out 429s (Retry-After) before it counts as failed


class V2Backend:
    kind = "v2"

    def __init__(self, client: v2.V2Client, known: dict[str, str] | None = None, poll: float = 0.5,
                 concurrency: int | None = None, refs: dict[str, list[dict]] | None = None,
                 unconfirmed: dict[str, str] | None = None):
        self.client = client
        self.jobs: dict[str, str] = dict(known or {})  # attempt id -> the server's job id
        self.refs = dict(refs or {})  # attempt id -> the output refs the ledger recorded for its job
        # attempts an earlier run posted (or was about to) without ever saving a job id: attempt -> shot
        self.unconfirmed = dict(unconfirmed or {})
        self.poll = poll
        self.concurrency = concurrency or v2.DEFAULT_CONCURRENCY
        self.lists = not client.is_cloud  # Comfy Cloud answers 501 to the list and refuses labels
        self.sink: queue.Queue | None = None
        self.lock = threading.Lock()
        self.ended: set[str] = set()  # attempts whose job ended (the poller saw it)
        self.assets: dict[str, str] = {}  # a picture's sha256 -> its asset id on this surface
        self.closing = threading.Event()
        # attempts whose POST may have made a job but got no answer -> the latest job of ours confirmed
        # before it (proof, later, that the surface kept its keys): a later 201 may prove nothing
        self.unanswered: dict[str, list[tuple[str, str]]] = {}
        self.proxy: bool | None = None  # comfy-api-proxy (it may forget its keys): known from its health

    @property
    def url(self) -> str:
        return self.client.url

    def _call(self, req: v2.Request) -> object:
        try:
            return self.client.call(req)
        except v2.V2Error as exc:
            raise v2.wanclip_error(exc, self.url) from None

    # -- before any work ------------------------------------------------------------------------
    def probe(self, graphs: list[dict]) -> ServerInfo:
        """The surface answers, and the key works (a GET of an unknown job: 404 means it does)."""
        try:
            health = self._call(v2.health_request())
            self.check_key()
        except WanclipError as exc:
            raise PreflightError(f"{exc.message}; nothing was submitted", exc.hint) from exc
        proxy = isinstance(health, dict) and health.get("upstream")
        self.proxy = bool(proxy)
        kind = "Comfy Cloud" if self.client.is_cloud else "comfy-api-proxy" if proxy else "a Comfy API v2 surface"
        # printed as "URL: ComfyUI via the Comfy API v2 on comfy-api-proxy, 2 jobs at once"
        info = ServerInfo(self.url, "via the Comfy API v2", f"{kind}, {self.concurrency} jobs at once")
        seen: set[str] = set()
        for graph in graphs:
            key = fit_key(graph)
            if key not in seen:
                seen.add(key)
                lacks = v2_probe.probe(self.client, graph)
                if lacks:
                    info.unfit[key], info.problems[key] = [c.detail for c in lacks], lacks
        return info

    def check_key(self) -> None:
        try:
            self._call(v2.job_request(str(uuid.uuid4())))
        except ServerError as exc:
            if v2.is_auth_error(exc) or "HTTP 404" not in exc.message:
                raise

    def traits(self) -> Traits:
        return Traits()  # no /object_info in v2: wanclip's node pack is not looked for

    def open_events(self, sink: queue.Queue) -> Poller:
        self.sink = sink
        poller = Poller(self, sink)
        poller.start()
        return poller

    # -- a shot -----------------------------------------------------------------------------------
    def upload(self, picture: Path) -> dict:
        """The picture as a v2 asset (once per content and run; the surface deduplicates by hash too),
        answered as the ``core/ASSET`` reference the graph's LoadImage takes."""
        digest = sha256_file(picture)
        if digest not in self.assets:
            try:
                data = Path(picture).read_bytes()
            except OSError as exc:
                raise LocalIOError.from_os(exc, picture, "read") from exc
            answer = self._call(v2.upload_request(image_name(digest), data))
            asset_id = answer.get("id") if isinstance(answer, dict) else None
            if not isinstance(asset_id, str):
                raise ServerError(f"the Comfy API v2 at {self.url} answered an upload without an asset id",
                                  server=self.url, transient=True)
            self.assets[digest] = asset_id
        return v2.asset_ref(self.assets[digest])

    def submit(self, graph: dict, attempt: str, front: bool = False) -> str:
        """POST the graph under the attempt's key; the job id (a 422 key reuse: the job it made).
        A 429 (``queue_full``, ``rate_limited``) made no job: posted again after its Retry-After."""
        try:
            job = v2.parse_job(self._post_labelled(graph, attempt))
        except v2.V2Refused as exc:
            if v2.lost_outcome(exc):
                self._tell("warning", f"the answer to attempt {attempt} on {self.url} was lost after it reached "
                                      "ComfyUI, and the proxy released its key: if ComfyUI queued it, the shot may have "
                                      "rendered twice (the first attempt could not be confirmed)", attempt=attempt)
                raise ServerError(f"the answer to the POST of attempt {attempt} on {self.url} was lost", server=self.url,
                                  transient=True) from None
            if exc.code != "idempotency_key_reuse":
                raise v2.wanclip_error(exc, self.url) from None
            self.unanswered.pop(attempt, None)  # the key says the first POST made a job: no doubt left
            found = self.find(attempt)
            if found is not None:
                return self._known(attempt, found)
            self._tell("warning", f"the first attempt ({attempt}) of a shot on {self.url} made a job that "
                                  "cannot be found again: a new attempt is posted, so the shot may have rendered "
                                  "twice (the first attempt could not be confirmed)")
            try:
                job = v2.parse_job(self.client.call(v2.submit_request(graph, attempt + SECOND_KEY,
                                                                      self._label(attempt))))
            except v2.V2Error as again:
                raise v2.wanclip_error(again, self.url) from None
        except v2.V2NoAnswer as exc:
            if exc.sent:  # it may have made a job: the retry's 201 is judged by ``_doubt``
                with self.lock:
                    self.unanswered.setdefault(attempt, [(a, j) for a, j in self.jobs.items() if a != attempt][-1:])
            raise v2.wanclip_error(exc, self.url) from None
        except v2.V2Error as exc:
            raise v2.wanclip_error(exc, self.url) from None
        if attempt in self.unanswered:
            self._doubt(attempt, self.unanswered.pop(attempt))
        return self._known(attempt, job.id)

    def _doubt(self, attempt: str, before: list[tuple[str, str]]) -> None:
        """A same-key POST answered 201 after an earlier one of ``attempt`` got no answer. That proves
        the first made no job only where the surface still holds its keys: comfy-api-proxy restarted
        without --state-dir forgets them (and its jobs' labels): then the person is told."""
        if self._remembers(before):
            return
        self._tell("warning", f"its attempt {attempt} on {self.url} got no answer and the surface cannot show "
                              "whether that POST made a job (comfy-api-proxy restarted without --state-dir forgets "
                              "them): it was posted again, so the shot may have rendered twice (the first attempt "
                              "could not be confirmed)", attempt=attempt)

    def _remembers(self, before: list[tuple[str, str]]) -> bool:
        """The surface kept its Idempotency-Keys: it is not comfy-api-proxy (Comfy Cloud and deployments
        keep them 24 h), or it still labels the job of ours confirmed ``before`` the unanswered POST as
        we posted it (a proxy that lost its state answers our jobs through ComfyUI, without labels)."""
        if self.proxy is None:
            try:
                health = self.client.call(v2.health_request())
                self.proxy = bool(isinstance(health, dict) and health.get("upstream"))
            except v2.V2Error:
                return False
        if not self.proxy:
            return True
        if not self.lists:
            return False
        for other, job_id in before:
            try:
                return v2.parse_job(self.client.call(v2.job_request(job_id))).attempt == other
            except v2.V2Error:
                return False
        return False

    def _post_labelled(self, graph: dict, attempt: str) -> object:
        """The POST, with the attempt as label where the surface takes labels; a surface that refuses
        them (Comfy Cloud) is asked again without, and is not asked for labels again."""
        try:
            return self._post_when_let(v2.submit_request(graph, attempt, self._label(attempt)))
        except v2.V2Refused as exc:
            if not (self.lists and exc.status in (400, 422) and "metadata" in exc.message.lower()):
                raise
            self.lists = False
            return self._post_when_let(v2.submit_request(graph, attempt))

    def _post_when_let(self, req: v2.Request) -> object:
        """``req``, posted again after each 429's ``Retry-After`` (at most ``BUSY_WAIT`` s in all, or
        until the backend closes); the surface's concurrency drops to what it holds now."""
        waited = 0.0
        while True:
            try:
                return self.client.call(req)
            except v2.V2Refused as exc:
                if exc.status != 429 or waited >= BUSY_WAIT:
                    raise
                delay = min(exc.retry_after if exc.retry_after is not None else 5.0, BUSY_WAIT - waited)
                with self.lock:
                    self.concurrency = max(1, min(self.concurrency, len(self.jobs) - len(self.ended)))
                self._tell("warning", f"{self.url} is busy ({exc.code}: {exc.message}); the shot is posted again "
                                      f"in {delay:.0f} s")
                if self.closing.wait(delay):
                    raise
                waited += delay

    def _label(self, attempt: str) -> str | None:
        return v2.label_for(attempt) if self.lists else None

    def _known(self, attempt: str, job_id: str) -> str:
        with self.lock:
            self.jobs[attempt] = job_id
        return job_id

    def find(self, attempt: str) -> str | None:
        """The job of ``attempt`` by its label in the surface's list (None: not there, or no list)."""
        if not self.lists:
            return None
        try:
            listed = self.client.call(v2.list_request())
        except v2.V2Refused as exc:
            if exc.status in (404, 405, 501):  # no list here (Comfy Cloud: 501): never asked again
                self.lists = False
                return None
            raise v2.wanclip_error(exc, self.url) from None
        except v2.V2Error as exc:
            raise v2.wanclip_error(exc, self.url) from None
        for job in v2.parse_jobs(listed):
            if job.attempt == attempt:
                return job.id
        return None

    def job(self, attempt: str) -> v2.Job | None:
        """The attempt's job now (None: the surface does not know it)."""
        job_id = self.jobs.get(attempt)
        if job_id is None:
            job_id = self.find(attempt)
            if job_id is None:
                return None
            self._known(attempt, job_id)
            if self.sink is not None:
                self.sink.put((self.url, jobs.JobKnown(attempt, job_id)))
        try:
            return self.read_job(job_id)
        except v2.V2Refused as exc:
            if exc.status == 404:
                return None
            raise v2.wanclip_error(exc, self.url) from None
        except v2.V2Error as exc:
            raise v2.wanclip_error(exc, self.url) from None

    def read_job(self, job_id: str) -> v2.Job:
        """``GET /jobs/{id}``; an "expired" job without outputs is asked once more. comfy-api-proxy
        (0.1.6) reads ComfyUI's ``/history``, then its ``/queue``: a job that ends between the two
        reads is "expired" for that one answer, and taken at its word the shot was posted again and
        rendered twice (seen on a loaded machine). A job really gone is still gone the second time."""
        job = v2.parse_job(self.client.call(v2.job_request(job_id)))
        if job.status == "expired" and not job.outputs:
            job = v2.parse_job(self.client.call(v2.job_request(job_id)))
        return job

    def states(self, attempts: list[str]) -> dict[str, State]:
        """Where each attempt's job is; a job that finished, then expired with the ComfyUI behind the
        surface restarted, is done with the output refs the ledger recorded (their URLs still work)."""
        out: dict[str, State] = {}
        for attempt in attempts:
            job = self.job(attempt)
            if job is not None and job.status == "expired" and not job.outputs and self.refs.get(attempt):
                out[attempt] = "done", jobs.entry_of(v2.Job(job.id, "succeeded", tuple(
                    v2.Output(str(r.get("id")), str(r.get("name") or ""), str(r.get("url") or ""),
                              str(r.get("content_type") or ""), str(r.get("node") or "")) for r in self.refs[attempt])))
            else:
                out[attempt] = jobs.state_of(job)
            shot = self.unconfirmed.pop(attempt, None)
            if job is None and shot is not None:
                self._tell("warning", f"shot {shot}: the last run's attempt ({attempt}) on {self.url} was never "
                                      "confirmed and the surface does not know it: it is posted again; if the surface "
                                      "forgot it (comfy-api-proxy restarted without --state-dir), the shot may have "
                                      "rendered twice")
        return out

    def history(self, attempt: str, wait: float) -> dict:
        job = self.job(attempt)
        if job is None or not job.finished:
            raise ServerError(f"the job of attempt {attempt} on {self.url} has not finished", server=self.url,
                              transient=True)
        return jobs.entry_of(job)

    def download(self, outputs: dict, wanted: Wanted) -> Clip:
        videos = [o for o in jobs.outputs_of(outputs) if _is_video(o)]
        if not videos:
            raise ClipError("the job finished but produced no video output",
                            "does the workflow end in VHS_VideoCombine (video/h264-mp4) or SaveVideo?")
        video = videos[-1]
        suffix = Path(str(video.get("name") or "")).suffix.lower()
        dest = wanted.stem.with_suffix(suffix if suffix in v2.VIDEO_SUFFIXES else ".mp4")
        limit = size_limit(wanted.frames, wanted.width, wanted.height)
        try:
            try:
                self.client.download(str(video["url"]), dest, limit)
            except v2.V2Refused as exc:
                fresh = self._fresh_url(video) if exc.status in (403, 404, 410) else None
                if fresh is None:
                    raise
                self.client.download(fresh, dest, limit)
        except v2.V2Error as exc:
            raise v2.wanclip_error(exc, self.url) from None
        return verify_clip(dest, str(video.get("name")), wanted.frames, wanted.width, wanted.height, wanted.fps)

    def _fresh_url(self, video: dict) -> str | None:
        """The output's URL as its job gives it now, where the one we hold is refused (comfy-api-proxy
        restarted without --state-dir signs its URLs anew; a signed URL expires); None: no other."""
        job_id = video.get("job")
        if not isinstance(job_id, str):
            return None
        job = v2.parse_job(self.client.call(v2.job_request(job_id)))
        for output in job.outputs:
            if (output.name, output.node) == (video.get("name"), video.get("node")) and output.url != video.get("url"):
                return output.url
        return None

    def cancel(self, attempt: str, running: bool) -> None:
        job_id = self.jobs.get(attempt)
        if job_id is not None:
            self._call(v2.cancel_request(job_id))  # a request: the look-ups confirm it ended

    def close(self) -> None:
        self.closing.set()
        self.client.close()

    def _tell(self, kind: str, message: str, attempt: str | None = None) -> None:
        """A note for the person; with ``attempt``, the render names its shot (``shot X: message``)."""
        if self.sink is not None:
            data = {"server": self.url, "message": message, **({"attempt": attempt} if attempt else {})}
            self.sink.put((self.url, Note(kind, data)))


def _is_video(ref: dict) -> bool:
    return v2.Output(str(ref.get("id")), str(ref.get("name") or ""), str(ref.get("url") or ""),
                     str(ref.get("content_type") or "")).is_video


def _abort(response) -> None:
    """End a reader's iteration over an open event stream now: its socket is shut down. (Closing the
    response would wait for the reader's blocked read: until the surface's next heartbeat, 15 s on
    comfy-api-proxy, which every Ctrl-C and SIGTERM of a render with a running job waited out.) The
    reader closes the response itself."""
    sock = getattr(getattr(getattr(response, "raw", None), "connection", None), "sock", None)
    try:
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
        else:
            response.close()
    except Exception:  # noqa: BLE001 - a stream already ending under its reader: nothing to keep
        pass


class Poller:
    """The backend's jobs polled on a thread: each change of status as the events it means (the
    source of truth). A running job's SSE stream adds its progress (current node, step x/y) where the
    surface gives one (at most ``STREAMS`` at once: the proxy allows 8 in all); nothing else."""

    STREAMS = 4

    def __init__(self, backend: V2Backend, sink: queue.Queue):
        self.backend, self.sink = backend, sink
        self.watch = jobs.Watch()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"v2 poll {backend.url}", daemon=True)
        self.streams: dict[str, object] = {}  # attempt -> its open event stream (a requests.Response)

    @property
    def connected(self) -> bool:
        return True

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        for response in list(self.streams.values()):
            _abort(response)
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join(timeout=5)

    def _follow(self, attempt: str, job_id: str) -> None:
        if attempt in self.streams or len(self.streams) >= self.STREAMS or self.stopped.is_set():
            return
        response = self.backend.client.stream(v2.events_request(job_id))
        if response is None:
            return
        self.streams[attempt] = response
        threading.Thread(target=self._read, args=(attempt, response), name=f"v2 events {attempt}",
                         daemon=True).start()

    def _read(self, attempt: str, response) -> None:
        node = None
        try:
            for event, data in v2.parse_sse(response.iter_lines(decode_unicode=True)):
                if self.stopped.is_set():
                    return
                if event == "progress":
                    found, node = jobs.progress_events(attempt, data, node)
                    for item in found:
                        self.sink.put((self.backend.url, item))
        except Exception:  # noqa: BLE001 - a broken stream costs progress lines only; polling goes on
            pass
        finally:
            self.streams.pop(attempt, None)
            response.close()

    def _run(self) -> None:
        while not self.stopped.wait(self.backend.poll):
            with self.backend.lock:
                watched = [(a, j) for a, j in self.backend.jobs.items()
                           if self.watch.last.get(a) not in (*jobs.ENDED, "expired")]
            for attempt, job_id in watched:
                if self.stopped.is_set():
                    return
                try:
                    job = self.backend.read_job(job_id)
                except v2.V2Refused as exc:
                    if exc.status == 404:  # forgotten: the look-ups say "missing"; not asked again
                        self.watch.last[attempt] = "expired"
                    continue
                except v2.V2Error:
                    continue  # the coordinator's look-ups judge the surface's health
                for event in self.watch.seen(attempt, job):
                    self.sink.put((self.backend.url, event))
                if job.status == "running":
                    self._follow(attempt, job_id)
                if job.status in jobs.ENDED:
                    with self.backend.lock:
                        self.backend.ended.add(attempt)
