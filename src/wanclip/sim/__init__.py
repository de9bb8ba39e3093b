"""A simulated ComfyUI 0.3.64 that speaks the real protocol (see `wanclip sim`).

Imports nothing from the rest of wanclip, so a client bug cannot be copied into the fake.
"""

from wanclip.sim.engine import Engine, SimConfig
from wanclip.sim.faults import Faults, parse_faults
from wanclip.sim.server import SimHandle, serve_in_thread

__all__ = ["Engine", "Faults", "SimConfig", "SimHandle", "parse_faults", "serve_in_thread"]
