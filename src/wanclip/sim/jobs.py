"""The /api/jobs view of queue and history (ComfyUI 0.9+), written from the recorded shapes.

0.9 fields are checked against the 0.9.2 recordings (`*_jobs.json`, interrupt_samples.json,
misc_endpoints.json). The 0.38 additions (cancel routes, `previewable_outputs_count`,
`completion_status`, `has_errors`, `execution_error_count`, `execution_errors`, the `ids` filter)
come from comfyui-drift.md §1.3 only.
"""

from __future__ import annotations

import uuid

PENDING, IN_PROGRESS, COMPLETED, FAILED, CANCELLED = "pending", "in_progress", "completed", "failed", "cancelled"
ALL = [PENDING, IN_PROGRESS, COMPLETED, FAILED, CANCELLED]
CANCEL_RUNNING, CANCEL_PENDING, CANCEL_TERMINAL, CANCEL_UNKNOWN = "running", "pending", "terminal", "unknown"
PREVIEWABLE = {"images", "video", "audio", "3d", "text"}


def validate_job_id(value) -> str:
    """0.38: ids must be canonical lowercase hyphenated UUIDs (comfy_execution/jobs.py)."""
    if not isinstance(value, str):
        raise ValueError(f"job id must be a string, got {type(value).__name__}")
    try:
        canonical = str(uuid.UUID(value))
    except ValueError as exc:
        raise ValueError("badly formed hexadecimal UUID string") from exc
    if canonical != value:
        raise ValueError("job id must be a UUID in canonical lowercase hyphenated form")
    return value


def _prune(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not None}


def _previewable(media_type: str, item: dict) -> bool:
    fmt = item.get("format", "")
    return media_type in PREVIEWABLE or (isinstance(fmt, str) and fmt.startswith(("video/", "audio/")))


def _outputs_summary(outputs: dict) -> tuple[int, int, dict | None]:
    """(outputs_count, previewable count, preview_output): an `output` item beats a temp one."""
    count, previewable, preview, fallback = 0, 0, None, None
    for node_id, node_outputs in outputs.items():
        if not isinstance(node_outputs, dict):
            continue
        for media_type, items in node_outputs.items():
            if media_type == "animated" or not isinstance(items, list):
                continue
            for item in items:
                if not isinstance(item, dict):
                    continue
                count += 1
                if not _previewable(media_type, item):
                    continue
                previewable += 1
                enriched = {**item, "nodeId": node_id}
                enriched.setdefault("mediaType", media_type)
                if item.get("type") == "output" and preview is None:
                    preview = enriched
                elif fallback is None:
                    fallback = enriched
    return count, previewable, preview or fallback


def queue_job(profile, item: tuple, status: str) -> dict:
    _, prompt_id, _, extra, _ = item[:5]
    job = {"id": prompt_id, "status": status, "priority": item[0], "create_time": extra.get("create_time"),
           "outputs_count": 0}
    if profile.jobs_previewable:
        job["previewable_outputs_count"] = 0
    job["workflow_id"] = (extra.get("extra_pnginfo") or {}).get("workflow", {}).get("id")
    return _prune(job)


def history_job(profile, prompt_id: str, entry: dict, full: bool = False) -> dict:
    priority, _, prompt, extra, _ = entry["prompt"][:5]
    status = entry.get("status") or {}
    start = end = error = None
    errors, interrupted = [], False
    for name, data in status.get("messages", []):
        if name == "execution_start":
            start = data.get("timestamp")
        elif name in ("execution_success", "execution_error", "execution_interrupted"):
            end = data.get("timestamp")
            if name == "execution_error":
                error = data
                errors.append(data)
            interrupted = interrupted or name == "execution_interrupted"
    if status.get("status_str") == "error":
        state = CANCELLED if interrupted else FAILED
    else:
        state = COMPLETED
    count, previewable, preview = _outputs_summary(entry.get("outputs", {}))
    job = {"id": prompt_id, "status": state, "priority": priority, "create_time": extra.get("create_time"),
           "execution_start_time": start, "execution_end_time": end, "execution_error": error,
           "outputs_count": count}
    if profile.jobs_previewable:
        job["previewable_outputs_count"] = previewable
    if profile.jobs_counts:
        # [inferred] drift §1.3 names these fields, not their values: "success"/"error"/"cancelled".
        job.update(has_errors=bool(errors), execution_error_count=len(errors),
                   completion_status=status.get("completion_status") or
                   {COMPLETED: "success", FAILED: "error", CANCELLED: "cancelled"}[state])
    job.update(preview_output=preview, workflow_id=(extra.get("extra_pnginfo") or {}).get("workflow", {}).get("id"))
    job = _prune(job)
    if full:
        job["outputs"] = entry.get("outputs", {})
        job["execution_status"] = status
        if profile.jobs_counts:
            job["execution_errors"] = errors
        job["workflow"] = {"prompt": prompt, "extra_data": extra}
    return job


def get_job(profile, prompt_id: str, running: list, queued: list, history: dict) -> dict | None:
    """0.9 and 0.33 read history first, so a re-run of a finished id shows the old entry (DIFF.md
    row 9); 0.38 reads running, then pending, then history (drift §1.3; a re-run cannot happen there)."""
    def live() -> dict | None:
        for item in running:
            if item[1] == prompt_id:
                return queue_job(profile, item, IN_PROGRESS)
        for item in queued:
            if item[1] == prompt_id:
                return queue_job(profile, item, PENDING)
        return None

    if profile.jobs_live_first:
        found = live()
        if found is not None:
            return found
    if prompt_id in history:
        return history_job(profile, prompt_id, history[prompt_id], full=True)
    return live()


def parse_query(profile, query) -> dict:
    """GET /api/jobs parameters; ValueError with the real message for a bad one."""
    out: dict = {"status": None, "sort_by": "created_at", "sort_order": "desc", "limit": None, "offset": 0,
                 "workflow_id": query.get("workflow_id") or None, "ids": None}
    if query.get("status"):
        wanted = [s.strip() for s in query["status"].split(",") if s.strip()]
        bad = [s for s in wanted if s not in ALL]
        if bad:
            raise ValueError(f"Invalid status value(s): {', '.join(bad)}. Valid values: {', '.join(ALL)}")
        out["status"] = wanted
    sort_by = query.get("sort_by", "created_at")
    if sort_by not in ("created_at", "execution_duration"):
        raise ValueError("sort_by must be 'created_at' or 'execution_duration'")
    out["sort_by"] = sort_by
    sort_order = query.get("sort_order", "desc")
    if sort_order not in ("asc", "desc"):
        raise ValueError("sort_order must be 'asc' or 'desc'")  # inferred wording
    out["sort_order"] = sort_order
    if "limit" in query:
        try:
            out["limit"] = int(query["limit"])
        except ValueError:
            out["limit"] = 0
        if out["limit"] <= 0:
            raise ValueError("limit must be a positive integer")
    if "offset" in query:
        try:
            out["offset"] = int(query["offset"])
        except ValueError:
            out["offset"] = -1
        if out["offset"] < 0:
            raise ValueError("offset must be a non-negative integer")  # inferred wording
    if profile.jobs_counts and "ids" in query:  # 0.38's batch poll (inferred parameter name; 0.33 profile: unrecorded, left out)
        out["ids"] = [i for i in query["ids"].split(",") if i]
    return out


def get_all_jobs(profile, running: list, queued: list, history: dict, *, status=None, workflow_id=None, ids=None,
                 sort_by="created_at", sort_order="desc", limit=None, offset=0) -> tuple[list[dict], int]:
    wanted = set(status or ALL)
    found = []
    if IN_PROGRESS in wanted:
        found += [queue_job(profile, item, IN_PROGRESS) for item in running]
    if PENDING in wanted:
        found += [queue_job(profile, item, PENDING) for item in queued]
    for prompt_id, entry in history.items():
        job = history_job(profile, prompt_id, entry)
        if job["status"] in wanted:
            found.append(job)
    if workflow_id:
        found = [j for j in found if j.get("workflow_id") == workflow_id]
    if ids is not None:
        found = [j for j in found if j.get("id") in set(ids)]

    def key(job):
        if sort_by == "execution_duration":
            start, end = job.get("execution_start_time", 0), job.get("execution_end_time", 0)
            return end - start if start and end else 0
        return job.get("create_time", 0)

    found.sort(key=key, reverse=sort_order == "desc")
    total = len(found)
    found = found[offset:] if offset > 0 else found
    return (found[:limit] if limit is not None else found), total


def classify_for_cancel(prompt_id: str, running: list, queued: list, history: dict) -> str:
    if any(item[1] == prompt_id for item in running):
        return CANCEL_RUNNING
    if any(item[1] == prompt_id for item in queued):
        return CANCEL_PENDING
    return CANCEL_TERMINAL if prompt_id in history else CANCEL_UNKNOWN
