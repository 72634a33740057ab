"""Deciders on links: whether the atoms after a link run, and how far a false one reaches.

A link's decider is asked once per attempt, when the first atom after the link is about to
start, with the results of the atoms before the link. A false answer turns off the nodes
:func:`decider_reach` finds (they end IGNORE). A retry controller that runs its scope again
asks the scope's deciders again (:func:`forget`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flowkit.compiler import JUNCTION, CompiledFlow, DeciderLink
from flowkit.exceptions import FlowkitError
from flowkit.patterns.graph_flow import Depth
from flowkit.states import AtomState

if TYPE_CHECKING:
    from flowkit.engines.run import Run


def decide(run: Run, i: int, links: list[DeciderLink]) -> None:
    """Ask the deciders on the links into node ``i`` not asked yet; a raising one is a FlowkitError.

    As TaskFlow: every decider sees one history, the results of the atoms before all those links
    (an ignored atom is left out, and a decider whose atoms were all ignored is not asked); when
    several say no, the widest depth among them is applied.
    """
    c, st = run.c, run.st
    pending = [link for link in links if id(link) not in run.decided]
    if not pending:
        return
    states = st.states
    history: dict[str, Any] = {}
    for link in pending:
        run.decided.add(id(link))
        for h in link.history:
            if c.kinds[h] != JUNCTION and states[h] is not AtomState.IGNORE:
                history[c.names[h]] = st.results[h]
    nays: list[DeciderLink] = []
    for link in pending:
        atoms = [h for h in link.history if c.kinds[h] != JUNCTION]
        if atoms and all(states[h] is AtomState.IGNORE for h in atoms):
            continue
        try:
            go = bool(link.decider(history=dict(history)))
        except Exception as exc:
            raise FlowkitError(f"decider on link {link.label} raised {type(exc).__name__}: {exc}") from exc
        if not go:
            nays.append(link)
    if nays:
        widest = min(nays, key=lambda link: _WIDTH.index(link.depth))
        run.ignored.update(decider_reach(c, widest))


_WIDTH = (Depth.ALL, Depth.FLOW, Depth.NEIGHBORS, Depth.ATOM)
"""Decider depths, widest first."""


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
    if link.depth is Depth.NEIGHBORS:  # the tasks of the same flow directly after the target
        siblings = link.siblings
        for x in link.target:
            out.update(s for s in c.succs[x] if s in siblings)
        return out
    limit = link.siblings if link.depth is Depth.FLOW else None  # FLOW: not into nested flows
    stack = list(out)
    while stack:
        x = stack.pop()
        for s in c.succs[x]:
            if s not in out and (limit is None or s in limit):
                out.add(s)
                stack.append(s)
    return out
