"""What a ``POST /prompt`` body means before it is queued: the prompt, its id, the node
replacements 0.38 applies, and the extra data kept with it; the refusals in the real shapes.

Pure: the engine numbers, validates against its catalog and queues what comes out.
"""

from __future__ import annotations

import time
import uuid

from wanclip.sim import jobs
from wanclip.sim.profiles import Profile

SECRETS = ("auth_token_comfy_org", "api_key_comfy_org")  # never kept in the queue or history


class Refused(Exception):
    """The answer to a body that is not queued: an HTTP status and its JSON."""

    def __init__(self, status: int, body: dict):
        super().__init__(status)
        self.status, self.body = status, body


def _bad(type_: str, message: str, details: str) -> Refused:
    return Refused(400, {"error": {"type": type_, "message": message, "details": details, "extra_info": {}},
                         "node_errors": {}})


def prompt_of(body: dict) -> dict:
    if "prompt" not in body:
        raise _bad("no_prompt", "No prompt provided", "No prompt provided")
    prompt = body["prompt"]
    if not isinstance(prompt, dict):
        raise _bad("invalid_prompt", "Prompt must be a JSON object of node id -> node",
                   f"got {type(prompt).__name__}")
    return prompt


def prompt_id_of(profile: Profile, body: dict) -> str:
    if not profile.canonical_ids:
        return str(body.get("prompt_id", uuid.uuid4()))  # 0.3.64/0.9: any string, even "None"
    # drift §1.1: absent or null -> minted; anything else must be a canonical UUID.
    client_id = body.get("prompt_id")
    if client_id is None:
        return str(uuid.uuid4())
    try:
        return jobs.validate_job_id(client_id)
    except ValueError as exc:
        details = ("prompt_id must be a UUID string in canonical lowercase hyphenated form; omit it to let the "
                   "server generate one") if profile.wording_033 else str(exc)  # 0.33.0's, recorded
        raise _bad("invalid_prompt_id", "prompt_id must be a valid UUID", details) from exc


def apply_replacements(prompt: dict, rules: dict[str, dict], has_class) -> None:
    """[inferred] node_replace_manager.apply_replacements: an unknown class with a registered
    replacement gets the new class_type and its inputs renamed by input_mapping."""
    for node in prompt.values():
        if not isinstance(node, dict):
            continue
        rule = rules.get(node.get("class_type"))
        if rule is None or has_class(node.get("class_type")):
            continue
        node["class_type"] = rule["new_node_id"]
        mapping = rule["input_mapping"]
        node["inputs"] = {mapping.get(k, k): v for k, v in node.get("inputs", {}).items()}


def extra_data_of(profile: Profile, body: dict) -> dict:
    extra = body.get("extra_data") if isinstance(body.get("extra_data"), dict) else {}
    if "client_id" in body:
        extra["client_id"] = body["client_id"]
    if profile.create_time:
        extra["create_time"] = int(time.time() * 1000)
    for secret in SECRETS:
        extra.pop(secret, None)
    return extra
