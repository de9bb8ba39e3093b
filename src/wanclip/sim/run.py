"""One prompt being executed: what it has sent, produced and spent, and what it leaves in history.

The engine's worker owns a ``Run`` while the prompt executes; everything here is bookkeeping on
it (no locks, no I/O): the per-node progress and ``progress_state`` entries, 0.38's activities and
seconds, and the shapes of its error, interruption and history entry.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

from wanclip.sim.profiles import Profile

FAKE_TRACEBACK = [
    '  File "/opt/ComfyUI/execution.py", line 496, in execute\n    output_data, output_ui, has_subgraph, has_pending_tasks = await get_output_data(...)\n',
    '  File "/opt/ComfyUI/execution.py", line 277, in process_inputs\n    result = f(**inputs)\n',
]


@dataclass
class Run:
    """One prompt being executed."""

    item: tuple
    gen: int
    ordinal: int
    messages: list = field(default_factory=list)
    progress: dict = field(default_factory=dict)
    executed: list = field(default_factory=list)
    outputs: dict = field(default_factory=dict)  # node id -> outputs tuple
    ui: dict = field(default_factory=dict)  # node id -> ui dict
    node: str | None = None
    current_inputs: dict = field(default_factory=dict)
    activity: dict = field(default_factory=dict)  # node id -> (activity, since) while it runs (0.38)
    seconds: dict = field(default_factory=dict)  # node id -> {"total": s, activity: s} once done (0.38)
    started: dict = field(default_factory=dict)  # node id -> perf_counter at its executing

    @property
    def prompt_id(self) -> str:
        return self.item[1]

    @property
    def prompt(self) -> dict:
        return self.item[2]

    @property
    def client_id(self):
        return self.item[3].get("client_id")

    def set_activity(self, node_id: str, name: str | None) -> None:
        """[inferred, drift §1.5] What a running node spends its time on; each one's seconds add up."""
        now = time.perf_counter()
        previous = self.activity.pop(node_id, None)
        if previous is not None:
            spent = self.seconds.setdefault(node_id, {})
            spent[previous[0]] = round(spent.get(previous[0], 0.0) + now - previous[1], 6)
        if name is not None:
            self.activity[node_id] = (name, now)

    def progress_state(self, profile: Profile, node_id: str, state: str, value=None, maximum=None) -> dict:
        """Records node_id's new state; returns the ``progress_state`` payload of every node so far."""
        entry = self.progress.setdefault(node_id, {"value": 0, "max": 1, "state": "pending"})
        entry["state"] = state
        if value is not None:
            entry["value"], entry["max"] = value, maximum
        if state == "finished":
            entry["value"] = entry["max"]
            if profile.node_activity and node_id in self.started:
                self.set_activity(node_id, None)
                spent = self.seconds.setdefault(node_id, {})
                spent["total"] = round(time.perf_counter() - self.started[node_id], 6)
        nodes_state = {n: self._node_state(profile, n, e) for n, e in self.progress.items()}
        return {"prompt_id": self.prompt_id, "nodes": nodes_state}

    def _node_state(self, profile: Profile, n: str, e: dict) -> dict:
        """One progress_state node. Execution ids of subgraph nodes ("54:73") are the graph's keys:
        an API prompt carries them flattened, so display and real id are the id itself and the
        parent is None (ComfyUI sets a parent only for nodes expanded at run time; inferred)."""
        state = {"value": e["value"], "max": e["max"], "state": e["state"], "node_id": n, "prompt_id": self.prompt_id,
                 "display_node_id": n, "parent_node_id": None, "real_node_id": n}
        if profile.node_activity:
            if n in self.activity and e["state"] == "running":
                state["activity"] = self.activity[n][0]
            if e["state"] == "finished" and n in self.seconds:
                state["seconds"] = dict(self.seconds[n])
        return state

    def error(self, exception_type: str, message: str) -> dict:
        """The ``execution_error`` payload for a node that raised."""
        node_id = self.node
        return {
            "prompt_id": self.prompt_id, "node_id": node_id, "node_type": self.prompt[node_id]["class_type"],
            "executed": list(self.executed), "exception_message": f"{message}\n", "exception_type": exception_type,
            "traceback": list(FAKE_TRACEBACK),
            "current_inputs": {k: [repr(v)] for k, v in self.current_inputs.items()},
            "current_outputs": list(self.prompt),
        }

    def interrupted(self) -> dict:
        """The ``execution_interrupted`` payload."""
        node_id = self.node
        return {"prompt_id": self.prompt_id, "node_id": node_id, "node_type": self.prompt[node_id]["class_type"],
                "executed": list(self.executed)}

    def history_entry(self, success: bool) -> dict:
        """What ``/history`` keeps of the prompt once it ended."""
        return {
            "prompt": list(self.item),
            "outputs": copy.deepcopy(self.ui),
            "status": {"status_str": "success" if success else "error", "completed": success,
                       "messages": self.messages},
            "meta": {n: {"node_id": n, "display_node": n, "parent_node": None, "real_node_id": n} for n in self.ui},
        }


def progress_due(profile: Profile, bar: dict, value, maximum) -> bool:
    """0.9+: the first and the final update always go out, others need ≥100 ms and ≥0.5 %."""
    if not profile.throttle_progress:
        return True
    now = time.perf_counter()
    if bar["last"] >= 0 and value < maximum:
        percent = (value - max(0, bar["last"])) / maximum * 100 if maximum > 0 else 100
        if now - bar["time"] < 0.1 or percent < 0.5:
            return False
    bar["last"], bar["time"] = value, now
    return True
