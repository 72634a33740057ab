"""The compiled DAG as a ``networkx.DiGraph``: built on demand, for people and tools.

Kept out of compiling on purpose: nothing flowkit runs reads it, and building it (and importing
networkx) cost as much as the rest of a compile. :attr:`CompiledFlow.graph` calls this once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flowkit import extras
from flowkit.compiler.compiled import JUNCTION, KIND_NAMES, CompiledFlow

if TYPE_CHECKING:
    import networkx as nx


def to_networkx(c: CompiledFlow) -> nx.DiGraph[str]:
    """Nodes are atom (and junction) names with ``atom`` and ``kind`` attributes; edges run u -> v.

    A junction's ``atom`` is None: the placeholder it holds in ``CompiledFlow.atoms`` is internal.
    """
    extras.require("graph", "CompiledFlow.graph (a networkx view of the compiled flow)")
    import networkx as nx

    from flowkit.compiler import gc_paused

    g: nx.DiGraph[str] = nx.DiGraph()
    names, atoms, kinds = c.names, c.atoms, c.kinds
    with gc_paused():
        g.add_nodes_from(
            (name, {"atom": None if kinds[i] == JUNCTION else atoms[i], "kind": KIND_NAMES[kinds[i]]})
            for i, name in enumerate(names)
        )
        g.add_edges_from((names[i], names[s]) for i, succ in enumerate(c.succs) for s in succ)
    return g
