"""Compile a (nested) flow into one DAG of atoms, once, before anything runs.

Every structural mistake is found here, with the atoms named: duplicate names,
cycles, symbols provided ambiguously. The result, :class:`CompiledFlow`, holds
the graph twice: as a ``networkx.DiGraph`` of atom names for people and tools
(``flowkit graph``), and as plain integer adjacency lists for the engine's hot
loop. Node ids are handed out depth first, so every (sub)flow owns a contiguous
id range; retry scopes and decider reaches are ranges, not sets.

Cost is near-linear in the number of atoms: one pass to build, one Kahn sort,
and one pass to bind each argument to its provider (direct predecessors first,
then a reachability search whose results are remembered per provider).
"""

from __future__ import annotations

import gc
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from flowkit.atom import _WHOLE, Atom
from flowkit.exceptions import (
    AmbiguousProviderError,
    CycleError,
    DuplicateNameError,
    InvalidFlowError,
    MissingRequirementError,
)
from flowkit.flow import Flow, Node
from flowkit.patterns.graph_flow import Depth, GraphFlow
from flowkit.retry import Retry

TASK, RETRY, JUNCTION = 0, 1, 2
"""Node kinds. Junctions are internal no-op nodes that join two large groups of atoms
(n x m edges become n + m); they stay in ``CompiledFlow.graph`` (kind "junction") but
are never stored, notified or drawn."""

FROM_ATOM, FROM_STORE = 0, 1
_JUNCTION_THRESHOLD = 16


@dataclass(slots=True)
class Binding:
    """Where one argument of one atom comes from."""

    arg: str
    symbol: str
    optional: bool
    kind: int = FROM_STORE
    provider: int = -1
    key: Any = _WHOLE


@dataclass(slots=True)
class DeciderLink:
    """A decider on a link ``u -> v``: evaluated once, when ``v`` is about to start."""

    decider: Callable[..., bool]
    depth: Depth
    history: range  # node ids of u
    target: range  # node ids of v
    scope: range  # node ids of the graph flow holding the link
    label: str


@dataclass(slots=True)
class CompiledFlow:
    """The runnable form of a flow. Indexes are node ids."""

    flow: Flow
    atoms: list[Atom | None] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    kinds: list[int] = field(default_factory=list)
    preds: list[list[int]] = field(default_factory=list)
    succs: list[list[int]] = field(default_factory=list)
    retry_of: list[int] = field(default_factory=list)
    """Innermost retry controller whose scope holds the node (-1: none)."""
    scope_end: dict[int, int] = field(default_factory=dict)
    """For a retry node r: its scope is ``range(r + 1, scope_end[r])``."""
    bindings: list[tuple[Binding, ...]] = field(default_factory=list)
    revert_bindings: list[tuple[Binding, ...]] = field(default_factory=list)
    deciders: dict[int, list[DeciderLink]] = field(default_factory=dict)
    providers: dict[str, list[int]] = field(default_factory=dict)
    """Symbol -> the atoms that provide it."""
    keyed: list[bool] = field(default_factory=list)
    """Whether the atom provides by key or index (its results are checked when it succeeds)."""
    index: dict[str, int] = field(default_factory=dict)
    order: list[int] = field(default_factory=list)
    """A topological order of all nodes."""
    graph: nx.DiGraph = field(default_factory=nx.DiGraph)

    def atom_ids(self) -> Iterable[int]:
        kinds = self.kinds
        return (i for i in range(len(kinds)) if kinds[i] != JUNCTION)

    def check_store(self, store: dict[str, Any]) -> None:
        """Raise :class:`MissingRequirementError` for the first requirement nothing can satisfy."""
        for i in self.atom_ids():
            for b in (*self.bindings[i], *self.revert_bindings[i]):
                if b.kind == FROM_STORE and not b.optional and b.symbol not in store:
                    others = [self.names[p] for p in self.providers.get(b.symbol, ()) if p != i]
                    raise MissingRequirementError(self.names[i], b.symbol, others)


class _Builder:
    def __init__(self, flow: Flow) -> None:
        self.c = CompiledFlow(flow=flow)
        self.links: list[tuple[int, int]] = []
        self.flow_names: set[str] = set()

    # -- nodes and edges --------------------------------------------------------------------------

    def new_node(self, atom: Atom | None, kind: int, retry: int, name: str | None = None) -> int:
        c = self.c
        nid = len(c.atoms)
        node_name = name if name is not None else atom.name  # type: ignore[union-attr]
        if node_name in c.index:
            raise DuplicateNameError(node_name, f"flow {c.flow.name!r}")
        c.index[node_name] = nid
        c.atoms.append(atom)
        c.names.append(node_name)
        c.kinds.append(kind)
        c.preds.append([])
        c.succs.append([])
        c.retry_of.append(retry)
        return nid

    def connect(self, sinks: list[int], sources: list[int], retry: int) -> None:
        c = self.c
        if len(sinks) * len(sources) > _JUNCTION_THRESHOLD and len(sinks) > 1 and len(sources) > 1:
            j = self.new_node(None, JUNCTION, retry, name=f"<junction {len(c.atoms)}>")
            self.edges(sinks, [j])
            self.edges([j], sources)
        else:
            self.edges(sinks, sources)

    def edges(self, tails: list[int], heads: list[int]) -> None:
        preds, succs = self.c.preds, self.c.succs
        for t in tails:
            st = succs[t]
            for h in heads:
                st.append(h)
                preds[h].append(t)

    # -- structure --------------------------------------------------------------------------------

    def build(self, node: Node, retry: int) -> tuple[list[int], list[int], set[str], set[str]]:
        """Add ``node``; return (sources, sinks, symbols provided, symbols required from outside)."""
        if isinstance(node, Atom):
            if isinstance(node, Retry):
                raise InvalidFlowError(
                    f"retry controller {node.name!r} must be given as a flow's retry=, not added as a child"
                )
            nid = self.new_node(node, TASK, retry)
            return [nid], [nid], set(node.provides), set(node.requires) | set(node.optional)
        return self.build_flow(node, retry)

    def build_flow(self, flow: Flow, retry: int) -> tuple[list[int], list[int], set[str], set[str]]:
        c = self.c
        if flow.name in self.flow_names:
            raise DuplicateNameError(flow.name, f"flow {c.flow.name!r} (two subflows share it)")
        self.flow_names.add(flow.name)
        inner = retry
        provides: set[str] = set()
        requires: set[str] = set()
        r = -1
        if flow.retry is not None:
            r = self.new_node(flow.retry, RETRY, retry)
            inner = r
            provides.update(flow.retry.provides)
            requires.update(flow.retry.requires | flow.retry.optional)

        children = list(flow)
        built: list[tuple[int, int, list[int], list[int], set[str], set[str]]] = []
        for child in children:
            lo = len(c.atoms)
            src, snk, prov, req = self.build(child, inner)
            built.append((lo, len(c.atoms), src, snk, prov, req))
        pos = {id(child): k for k, child in enumerate(children)}

        child_edges: list[tuple[int, int]] = []
        for u, v, meta in flow.iter_links():
            ku, kv = pos[id(u)], pos[id(v)]
            child_edges.append((ku, kv))
            decider = meta.get("decider")
            if decider is not None and built[kv][2]:
                link = DeciderLink(
                    decider=decider,
                    depth=meta["depth"],
                    history=range(built[ku][0], built[ku][1]),
                    target=range(built[kv][0], built[kv][1]),
                    scope=range(built[0][0], built[-1][1]),
                    label=f"{getattr(u, 'name', u)!r} -> {getattr(v, 'name', v)!r}",
                )
                for entry in built[kv][2]:
                    c.deciders.setdefault(entry, []).append(link)
        if isinstance(flow, GraphFlow):
            child_edges.extend(self.inferred_edges(flow, built))

        has_pred = [False] * len(built)
        has_succ = [False] * len(built)
        seen_pairs: set[tuple[int, int]] = set()
        for ku, kv in child_edges:
            if (ku, kv) in seen_pairs:
                continue
            seen_pairs.add((ku, kv))
            sinks, sources = built[ku][3], built[kv][2]
            if not sinks or not sources:
                continue  # an empty subflow orders nothing
            has_succ[ku] = True
            has_pred[kv] = True
            self.connect(sinks, sources, inner)

        sources = [s for k, b in enumerate(built) if not has_pred[k] for s in b[2]]
        sinks = [s for k, b in enumerate(built) if not has_succ[k] for s in b[3]]
        for b in built:
            provides |= b[4]
        for b in built:
            requires |= b[5]
        requires -= provides
        if r >= 0:
            c.scope_end[r] = len(c.atoms)
            self.connect([r], sources, inner) if sources else None
            sources = [r]
            if not sinks:
                sinks = [r]
        return sources, sinks, provides, requires

    def inferred_edges(
        self, flow: GraphFlow, built: list[tuple[int, int, list[int], list[int], set[str], set[str]]]
    ) -> list[tuple[int, int]]:
        """Graph flows: a child runs after each sibling providing a symbol it requires."""
        by_symbol: dict[str, list[int]] = {}
        for k, b in enumerate(built):
            for symbol in b[4]:
                by_symbol.setdefault(symbol, []).append(k)
        out = []
        for k, b in enumerate(built):
            for symbol in b[5]:
                for p in by_symbol.get(symbol, ()):
                    if p != k:
                        out.append((p, k))
        return out

    # -- ordering ---------------------------------------------------------------------------------

    def toposort(self) -> None:
        c = self.c
        n = len(c.atoms)
        indeg = [len(p) for p in c.preds]
        queue = deque(i for i in range(n) if indeg[i] == 0)
        order: list[int] = []
        succs = c.succs
        while queue:
            i = queue.popleft()
            order.append(i)
            for s in succs[i]:
                indeg[s] -= 1
                if indeg[s] == 0:
                    queue.append(s)
        if len(order) != n:
            raise CycleError(self.find_cycle({i for i in range(n) if indeg[i] > 0}))
        c.order = order

    def find_cycle(self, stuck: set[int]) -> list[str]:
        c = self.c
        g = nx.DiGraph()
        g.add_edges_from((i, s) for i in stuck for s in c.succs[i] if s in stuck)
        try:
            cycle = [u for u, _ in nx.find_cycle(g)]
        except nx.NetworkXNoCycle:  # pragma: no cover - Kahn said there is one
            cycle = sorted(stuck)
        return [c.names[i] for i in cycle if c.kinds[i] != JUNCTION]

    # -- argument binding -------------------------------------------------------------------------

    def bind(self) -> None:
        c = self.c
        n = len(c.atoms)
        providers = c.providers
        for i in range(n):
            atom = c.atoms[i]
            if atom is not None:
                for symbol in atom.save_as:
                    providers.setdefault(symbol, []).append(i)
        topo = [0] * n
        for rank, i in enumerate(c.order):
            topo[i] = rank
        reach = _Reachability(c.preds, topo)
        c.bindings = [()] * n
        c.revert_bindings = [()] * n
        c.keyed = [
            atom is not None and any(k is not _WHOLE for k in atom.save_as.values()) for atom in c.atoms
        ]
        for i in c.order:  # topological order keeps the reachability memo effective
            atom = c.atoms[i]
            if atom is None:
                continue
            bound = []
            for arg, symbol in atom.rebind.items():
                bound.append(self.bind_one(i, atom, arg, symbol, False, providers, reach))
            for arg, symbol in atom.optional_rebind.items():
                bound.append(self.bind_one(i, atom, arg, symbol, True, providers, reach))
            c.bindings[i] = tuple(bound)
            rbound = []
            for arg, symbol in atom.revert_rebind.items():
                rbound.append(self.bind_one(i, atom, arg, symbol, False, providers, reach))
            for arg, symbol in atom.revert_optional_rebind.items():
                rbound.append(self.bind_one(i, atom, arg, symbol, True, providers, reach))
            c.revert_bindings[i] = tuple(rbound)

    def bind_one(
        self,
        i: int,
        atom: Atom,
        arg: str,
        symbol: str,
        optional: bool,
        providers: dict[str, list[int]],
        reach: _Reachability,
    ) -> Binding:
        c = self.c
        candidates = [p for p in providers.get(symbol, ()) if p != i]
        if not candidates:
            return Binding(arg, symbol, optional)
        preds_i = c.preds[i]
        if len(candidates) == 1:
            p = candidates[0]
            if p in preds_i or reach.reaches(p, i):
                return Binding(arg, symbol, optional, FROM_ATOM, p, c.atoms[p].save_as[symbol])  # type: ignore[union-attr]
            return Binding(arg, symbol, optional)
        visible = [p for p in candidates if p in preds_i or reach.reaches(p, i)]
        if not visible:
            return Binding(arg, symbol, optional)
        # The nearest provider shadows the ones it runs after (a later step overrides an earlier one).
        nearest = [p for p in visible if not any(q != p and reach.reaches(p, q) for q in visible)]
        if len(nearest) > 1:
            raise AmbiguousProviderError(atom.name, symbol, [c.names[p] for p in nearest])
        p = nearest[0]
        return Binding(arg, symbol, optional, FROM_ATOM, p, c.atoms[p].save_as[symbol])  # type: ignore[union-attr]

    def networkx_graph(self) -> None:
        c = self.c
        g = c.graph
        kinds = ("task", "retry", "junction")
        atoms = c.atoms
        g.add_nodes_from(
            (name, {"atom": atoms[i], "kind": kinds[c.kinds[i]]}) for i, name in enumerate(c.names)
        )
        names = c.names
        g.add_edges_from((names[i], names[s]) for i in range(len(names)) for s in c.succs[i])


class _Reachability:
    """``reaches(p, i)``: is there a path from ``p`` to ``i``? Remembers the descendants found per ``p``.

    A backward search from ``i`` that skips nodes sorted before ``p`` (they cannot lie on a
    path from it); asking in topological order makes repeated questions about one
    provider O(1) (a chain of 100,000 atoms needing the first one's output stays linear).
    """

    __slots__ = ("_known", "_preds", "_topo")

    def __init__(self, preds: list[list[int]], topo: list[int]) -> None:
        self._preds = preds
        self._topo = topo
        self._known: dict[int, set[int]] = {}

    def reaches(self, p: int, i: int) -> bool:
        topo = self._topo
        if topo[p] >= topo[i]:
            return False
        known = self._known.setdefault(p, {p})
        if i in known:
            return True
        floor = topo[p]
        stack = [i]
        seen = {i}
        preds = self._preds
        while stack:
            x = stack.pop()
            for q in preds[x]:
                if q in known:
                    known.add(i)
                    return True
                if q not in seen and topo[q] > floor:
                    seen.add(q)
                    stack.append(q)
        return False


def compile_flow(flow: Flow) -> CompiledFlow:
    """Compile ``flow`` (and everything nested in it) into one :class:`CompiledFlow`."""
    if not isinstance(flow, Flow):
        if isinstance(flow, Atom):
            from flowkit.patterns.linear_flow import LinearFlow

            flow = LinearFlow(flow.name).add(flow)
        else:
            raise InvalidFlowError(f"expected a flow or an atom to compile, got {flow!r}")
    # Compiling allocates a few small containers per atom and frees none of them; the cyclic
    # GC would rescan the growing heap again and again (quadratic on 100,000 atoms).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        b = _Builder(flow)
        b.build_flow(flow, -1)
        b.toposort()
        b.bind()
        b.networkx_graph()
        return b.c
    finally:
        if gc_was_enabled:
            gc.enable()
