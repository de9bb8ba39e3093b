"""Which ComfyUI the simulator speaks: one profile per version, picked per server.

- 0.3.64: the recordings in comfyui-samples/ (message for message).
- 0.9:    the ComfyUI 0.9.2 recordings in comfyui-samples-0.9.2/ (see their DIFF.md): throttled
          `progress`, read-only `/api/jobs`, `extra_data.create_time`, a re-posted id runs again.
- 0.33:   the ComfyUI 0.33.0 recordings in comfyui-samples-0.33.0/ (see their DIFF.md): the jobs
          API with its cancel routes, canonical-UUID prompt ids, node replacements, DynamicCombo
          SaveVideo; a re-posted id runs again (no 409), no websocket credentials, no
          activity/seconds in progress_state, jobs read history first. The cache is the classic
          one: the recordings show a node of two prompts back run again (DIFF.md's "RAM-pressure
          confirmed" rests on cases the classic cache explains too).
- 0.38:   ComfyUI 0.38.1 as comfyui-drift.md read it in the code: built from source, UNVERIFIED.
          No recording exists; every behaviour here that 0.33 lacks (409, credentials, activity,
          has_errors & co., the RAM-pressure cache) is implemented from those notes, and each of
          them was refuted for 0.33.0: they may have come later or never.

Verified profiles (checked message for message against their recordings) are listed in VERIFIED.
"""

from __future__ import annotations

from dataclasses import dataclass, field

CACHE_CLASSIC = "classic"  # keeps only the nodes of the prompt just run
CACHE_RAM_PRESSURE = "ram_pressure"  # keeps everything until memory runs short (never, here)


@dataclass(frozen=True)
class Profile:
    key: str  # what --comfy-version takes
    version: str  # what /system_stats says
    object_info: str  # file in data/sim/
    frontend_version: str
    templates_version: str | None
    os_name: str  # system_stats.system.os ("posix" before 0.9, sys.platform after)
    throttle_progress: bool = False  # comfy/utils.py PROGRESS_THROTTLE_*: ≥100 ms and ≥0.5 % apart
    create_time: bool = False  # extra_data.create_time (ms) set at POST
    jobs_api: bool = False  # GET /api/jobs, /api/jobs/{id}
    jobs_cancel: bool = False  # POST /api/jobs/{id}/cancel, POST /api/jobs/cancel
    jobs_counts: bool = False  # has_errors, execution_error_count, completion_status, execution_errors
    jobs_previewable: bool = False  # previewable_outputs_count
    wording_033: bool = False  # 400s for bad job/prompt ids as 0.33.0 words them (recorded; else as read for 0.38)
    jobs_live_first: bool = False  # GET /api/jobs/{id} reads running, pending, then history (else history first)
    static_root: bool = False  # the frontend's static route: unknown GET 404, other methods 405
    unique_ids: bool = False  # 409 for a known prompt_id
    canonical_ids: bool = False  # 400 invalid_prompt_id for a non-canonical one; missing_node_type for no class_type
    credentials: bool = False  # credential_key in the first status, credential_auth on reconnect
    cache: str = CACHE_CLASSIC
    node_activity: bool = False  # progress_state nodes carry `activity` and `seconds`
    node_replacements: bool = False  # GET /node_replacements, applied before validation
    bad_json_is_500: bool = False  # what the real server does (0.3.64's sim answers 400 since day one)
    int_upload_size: bool = False  # max_upload_size as an int in /features (a float in 0.3.64)
    features: dict = field(default_factory=dict)  # /features and the ws feature_flags reply, less max_upload_size
    system_extra: dict = field(default_factory=dict)  # keys added to system_stats.system


P0364 = Profile(
    key="0.3.64", version="0.3.64", object_info="object_info.json", frontend_version="1.27.10",
    templates_version="0.1.95", os_name="posix", features={"supports_preview_metadata": True},
)

P09 = Profile(
    key="0.9", version="0.9.2", object_info="object_info_0.9.json", frontend_version="1.36.14",
    templates_version="0.8.11", os_name="linux", throttle_progress=True, create_time=True, jobs_api=True,
    static_root=True, bad_json_is_500=True, int_upload_size=True,
    features={"supports_preview_metadata": True, "extension": {"manager": {"supports_v4": True}}},
)

P033 = Profile(
    key="0.33", version="0.33.0", object_info="object_info_0.33.json", frontend_version="1.49.6",
    templates_version="0.11.44", os_name="linux", throttle_progress=True, create_time=True, jobs_api=True,
    jobs_cancel=True, jobs_previewable=True, wording_033=True, static_root=True, canonical_ids=True,
    node_replacements=True, bad_json_is_500=True, int_upload_size=True,
    features={"supports_preview_metadata": True, "supports_model_type_tags": True,
              "extension": {"manager": {"supports_v4": True}}, "node_replacements": True, "assets": False},
    system_extra={"comfy_package_versions": [
        {"name": "comfyui-frontend-package", "installed": "1.49.6", "required": "1.49.6"},
        {"name": "comfyui-workflow-templates", "installed": "0.11.44", "required": "0.11.44"},
        {"name": "comfyui-embedded-docs", "installed": "0.5.10", "required": "0.5.10"},
        {"name": "comfy-kitchen", "installed": "0.2.31", "required": "0.2.31"},
        {"name": "comfy-aimdo", "installed": "0.4.13", "required": "0.4.13"}],
        "deploy_environment": "local-git"},
)

P038 = Profile(
    key="0.38", version="0.38.1", object_info="object_info_0.38.json", frontend_version="1.41.7",
    templates_version="0.9.6", os_name="linux", throttle_progress=True, create_time=True, jobs_api=True,
    jobs_cancel=True, jobs_counts=True, jobs_previewable=True, jobs_live_first=True, static_root=True,
    unique_ids=True, canonical_ids=True, credentials=True,
    cache=CACHE_RAM_PRESSURE, node_activity=True, node_replacements=True, bad_json_is_500=True,
    int_upload_size=True,
    # comfy_api/feature_flags.py as drift §1.4 lists it; the values of the new flags are inferred.
    features={
        "supports_preview_metadata": True,
        "supports_model_type_tags": True,
        "comfy_api_credentials": {"version": 1, "endpoint": "/api/credentials",
                                  "websocket_auth_message": "credential_auth"},
        "extension": {"manager": {"supports_v4": True}},
        "node_replacements": True,
        "assets": False,
    },
    system_extra={"comfy_package_versions": {"comfyui-frontend-package": "1.41.7",
                                             "comfyui-workflow-templates": "0.9.6",
                                             "comfyui-embedded-docs": "0.4.1"},
                  "deploy_environment": "local"},
)

PROFILES = {p.key: p for p in (P0364, P09, P033, P038)}
ALIASES = {"0.9.2": "0.9", "0.33.0": "0.33", "0.38.1": "0.38"}
DEFAULT = "0.3.64"
# checked message for message against a real server's recordings (tests/test_sim_conformance*.py)
VERIFIED = ("0.3.64", "0.9", "0.33")
NEWEST_VERIFIED = "0.33"  # `wanclip sim`'s default


def get_profile(version: str | Profile | None) -> Profile:
    """The profile for `0.3.64`, `0.9` (or `0.9.2`), `0.33` (or `0.33.0`), `0.38` (or `0.38.1`);
    ValueError otherwise."""
    if isinstance(version, Profile):
        return version
    key = ALIASES.get(str(version or DEFAULT), str(version or DEFAULT))
    if key not in PROFILES:
        raise ValueError(f"unknown ComfyUI version {version!r}: the simulator speaks {', '.join(PROFILES)}")
    return PROFILES[key]
