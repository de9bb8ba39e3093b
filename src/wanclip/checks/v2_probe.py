"""Preflight on a Comfy API v2 surface, which has no ``/object_info``: the always-refused probe.

The real graph is posted with one input that no ComfyUI accepts (a sampler's seed below its
minimum). ComfyUI validates the whole graph before any work and refuses it, naming every other
problem too: a missing node class (its message), a model file it does not list (per-node
``value_not_in_list`` with the files it has). Both the spec's ``{error: {code, message, details:
{node_errors}}}`` and ComfyUI's own shape are read (``comfy.v2.parse_error``). Nothing is rendered:
a surface that accepts the probe (it does not validate) has the job cancelled at once.
"""

from __future__ import annotations

import copy
import uuid

from wanclip.checks.graph import Check, model_check
from wanclip.comfy import v2
from wanclip.comfy.v2 import V2Refused
from wanclip.errors import PreflightError

SEED_INPUTS = ("noise_seed", "seed")
POISON = -1  # below every sampler's minimum seed (0)


def poisoned(graph: dict) -> tuple[dict, tuple[str, str]] | None:
    """``graph`` with one sampler seed made invalid, and (node id, input); None: no seed to poison."""
    for node_id, node in graph.items():
        inputs = node.get("inputs") if isinstance(node, dict) else None
        for name in SEED_INPUTS:
            if isinstance(inputs, dict) and isinstance(inputs.get(name), int) and not isinstance(inputs[name], bool):
                out = copy.deepcopy(graph)
                out[node_id]["inputs"][name] = POISON
                return out, (node_id, name)
    return None


def problems(refusal: V2Refused, poison: tuple[str, str], where: str) -> list[Check] | None:
    """What the refusal says the graph lacks, as failed checks ([]: only the poison was refused);
    None when it is no validation refusal (the surface could not be asked)."""
    node_errors = refusal.details.get("node_errors")
    if refusal.status not in (400, 422) or not isinstance(node_errors, dict):
        return None
    if not node_errors:  # refused as a whole: a missing class ("... does not exist", "... not found")
        return [Check("node classes", False, f"{where} refused the graph: {refusal.message}",
                      "install the node pack that provides it where the surface's ComfyUI runs")]
    checks: list[Check] = []
    for node_id, entry in node_errors.items():
        entry = entry if isinstance(entry, dict) else {}
        for error in entry.get("errors") or []:
            if not isinstance(error, dict):
                continue
            extra = error.get("extra_info") if isinstance(error.get("extra_info"), dict) else {}
            name = extra.get("input_name")
            if (str(node_id), name) == poison or _picture(entry, error, name):
                continue
            checks.append(_check(str(node_id), str(entry.get("class_type") or "?"), error, extra, where))
    return checks


def _picture(entry: dict, error: dict, name: object) -> bool:
    """A LoadImage's picture: uploaded at submit, so the planned graph's placeholder is no problem."""
    return entry.get("class_type") == "LoadImage" and (name == "image" or str(error.get("details", "")).startswith("image"))


def _check(node_id: str, class_type: str, error: dict, extra: dict, where: str) -> Check:
    config = extra.get("input_config")
    options = config[0] if isinstance(config, list) and config and isinstance(config[0], list) else None
    value = extra.get("received_value")
    if error.get("type") == "value_not_in_list" and isinstance(value, str) and options is not None:
        return model_check(value, [str(o) for o in options], None, f"{where}, node {node_id} {class_type}",
                           installable=False)
    return Check(f"node {node_id}", False, f"{class_type} (node {node_id}) on {where}: "
                 f"{error.get('message', '')}: {error.get('details', '')}", "fix the graph's value")


def probe(client: v2.V2Client, graph: dict) -> list[Check]:
    """Post ``graph`` poisoned; the failed checks of what the surface lacks for it (``PreflightError``
    when it cannot be asked). A lost answer (``v2.lost_outcome``) leaves it unchecked."""
    bad = poisoned(graph)
    if bad is None:
        return []
    try:
        job = v2.parse_job(client.call(v2.submit_request(bad[0], f"wanclip-probe-{uuid.uuid4()}")))
    except V2Refused as exc:
        if v2.lost_outcome(exc):
            return []
        found = problems(exc, bad[1], client.url)
        if found is None:
            error = v2.wanclip_error(exc, client.url)
            raise PreflightError(f"{error.message}; nothing was submitted", error.hint) from None
        return found
    except v2.V2Error as exc:
        error = v2.wanclip_error(exc, client.url)
        raise PreflightError(f"{error.message}; nothing was submitted", error.hint) from None
    try:  # it took a graph no ComfyUI validates: nothing can be checked there; stop that job
        client.call(v2.cancel_request(job.id))
    except v2.V2Error:
        pass
    return []
