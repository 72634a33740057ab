"""Compile a (nested) flow into one DAG of atoms, once, before anything runs.

Every structural mistake is found here, with the atoms named: duplicate names,
cycles, symbols provided ambiguously. The result, :class:`CompiledFlow`, holds the
graph as plain integer adjacency lists for the engine's hot loop; its ``graph``
property gives a ``networkx.DiGraph`` view on demand, for people and tools.

The steps, one module each: :mod:`.structure` lays out nodes and edges (node ids
are handed out depth first, so every (sub)flow owns a contiguous id range; retry
scopes and decider reaches are ranges, not sets), :mod:`.order` sorts them (one Kahn
pass) or names a cycle, :mod:`.binding` binds each argument to its provider. Cost
is near-linear in the number of atoms.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from operator import attrgetter

from flowkit.atom import Atom
from flowkit.compiler.binding import bind
from flowkit.compiler.compiled import (
    FROM_ATOM,
    FROM_STORE,
    JUNCTION,
    JUNCTION_ATOM,
    KIND_NAMES,
    RETRY,
    TASK,
    Binding,
    CompiledFlow,
    DeciderLink,
    Junction,
)
from flowkit.compiler.order import toposort
from flowkit.compiler.structure import Structure
from flowkit.exceptions import InvalidFlowTypeError
from flowkit.flow import Flow

_priority = attrgetter("priority")

__all__ = [
    "FROM_ATOM",
    "FROM_STORE",
    "JUNCTION",
    "JUNCTION_ATOM",
    "KIND_NAMES",
    "RETRY",
    "TASK",
    "Binding",
    "CompiledFlow",
    "DeciderLink",
    "Junction",
    "compile_flow",
]


def compile_flow(flow: Flow | Atom) -> CompiledFlow:
    """Compile ``flow`` (and everything nested in it) into one :class:`CompiledFlow`."""
    if not isinstance(flow, Flow):
        if isinstance(flow, Atom):
            from flowkit.patterns.linear_flow import LinearFlow

            flow = LinearFlow(flow.name).add(flow)
        else:
            raise InvalidFlowTypeError(f"expected a flow or an atom to compile, got {flow!r}")
    with gc_paused():
        structure = Structure(flow)
        structure.build_flow(flow, -1)
        compiled = structure.c
        compiled.order = toposort(compiled)
        compiled.prioritized = any(map(_priority, compiled.atoms))  # a pass in C
        bind(compiled)
        return compiled


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while building something with a few small containers per atom.

    Nothing built is freed along the way, so each collection would only rescan the growing heap
    (quadratic on 100,000 atoms). On the way out, what was built is handed to the oldest generation
    directly (``gc.freeze()`` then ``gc.unfreeze()``: two list splices), so the first allocation after
    compiling does not start a young collection that walks every node's lists once more, only to
    find them all alive (1,400 instructions per atom, and a pass over memory that is cold on a large
    flow). Skipped when the program itself keeps objects frozen (a pre-fork server): unfreezing
    would release them.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if gc.get_freeze_count() == 0:
            gc.freeze()
            gc.unfreeze()
        if was_enabled:
            gc.enable()
