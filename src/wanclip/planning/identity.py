"""A shot's identity: the hash of its planned graph, apart from where the output file goes.

A shot is known by its name. Its position in the film (and the film's title) only name the output
file, so the output node's ``filename_prefix`` is left out of the identity: inserting, removing or
reordering shots, or renaming the film, re-renders no shot. Ledgers written before this hashed the
whole graph, whose prefix was ``wanclip/<slug>/<NN>_<name>``; ``legacy_identity_sha256`` rebuilds
that hash so those ledgers keep their done shots.
"""

from __future__ import annotations

from wanclip.planning.workflow import Roles, graph_sha256

IDENTITY_PREFIX = "wanclip"  # what the identity hashes in place of the output's own prefix


def with_prefix(graph: dict, roles: Roles, prefix: str) -> dict:
    """``graph`` with its output node's ``filename_prefix`` set to ``prefix`` (when it has one)."""
    node = graph.get(roles.output)
    if not isinstance(node, dict) or not isinstance(node.get("inputs", {}).get("filename_prefix"), str):
        return graph
    return {**graph, roles.output: {**node, "inputs": {**node["inputs"], "filename_prefix": prefix}}}


def identity_sha256(graph: dict, roles: Roles) -> str:
    """The shot's identity (the ledger's ``graph_sha256``): the same wherever the shot stands."""
    return graph_sha256(with_prefix(graph, roles, IDENTITY_PREFIX))


def legacy_identity_sha256(graph: dict, roles: Roles, slug: str, index: int, name: str) -> str:
    """The ``graph_sha256`` a ledger written before shot identity recorded for this graph, when the
    shot stood at ``index`` of the film ``slug``."""
    return graph_sha256(with_prefix(graph, roles, f"wanclip/{slug}/{index:02d}_{name}"))
