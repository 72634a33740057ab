"""Deciders on links: whether the atoms after a link run, and how far a false one reaches.

A link's decider is asked once per attempt, when the first atom after the link is about to
start, with the results of the atoms before the link. A false answer turns off the nodes
:func:`decider_reach` finds (they end IGNORE). A retry controller that runs its scope again
asks the scope's deciders again (:func:`forget`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flowkit.compiler import JUNCTION, CompiledFlow, DeciderLink
from flowkit.exceptions import FlowkitError
from flowkit.patterns.graph_flow import Depth

if TYPE_CHECKING:
    from flowkit.engines.run import Run


def decide(run: Run, i: int, links: list[DeciderLink]) -> None:
    """Ask the deciders on the links into node ``i`` not asked yet; a raising one is a FlowkitError."""
    c, st = run.c, run.st
    for link in links:
        key = id(link)
        if key in run.decided:
            continue
        run.decided.add(key)
        history = {c.names[h]: st.results[h] for h in link.history if c.kinds[h] != JUNCTION}
        try:
            go = bool(link.decider(history=history))
        except Exception as exc:
            raise FlowkitError(f"decider on link {link.label} raised {type(exc).__name__}: {exc}") from exc
        if not go:
            run.ignored.update(decider_reach(c, link))


def forget(run: Run, scope: range) -> None:
    """The nodes of ``scope`` run again: none is ignored, their deciders are asked again."""
    c = run.c
    for x in scope:
        run.ignored.discard(x)
    for x in scope:
        for link in c.deciders.get(x, ()):
            run.decided.discard(id(link))


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
