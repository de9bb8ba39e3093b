"""``wanclip doctor -s URL`` for a Comfy API v2 surface: what it is, whether the key works, the
concurrency a render uses there, and which guarantee against rendering a shot twice it gives.

The key is checked with a GET of a job id nobody made: 404 means the key was accepted. Whether the
surface can find a job again after a lost answer is read from its job list (``GET /api/v2/jobs``:
Comfy Cloud answers 501). v2 has no ``/object_info``: node classes and model files are checked by
the always-refused probe (``checks.v2_probe``).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from wanclip.checks import v2_probe
from wanclip.checks.doctor import DoctorReport, distinct_graphs
from wanclip.checks.graph import Check
from wanclip.comfy import v2
from wanclip.errors import WanclipError
from wanclip.planning.workflow import shipped_graph

PROXY_GUARANTEE = ("a shot is never rendered twice while the proxy keeps its jobs and keys: start it with "
                   "--state-dir (wanclip cannot see whether it does); without it a restarted proxy forgets both, "
                   "and a shot in flight may render twice")
LISTED_GUARANTEE = "a job whose answer was lost is found again by its label: a shot is never rendered twice"
UNLISTED_GUARANTEE = ("a job id wanclip recorded re-attaches, but a job whose answer was lost cannot be found "
                      "again (no job list): wanclip posts the shot anew and says it may have rendered twice")


def run_v2_doctor(url: str, headers: Mapping[str, str] | None, surface: dict, graphs: list[dict] | None = None,
                  concurrency: int | None = None) -> DoctorReport:
    """``graphs`` (a film's; None: the shipped text-to-video graph) are probed for missing node
    classes and model files (``checks.v2_probe``); nothing is rendered."""
    client = v2.V2Client(url, headers=headers)
    report = DoctorReport(client.url)
    try:
        kind = surface.get("kind", "Comfy API v2")
        behind = f" in front of ComfyUI at {surface['upstream']}" if surface.get("upstream") else ""
        report.checks.append(Check("server", True, f"{kind} (Comfy API v2) answers at {client.url}{behind}"))
        key = _key_check(client)
        report.checks.append(key)
        if not key.ok:
            return report
        lists = _lists(client)
        guarantee = PROXY_GUARANTEE if kind == "comfy-api-proxy" else LISTED_GUARANTEE if lists else UNLISTED_GUARANTEE
        report.checks.append(Check("no shot twice", True, guarantee))
        n = concurrency or v2.DEFAULT_CONCURRENCY
        report.checks.append(Check("concurrency", True, f"a render keeps at most {n} jobs in flight here, fewer "
                                   "while it answers queue_full / rate_limited"))
        report.checks += _probe_checks(client, graphs or [shipped_graph()])
    finally:
        client.close()
    return report


def _probe_checks(client: v2.V2Client, graphs: list[dict]) -> list[Check]:
    try:
        failed = [c for g in distinct_graphs(graphs) for c in v2_probe.probe(client, g)]
    except WanclipError as exc:
        return [Check("node classes and models", False, exc.message, exc.hint)]
    unique = list({(c.name, c.detail): c for c in failed}.values())
    return unique or [Check("node classes and models", True, "the surface accepts every node and model file of the "
                            "graph (a probe it refused before any work)")]


def _key_check(client: v2.V2Client) -> Check:
    try:
        client.call(v2.job_request(str(uuid.uuid4())))
    except v2.V2Refused as exc:
        if exc.status == 404:
            said = f"accepted (${v2.KEY_VARIABLE})" if client.has_key else "none needed (no key was sent)"
            return Check("API key", True, said)
        if exc.status in (401, 403):
            given = f"${v2.KEY_VARIABLE} was refused" if client.has_key else f"the surface wants a key; " \
                f"${v2.KEY_VARIABLE} is not set"
            return Check("API key", False, f"{given} (HTTP {exc.status} {exc.code})", v2.key_hint())
        return Check("API key", False, f"a job look-up answered HTTP {exc.status} {exc.code}: {exc.message}",
                     "check the address: it should be the surface's base URL")
    except v2.V2Error as exc:
        return Check("API key", False, f"a job look-up got no usable answer: {exc.message}",
                     "is the surface running? check the address")
    return Check("API key", False, "a job nobody made was found", "check the address")


def _lists(client: v2.V2Client) -> bool:
    try:
        client.call(v2.list_request(1))
    except v2.V2Error:
        return False
    return True
