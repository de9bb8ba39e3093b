"""The jobs API (``/api/jobs``, ComfyUI 0.9+) in wanclip's words, with the old routes as fallback.

``job_state`` answers what ``comfy.follow.prompt_states`` answers from ``/queue`` + ``/history``,
in one read where the server has ``GET /api/jobs/{id}``. ``cancel`` stops wanclip's own prompts
through ``POST /api/jobs/{id}/cancel`` (atomic: a running job is interrupted only if it is still
the one running) where the server has it, else through ``/queue`` delete + ``/interrupt``.

Status mapping (the recorded 0.9.2 answers, ``*_jobs.json``): ``pending`` -> ``pending``,
``in_progress`` -> ``running``, ``completed`` / ``failed`` / ``cancelled`` -> ``done`` with a history
entry, 404 "Job not found" -> ``missing``. The entry is rebuilt from the job's ``outputs`` and
``execution_status`` (equal to ``/history``'s ``outputs`` and ``status`` in every 0.9.2
recording); a job without them is read from ``/history/{id}``.

Caveat read in the 0.9.2 recordings (DIFF.md row 9): while a *re-posted* id of a finished prompt
runs again, ``/api/jobs/{id}`` still answers the old history entry. wanclip never re-posts a
finished id (a lost answer is looked up first), so ``done`` stays true for it.
"""

from __future__ import annotations

from urllib.parse import quote

from wanclip.comfy.capabilities import Capabilities, probe, route
from wanclip.comfy.client import ComfyClient
from wanclip.errors import ServerError

STATES = {"pending": "pending", "in_progress": "running", "completed": "done", "failed": "done",
          "cancelled": "done"}


def job_state(client: ComfyClient, prompt_id: str, caps: Capabilities | None = None) -> tuple[str, dict | None]:
    """``(state, history_entry_or_None)``: ``running``, ``pending``, ``done`` (with the entry) or ``missing``.

    ``caps`` without the jobs API (or a server that turns out not to have it) falls back to
    ``/queue`` + ``/history``, so this works on every version."""
    if caps is not None and not caps.jobs_get:
        return _legacy_state(client, prompt_id, caps)
    path = f"/api/jobs/{quote(prompt_id, safe='')}"
    status, body = probe(client, "GET", path)
    if status == 404 and isinstance(body, dict) and "error" in body:
        return "missing", None
    if status in (404, 405) or (status == 200 and not isinstance(body, dict)):
        return _legacy_state(client, prompt_id, caps)  # no jobs API here after all
    if status >= 400:
        raise ServerError(f"ComfyUI at {client.url} answered GET {path} with HTTP {status}",
                          "look at the ComfyUI console (or the proxy in front of it)", server=client.url,
                          transient=status >= 500)
    state = STATES.get(str(body.get("status")))
    if state is None:
        raise ServerError(f"ComfyUI at {client.url} gave prompt {prompt_id} the job status "
                          f"{body.get('status')!r}, which wanclip does not know",
                          "update wanclip, or look at the prompt in ComfyUI", server=client.url)
    if state != "done":
        return state, None
    if isinstance(body.get("outputs"), dict) and isinstance(body.get("execution_status"), dict):
        return "done", history_entry(body)
    entry = client._json("GET", _at(caps, f"/history/{prompt_id}"))
    entry = entry.get(prompt_id) if isinstance(entry, dict) else None
    return ("done", entry) if entry else ("missing", None)


def history_entry(job: dict) -> dict:
    """A ``/history/{id}`` entry rebuilt from a finished job (the parts wanclip reads)."""
    workflow = job.get("workflow") or {}
    return {"prompt": [job.get("priority"), job.get("id"), workflow.get("prompt") or {},
                       workflow.get("extra_data") or {}, []],
            "outputs": job.get("outputs") or {}, "status": job.get("execution_status") or {}, "meta": {}}


def _at(caps: Capabilities | None, path: str) -> str:
    return route(caps, path) if caps else path


def _queued(client: ComfyClient, caps: Capabilities | None) -> tuple[set[str], set[str]]:
    """(running ids, pending ids) from ``/queue``."""
    queue = client._json("GET", _at(caps, "/queue"))
    return tuple({item[1] for item in queue.get(key, []) if isinstance(item, list) and len(item) > 1}
                 for key in ("queue_running", "queue_pending"))


def _legacy_state(client: ComfyClient, prompt_id: str, caps: Capabilities | None) -> tuple[str, dict | None]:
    running, pending = _queued(client, caps)
    if prompt_id in running:
        return "running", None
    if prompt_id in pending:
        return "pending", None
    entry = client._json("GET", _at(caps, f"/history/{prompt_id}")).get(prompt_id)
    return ("done", entry) if entry else ("missing", None)


def cancel(client: ComfyClient, prompt_ids: list[str] | set[str], caps: Capabilities | None = None) -> set[str]:
    """Stop wanclip's own ``prompt_ids`` on this server; returns the ids that were pending or running.

    With the cancel routes (``caps.jobs_cancel``, or ``caps`` not given): ``POST
    /api/jobs/{id}/cancel`` per id, which is idempotent and answers ``{"cancelled": bool}``; the
    server dequeues a pending job and interrupts a running one only if it still is the one running.
    Without them: one ``/queue`` read, ``POST /queue {"delete": [...]}`` for our pending ones and
    ``POST /interrupt {"prompt_id": id}`` for our running one (never someone else's prompt)."""
    ids = list(dict.fromkeys(prompt_ids))
    if not ids:
        return set()
    if caps is not None and not caps.jobs_cancel:
        return _legacy_cancel(client, ids, caps)
    stopped = set()
    for pid in ids:
        path = f"/api/jobs/{quote(pid, safe='')}/cancel"
        status, body = probe(client, "POST", path)
        if status in (404, 405) and caps is None:
            return stopped | _legacy_cancel(client, [i for i in ids if i not in stopped], None)
        if status >= 400:
            raise ServerError(f"ComfyUI at {client.url} answered POST {path} with HTTP {status}",
                              "look at the ComfyUI console; the prompt may still be running there",
                              server=client.url, transient=status >= 500)
        if isinstance(body, dict) and body.get("cancelled") is True:
            stopped.add(pid)
    return stopped


def _legacy_cancel(client: ComfyClient, ids: list[str], caps: Capabilities | None) -> set[str]:
    running, pending = _queued(client, caps)
    ours_pending = [i for i in ids if i in pending]
    if ours_pending:  # first, so the server cannot start one of them while we interrupt
        client._post(_at(caps, "/queue"), {"delete": ours_pending})
    ours_running = [i for i in ids if i in running]
    for pid in ours_running:
        client._post(_at(caps, "/interrupt"), {"prompt_id": pid})
    return set(ours_pending) | set(ours_running)
