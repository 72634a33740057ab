"""How far a false decider reaches: the node ids that end in IGNORE, by the link's depth."""

from __future__ import annotations

from flowkit.compiler import JUNCTION, CompiledFlow, DeciderLink
from flowkit.patterns.graph_flow import Depth


def decider_reach(c: CompiledFlow, link: DeciderLink) -> set[int]:
    """The node ids a false decider ignores, by its depth."""
    out = set(link.target)
    if link.depth is Depth.ATOM:
        return out
    if link.depth is Depth.NEIGHBORS:
        frontier = list(out)
        while frontier:  # step through junctions: they are not atoms
            x = frontier.pop()
            for s in c.succs[x]:
                if s not in out:
                    out.add(s)
                    if c.kinds[s] == JUNCTION:
                        frontier.append(s)
        return out
    limit = link.scope if link.depth is Depth.FLOW else None
    stack = list(out)
    while stack:
        x = stack.pop()
        for s in c.succs[x]:
            if s not in out and (limit is None or s in limit):
                out.add(s)
                stack.append(s)
    return out
