"""Execution order and cache keys, reproducing ComfyUI's ExecutionList and classic cache."""

from __future__ import annotations

import json


def is_link(value) -> bool:
    return (
        isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)
        and isinstance(value[1], (int, float)) and not isinstance(value[1], bool)
    )


class ExecutionList:
    """ComfyUI's topological order: the output node's inputs are pushed on a stack in input order,
    and among ready nodes the one closest to an output (up to two hops) goes first."""

    def __init__(self, prompt: dict, is_cached, is_output):
        self.prompt = prompt
        self.is_cached = is_cached
        self.is_output = is_output
        self.pending: dict[str, bool] = {}
        self.block_count: dict[str, int] = {}
        self.blocking: dict[str, dict[str, bool]] = {}

    def add_node(self, node_id: str) -> None:
        stack, links = [node_id], []
        while stack:
            unique_id = stack.pop()
            if unique_id in self.pending:
                continue
            self.pending[unique_id] = True
            self.block_count[unique_id] = 0
            self.blocking[unique_id] = {}
            for value in self.prompt[unique_id]["inputs"].values():
                if is_link(value):
                    if not self.is_cached(value[0]):
                        stack.append(value[0])
                    links.append((value[0], unique_id))
        for source, target in links:
            if not self.is_cached(source):
                self.add_node(source)
                if target not in self.blocking[source]:
                    self.blocking[source][target] = True
                    self.block_count[target] += 1

    def next_node(self) -> str | None:
        ready = [n for n in self.pending if self.block_count[n] == 0]
        if not ready:
            return None
        for n in ready:
            if self.is_output(n):
                return n
        for n in ready:
            if any(self.is_output(b) for b in self.blocking[n]):
                return n
        for n in ready:
            if any(self.is_output(b2) for b in self.blocking[n] for b2 in self.blocking[b]):
                return n
        return ready[0]

    def complete(self, node_id: str) -> None:
        del self.pending[node_id]
        for target in self.blocking[node_id]:
            self.block_count[target] -= 1


def signatures(prompt: dict, has_unique_id, is_changed=lambda node: None) -> dict[str, str]:
    """Cache key per node: class, literal inputs and the ancestors' keys (not their ids).

    is_changed(node): the node's IS_CHANGED answer (None: it has none), added to its key."""
    memo: dict[str, str] = {}

    def sig(node_id: str, seen: frozenset) -> str:
        if node_id in memo:
            return memo[node_id]
        node = prompt[node_id]
        parts = {}
        for name, value in sorted(node["inputs"].items()):
            if is_link(value) and value[0] in prompt and value[0] not in seen:
                parts[name] = ["link", sig(value[0], seen | {node_id}), value[1]]
            else:
                parts[name] = ["value", value]
        key = [node["class_type"], parts]
        if has_unique_id(node["class_type"]):
            key.append(node_id)  # VHS asks for UNIQUE_ID, so ComfyUI keys it by node id too
        changed = is_changed(node)
        if changed is not None:
            key.append(["is_changed", changed])
        memo[node_id] = json.dumps(key, sort_keys=True, default=str)
        return memo[node_id]

    return {node_id: sig(node_id, frozenset()) for node_id in prompt}
