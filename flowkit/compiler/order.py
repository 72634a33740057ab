"""Order the nodes topologically, or name the atoms of a cycle that makes that impossible.

Both work on the integer adjacency lists, iteratively: a flow of any size (or a cycle of
any length) needs no recursion and no graph library.
"""

from __future__ import annotations

from flowkit.compiler.compiled import JUNCTION, CompiledFlow
from flowkit.exceptions import CycleError


def toposort(c: CompiledFlow) -> list[int]:
    """A topological order of every node (Kahn); raises :class:`CycleError` naming a cycle's atoms."""
    n = len(c.atoms)
    indeg = list(map(len, c.preds))
    order = [i for i in range(n) if not indeg[i]]
    succs = c.succs
    for i in order:  # ``order`` is also the queue: it grows while it is read (first in, first out)
        for s in succs[i]:
            indeg[s] -= 1
            if indeg[s] == 0:
                order.append(s)
    if len(order) != n:
        cycle = find_cycle(c.preds, [indeg[i] > 0 for i in range(n)])
        raise CycleError([c.names[i] for i in cycle if c.kinds[i] != JUNCTION])
    return order


def find_cycle(preds: list[list[int]], stuck: list[bool]) -> list[int]:
    """One cycle among the nodes Kahn's sort could not place (``stuck``), in edge order.

    Why walking backwards finds one: a node is stuck because one of its predecessors is stuck,
    so following stuck predecessors never ends, and in a finite graph it must come back to a
    node already walked; the walk from there on is a cycle. Linear in the nodes visited.
    """
    start = stuck.index(True)
    step: dict[int, int] = {}  # node -> its position on the walk
    walk: list[int] = []
    node = start
    while node not in step:
        step[node] = len(walk)
        walk.append(node)
        node = next(p for p in preds[node] if stuck[p])
    cycle = walk[step[node] :]
    cycle.reverse()  # the walk followed edges backwards
    return cycle
