"""Children ordered by their data dependencies, plus explicit links."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from enum import StrEnum
from typing import Any

from flowkit.atom import Atom
from flowkit.exceptions import AmbiguousProviderError, CycleError, InvalidAtomArgumentError, InvalidFlowError
from flowkit.flow import Flow as _Flow
from flowkit.flow import Node


class Depth(StrEnum):
    """How far a false decider reaches (what ends in IGNORE)."""

    ALL = "ALL"
    """The target and every atom that runs after it, in any flow."""
    FLOW = "FLOW"
    """The target and the tasks after it that are children of the graph flow holding the link
    (nested flows are not reached, as in TaskFlow)."""
    NEIGHBORS = "NEIGHBORS"
    """The target's atoms and the tasks of the same graph flow directly after them."""
    ATOM = "ATOM"
    """Only the target (its atoms, when the target is a flow)."""


class GraphFlow(_Flow):
    """A child runs after every sibling that provides something it requires, and after
    the siblings linked to it with :meth:`link`.

    The graph is kept up to date as children are added and linked, so a cycle or an ambiguous
    provider is refused by the ``add()``/``link()`` call that makes it (and again at compile).
    Each check only walks from the new edges' heads, so building a large flow in dependency
    order does no graph search at all.
    """

    _kind = "graph_flow.Flow"

    def __init__(self, name: str, retry: Any = None) -> None:
        super().__init__(name, retry=retry)
        # id(node) -> {id(successor): link metadata}, in insertion order; and the reverse index.
        self._succ: dict[int, dict[int, dict[str, Any]]] = {}
        self._pred: dict[int, dict[int, None]] = {}
        self._nodes: dict[int, Node] = {}
        self._providers: dict[str, list[Node]] = {}
        self._requirers: dict[str, list[Node]] = {}
        self._data_complete = True
        """See :attr:`data_edges_complete`; cleared for good by whatever could make it untrue."""
        self._chain = True
        """See :attr:`data_edges_chain`; cleared for good by the first child that breaks the chain."""

    # -- building --------------------------------------------------------------------------------

    def add(self, *items: Node, resolve_requires: bool = True, resolve_existing: bool = True) -> GraphFlow:
        """Add children; link each to the siblings whose outputs it requires (``resolve_requires``)
        and to the siblings already added that require its outputs (``resolve_existing``).

        A requirement met by two siblings raises AmbiguousProviderError, a new cycle CycleError;
        either way the flow is left as it was before the call.
        """
        added: list[Node] = []
        if not (resolve_requires and resolve_existing):
            self._data_complete = False
        # As in TaskFlow, a child added without resolve_requires is not yet a requirer for the
        # children added after it in the same call (a later add() links to it again).
        unresolved: set[int] = set()
        try:
            for item in items:
                super().add(item)
                added.append(item)
                self._insert(item, resolve_requires, resolve_existing, unresolved)
                if not resolve_requires:
                    unresolved.add(id(item))
        except BaseException:
            self._data_complete = False  # what the rollback leaves is not worth proving
            for item in reversed(added):
                self._discard(item)
            raise
        return self

    def _insert(
        self,
        node: Node,
        resolve_requires: bool,
        resolve_existing: bool,
        unresolved: set[int] = frozenset(),  # type: ignore[assignment]
    ) -> None:
        """Put ``node`` in the graph with its data edges, or raise leaving only its child entry."""
        nid = id(node)
        requires = list(node.requires)
        provides = list(node.provides)
        if self._data_complete and (not isinstance(node, Atom) or node.optional or node.revert_optional):
            self._data_complete = False  # a subflow's needs can change; optional symbols get no data edge
        into: dict[int, set[str]] = {}
        if resolve_requires:
            for symbol in requires:
                providers = [p for p in self._providers.get(symbol, ()) if p is not node]
                if len(providers) > 1:
                    raise AmbiguousProviderError(node.name, symbol, [p.name for p in providers])
                if providers:
                    into.setdefault(id(providers[0]), set()).add(symbol)
        out: dict[int, set[str]] = {}
        if resolve_existing:
            for symbol in provides:
                for r in self._requirers.get(symbol, ()):
                    if r is not node and id(r) not in unresolved:
                        if not self._met(r, symbol):
                            out.setdefault(id(r), set()).add(symbol)
                        else:  # a second provider gets no data edge, but compile infers one
                            self._data_complete = False
        if into and out:
            self._refuse_cycle(node, list(out), set(into))
        if self._chain:  # still each child after the one before: is this one too (nothing else)?
            kids = self._children  # ``node`` is the last one (``add()`` appends it first)
            if out or kids[-1] is not node:
                self._chain = False
            elif len(kids) == 1:
                self._chain = not into
            elif len(into) != 1 or id(kids[-2]) not in into:
                self._chain = False
        self._nodes[nid] = node
        self._succ.setdefault(nid, {})
        self._pred.setdefault(nid, {})
        for u, reasons in into.items():
            self._edge(u, nid).setdefault("reasons", set()).update(reasons)
        for v, reasons in out.items():
            self._edge(nid, v).setdefault("reasons", set()).update(reasons)
        for symbol in provides:
            self._providers.setdefault(symbol, []).append(node)
        for symbol in requires:
            self._requirers.setdefault(symbol, []).append(node)

    def _discard(self, node: Node) -> None:
        """Undo :meth:`add` for one child (used to leave a failed ``add()`` without effect)."""
        nid = id(node)
        for k in range(len(self._children) - 1, -1, -1):
            if self._children[k] is node:
                del self._children[k]
                break
        if any(child is node for child in self._children):
            return  # added twice: the graph entry belongs to the other copy
        self._nodes.pop(nid, None)
        for v in self._succ.pop(nid, {}):
            self._pred[v].pop(nid, None)
        for u in self._pred.pop(nid, {}):
            self._succ[u].pop(nid, None)
        # Only the symbols the node itself names: a rollback of a long add() stays linear.
        for index, symbols in ((self._providers, node.provides), (self._requirers, node.requires)):
            for symbol in set(symbols):
                nodes = index.get(symbol)
                if nodes is not None:
                    index[symbol] = [n for n in nodes if n is not node]

    def _met(self, node: Node, symbol: str) -> bool:
        """Does a child linked directly before ``node`` already provide ``symbol`` to it? (TaskFlow
        links a new provider only to requirers still unsatisfied.)"""
        nodes = self._nodes
        return any(symbol in nodes[p].provides for p in self._pred.get(id(node), ()))

    def _edge(self, u: int, v: int) -> dict[str, Any]:
        meta = self._succ[u].get(v)
        if meta is None:
            meta = self._succ[u][v] = {}
            self._pred[v][u] = None
        return meta

    def _refuse_cycle(self, node: Node, starts: list[int], targets: set[int]) -> None:
        """Raise CycleError if an edge ``node -> s`` (s in ``starts``) plus an edge ``t -> node``
        (t in ``targets``) would close a cycle: a search from the starts over existing edges."""
        parent: dict[int, int | None] = {s: None for s in starts}
        stack = list(starts)
        while stack:
            x = stack.pop()
            if x in targets:
                path = [x]
                while parent[path[-1]] is not None:
                    path.append(parent[path[-1]])  # type: ignore[arg-type]
                on_cycle = [self._nodes[i] for i in reversed(path)]
                if on_cycle[-1] is node:  # link(u, v): the search ends back at u
                    on_cycle.pop()
                raise CycleError([node.name, *(n.name for n in on_cycle)])
            for y in self._succ.get(x, ()):
                if y not in parent:
                    parent[y] = x
                    stack.append(y)

    def link(
        self,
        u: Node,
        v: Node,
        decider: Callable[..., bool] | None = None,
        decider_depth: Depth | str = Depth.ALL,
    ) -> GraphFlow:
        """Run ``v`` after ``u``; with a ``decider``, run ``v`` only if ``decider(history=...)`` is true.

        ``history`` maps each atom of ``u`` to its result. When the decider returns false,
        the atoms chosen by ``decider_depth`` end in IGNORE and the flow still succeeds.
        A link that would close a cycle raises CycleError.
        """
        for node, way in ((u, "from"), (v, "to")):
            if id(node) not in self._nodes:
                raise InvalidFlowError(
                    f"Node {getattr(node, 'name', node)!r} not found to link {way} in graph flow "
                    f"{self.name!r} (add it first)"
                )
        if u is v:
            raise InvalidFlowError(f"graph flow {self.name!r}: cannot link {u.name!r} to itself")
        if decider is not None and not callable(decider):
            raise InvalidFlowError(f"graph flow {self.name!r}: decider must be callable, got {decider!r}")
        try:
            depth = Depth(decider_depth.upper() if isinstance(decider_depth, str) else decider_depth)
        except ValueError:
            raise InvalidFlowError(
                f"graph flow {self.name!r}: unknown decider_depth {decider_depth!r} "
                f"(one of {', '.join(d.value for d in Depth)})"
            ) from None
        if id(v) not in self._succ[id(u)]:
            self._refuse_cycle(u, [id(v)], {id(u)})
        self._data_complete = False  # inferred edges then depend on the links (see the compiler)
        meta = self._edge(id(u), id(v))
        meta["manual"] = True
        if decider is not None:
            meta["decider"] = decider
            meta["decider_depth"] = depth.value
            meta["depth"] = depth
        return self

    # -- reading ---------------------------------------------------------------------------------

    @property
    def data_edges_complete(self) -> bool:
        """True when the compiler would infer no edge the graph does not hold already: every child
        is an atom without optional symbols, added with both resolves, no requirer was left without
        the edge to a second provider of a symbol (as TaskFlow, ``add()`` links only an unmet one),
        and there is no :meth:`link` and no rolled-back ``add()``. The compiler then skips working
        the data edges out again (each symbol of each child against its siblings')."""
        return self._data_complete

    @property
    def data_edges_chain(self) -> bool:
        """True when :attr:`data_edges_complete` and the data edges are exactly each child after the
        one added before it (``a -> b -> c``: each requires what the previous one provides), so the
        compiler lays the children out as a linear flow's, without reading the edges one by one."""
        return self._chain and self._data_complete

    def iter_links(self) -> Iterator[tuple[Node, Node, dict[str, Any]]]:
        """Every edge with its metadata: ``reasons`` (the symbols behind a data edge), ``manual``
        (made by :meth:`link`), and a manual link's ``decider``/``decider_depth``."""
        nodes = self._nodes
        for u, succs in self._succ.items():
            for v, meta in succs.items():
                yield nodes[u], nodes[v], meta

    def position_links(
        self, children: list[Node]
    ) -> tuple[list[tuple[int, int]], list[tuple[int, int, dict[str, Any]]]]:
        """:meth:`iter_links` as positions in ``children`` (this flow's children, as iterated): every
        link as a pair, in :meth:`iter_links` order, and apart (with their metadata) those made by
        :meth:`link` (the only ones that can carry a decider). What the compiler reads, without a node
        lookup, two ``id()`` calls and a metadata read per data edge."""
        pos = dict(zip(map(id, children), range(len(children)), strict=True))
        pairs: list[tuple[int, int]] = []
        manual: list[tuple[int, int, dict[str, Any]]] = []
        for u, succs in self._succ.items():
            ku = pos[u]
            for v, meta in succs.items():
                kv = pos[v]
                pairs.append((ku, kv))
                if "manual" in meta:
                    manual.append((ku, kv, meta))
        return pairs, manual

    def _ancestors(self, nid: int) -> set[int]:
        seen: set[int] = set()
        stack = list(self._pred.get(nid, ()))
        while stack:
            x = stack.pop()
            if x not in seen:
                seen.add(x)
                stack.extend(self._pred.get(x, ()))
        return seen

    @property
    def requires(self) -> frozenset[str]:
        """What the controller needs, and what each child needs that neither the controller nor a
        child ordered before it (through data edges or links) provides."""
        needed: set[str] = set()
        given: set[str] = set()
        if self.retry is not None:
            needed.update(self.retry.requires)
            given.update(self.retry.provides)
        for child in self:
            wants = [s for s in child.requires if s not in given]
            if not wants:
                continue
            before: set[str] = set()
            for a in self._ancestors(id(child)):
                before.update(self._nodes[a].provides)
            needed.update(s for s in wants if s not in before)
        return frozenset(needed)


class TargetedFlow(GraphFlow):
    """A graph flow that runs only what one child (its target) needs: the target and the children
    it depends on, through links or data, directly or not (TaskFlow's ``TargetedFlow``).

    Without a target (:meth:`reset_target`) it is a plain graph flow. The selection is made when
    the flow is iterated (so when it is compiled), from the children and links it has then.
    """

    def __init__(self, name: str, retry: Any = None) -> None:
        super().__init__(name, retry=retry)
        self._target: Node | None = None

    def set_target(self, target: Node) -> None:
        """Run only ``target`` (a child of this flow) and what it depends on."""
        if not any(target is child for child in self._children):
            raise InvalidAtomArgumentError(
                f"Node {getattr(target, 'name', target)!r} not found in targeted flow {self.name!r} "
                f"(add it before making it the target)"
            )
        self._target = target

    def reset_target(self) -> None:
        """Run every child again."""
        self._target = None

    @property
    def target(self) -> Node | None:
        return self._target

    def _selected(self) -> list[Node]:
        target = self._target
        if target is None:
            return list(self._children)
        needed = self._ancestors(id(target))
        needed.add(id(target))
        return [child for child in self._children if id(child) in needed]

    def __iter__(self) -> Iterator[Node]:
        return iter(self._selected())

    def __len__(self) -> int:
        return len(self._selected())

    def iter_links(self) -> Iterator[tuple[Node, Node, dict[str, Any]]]:
        chosen = {id(child) for child in self._selected()}
        return iter(
            [link for link in super().iter_links() if id(link[0]) in chosen and id(link[1]) in chosen]
        )


Flow = GraphFlow  # TaskFlow spelling: graph_flow.Flow
