"""A simulated ComfyUI (0.3.64, 0.9, 0.33: verified against recordings; 0.38: from source, unverified)
that speaks the real protocol (see `wanclip sim`).

Imports nothing from the rest of wanclip, so a client bug cannot be copied into the fake.
"""

from wanclip.sim.engine import Engine, SimConfig
from wanclip.sim.faults import Faults, parse_faults
from wanclip.sim.profiles import PROFILES, Profile, get_profile
from wanclip.sim.server import SimHandle, serve_in_thread

COMFY_VERSIONS = tuple(PROFILES)

__all__ = ["COMFY_VERSIONS", "PROFILES", "Engine", "Faults", "Profile", "SimConfig", "SimHandle", "get_profile",
           "parse_faults", "serve_in_thread"]
