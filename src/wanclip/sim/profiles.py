"""Which ComfyUI the simulator speaks: one profile per version, picked per server.

- 0.3.64: the recordings in comfyui-samples/ (message for message).
- 0.9:    the ComfyUI 0.9.2 recordings in comfyui-samples-0.9.2/ (see their DIFF.md): throttled
          `progress`, read-only `/api/jobs`, `extra_data.create_time`, a re-posted id runs again.
- 0.38:   ComfyUI 0.38.1 as comfyui-drift.md read it in the code. No recording exists: every
          behaviour here that 0.9 lacks is implemented from those notes (claims marked
          "inferred" there are implemented in their most plausible reading, and said so where
          the code does it).
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
    jobs_counts: bool = False  # previewable_outputs_count, has_errors, execution_error_count, ...
    static_root: bool = False  # the frontend's static route: unknown GET 404, other methods 405
    unique_ids: bool = False  # 409 for a known prompt_id, 400 for a non-canonical one
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

P038 = Profile(
    key="0.38", version="0.38.1", object_info="object_info_0.38.json", frontend_version="1.41.7",
    templates_version="0.9.6", os_name="linux", throttle_progress=True, create_time=True, jobs_api=True,
    jobs_cancel=True, jobs_counts=True, static_root=True, unique_ids=True, credentials=True,
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

PROFILES = {p.key: p for p in (P0364, P09, P038)}
ALIASES = {"0.9.2": "0.9", "0.38.1": "0.38"}
DEFAULT = "0.3.64"


def get_profile(version: str | Profile | None) -> Profile:
    """The profile for `0.3.64`, `0.9` (or `0.9.2`), `0.38` (or `0.38.1`); ValueError otherwise."""
    if isinstance(version, Profile):
        return version
    key = ALIASES.get(str(version or DEFAULT), str(version or DEFAULT))
    if key not in PROFILES:
        raise ValueError(f"unknown ComfyUI version {version!r}: the simulator speaks {', '.join(PROFILES)}")
    return PROFILES[key]
