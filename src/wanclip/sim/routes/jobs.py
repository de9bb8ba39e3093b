"""``/api/jobs`` (0.9+) and its cancel forms (0.38): the jobs view of the same queue and history."""

from __future__ import annotations

from aiohttp import web

from wanclip.sim import jobs
from wanclip.sim.engine import Engine
from wanclip.sim.routes.common import BadJson, json_body


class JobRoutes:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.profile = engine.profile

    def routes(self) -> list[web.RouteDef]:
        """Registered once, under /api only, as the real server does."""
        if not self.profile.jobs_api:
            return []
        routes = []
        if self.profile.jobs_cancel:
            routes += [web.post("/api/jobs/cancel", self.cancel_jobs), web.post("/api/jobs/{job_id}/cancel", self.cancel_job)]
        return routes + [web.get("/api/jobs", self.get_jobs), web.get("/api/jobs/{job_id}", self.get_job)]

    async def get_jobs(self, request: web.Request):
        try:
            query = jobs.parse_query(self.profile, request.query)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        found, total = self.engine.jobs(**query)
        offset, limit = query["offset"], query["limit"]
        pagination = {"offset": offset, "limit": limit, "total": total, "has_more": offset + len(found) < total}
        return web.json_response({"jobs": found, "pagination": pagination})

    async def get_job(self, request: web.Request):
        job = self.engine.job(request.match_info["job_id"])
        if job is None:
            return web.json_response({"error": "Job not found"}, status=404)
        return web.json_response(job)

    async def cancel_job(self, request: web.Request):
        """0.38: idempotent; `cancelled` says whether a pending or running job was actually stopped."""
        kind = self.engine.cancel(request.match_info["job_id"])
        return web.json_response({"cancelled": kind in (jobs.CANCEL_RUNNING, jobs.CANCEL_PENDING)})

    async def cancel_jobs(self, request: web.Request):
        """0.38's batch form. [inferred] The answer lists the ids that were actually cancelled."""
        try:
            body = await json_body(request)
        except BadJson:
            return web.json_response({"error": "Request body must be JSON"}, status=400)
        ids = body.get("job_ids") if isinstance(body, dict) else None
        if self.profile.wording_033:  # 0.33.0's answers (its http.jsonl)
            if not isinstance(ids, list):
                return web.json_response({"error": "job_ids must be a list"}, status=400)
            invalid = [i for i in ids if not _valid(i)]
            if invalid:
                return web.json_response({"error": "job_ids contains invalid id(s)", "invalid_ids": invalid}, status=400)
        try:
            if not isinstance(ids, list) or not ids:
                raise ValueError("job_ids must be a non-empty list")
            for job_id in ids:
                jobs.validate_job_id(job_id)
        except ValueError as exc:
            return web.json_response({"error": f"Invalid job_ids: {exc}"}, status=400)
        done = [i for i in dict.fromkeys(ids) if self.engine.cancel(i) in (jobs.CANCEL_RUNNING, jobs.CANCEL_PENDING)]
        return web.json_response({"cancelled": done})


def _valid(job_id) -> bool:
    try:
        jobs.validate_job_id(job_id)
    except (ValueError, TypeError, AttributeError):
        return False
    return True
