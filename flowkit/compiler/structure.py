"""Lay a (nested) flow out as nodes and edges: ids, names, retry scopes, links and deciders.

Structural mistakes are found here, with the atoms named: duplicate atom or subflow names,
retry controllers added as children. Each (sub)flow's children get contiguous node ids
(depth first), so a retry controller's scope is the id range after it. Two large groups
joined by a link are connected through a junction node (n + m edges instead of n x m).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Set
from itertools import compress, pairwise, repeat
from operator import attrgetter, not_
from typing import Any, cast

from flowkit.atom import Atom
from flowkit.compiler.compiled import JUNCTION, JUNCTION_ATOM, RETRY, TASK, CompiledFlow, DeciderLink
from flowkit.exceptions import DuplicateNameError, MisplacedRetryError
from flowkit.flow import Flow, Node
from flowkit.patterns.graph_flow import GraphFlow
from flowkit.patterns.linear_flow import LinearFlow
from flowkit.retry import Retry

_JUNCTION_THRESHOLD = 16

_Built = tuple[int, int, list[int], list[int], Collection[str], Collection[str]]
"""One child as built: (first id, end id, sources, sinks, symbols provided, symbols required). The
symbols of an atom are read-only views of its own maps (may repeat a symbol); a subflow's are sets."""

_NO_SYMBOLS: frozenset[str] = frozenset()
"""The symbols of a child whose symbols nobody reads (no graph flow above it infers edges from them)."""


class Structure:
    """Builds the nodes and edges of a :class:`CompiledFlow` from its flow; ``build_flow`` is the entry."""

    def __init__(self, flow: Flow) -> None:
        self.c = CompiledFlow(flow=flow)
        self.flow_names: set[str] = set()

    # -- nodes and edges --------------------------------------------------------------------------

    def new_node(self, atom: Atom, kind: int, retry: int, name: str | None = None) -> int:
        c = self.c
        nid = len(c.atoms)
        node_name = name if name is not None else atom.name
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
        if len(sinks) == 1 and len(sources) == 1:  # the common case (a chain of atoms): one edge
            t, h = sinks[0], sources[0]
            c.succs[t].append(h)
            c.preds[h].append(t)
            return
        if len(sinks) * len(sources) > _JUNCTION_THRESHOLD and len(sinks) > 1 and len(sources) > 1:
            j = self.new_node(JUNCTION_ATOM, JUNCTION, retry, name=f"<junction {len(c.atoms)}>")
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

    def build_flow(
        self, flow: Flow, retry: int, symbols: bool = False
    ) -> tuple[list[int], list[int], Collection[str], Collection[str]]:
        """Add a (sub)flow: its controller first, then its children, then the edges between them.

        Return (sources, sinks, symbols provided, symbols required from outside). The symbols are
        worked out only when ``symbols`` is set (a graph flow above infers edges from them); the
        children's, only then or when this is a graph flow. Otherwise nobody reads them and they are
        empty, which saves building a few sets per atom on the large linear and unordered flows.
        """
        c = self.c
        if flow.name in self.flow_names:
            raise DuplicateNameError(flow.name, f"flow {c.flow.name!r} (two subflows share it)")
        self.flow_names.add(flow.name)
        r = -1 if flow.retry is None else self.new_node(flow.retry, RETRY, retry)
        inner = retry if r < 0 else r
        children = list(flow)
        # A plain graph flow whose data edges hold every edge that inferring them would give: taken as
        # they are, so its children's symbols are needed only by a parent that reads them.
        complete = type(flow) is GraphFlow and flow.data_edges_complete
        need = symbols or (isinstance(flow, GraphFlow) and not complete)
        linear = type(flow).iter_links is LinearFlow.iter_links
        if complete and cast(GraphFlow, flow).data_edges_chain:
            linear = True  # each child after the one before: a linear flow's edges, in the same order
        if not need and (linear or complete) and self.add_atoms(children, inner, linear):
            lo = len(c.atoms) - len(children)
            if linear:
                sources, sinks = [lo], [len(c.atoms) - 1]
            else:
                sources, sinks = self.position_edges(cast(GraphFlow, flow), children, lo)  # complete
            if r >= 0:
                sources, sinks = self.close_scope(r, sources, sinks, inner)
            return sources, sinks, _NO_SYMBOLS, _NO_SYMBOLS
        built: list[_Built] = []
        atoms, names, kinds, index = c.atoms, c.names, c.kinds, c.index
        preds, succs, retry_of = c.preds, c.succs, c.retry_of
        for child in children:
            lo = len(c.atoms)
            if isinstance(child, Atom):
                if isinstance(child, Retry):
                    raise MisplacedRetryError(
                        f"retry controller {child.name!r} must be given as a flow's retry=, "
                        "not added as a child"
                    )
                # new_node(child, TASK, inner), inline: this runs once per atom of every flow
                name = child.name
                if name in index:
                    raise DuplicateNameError(name, f"flow {c.flow.name!r}")
                index[name] = lo
                atoms.append(child)
                names.append(name)
                kinds.append(TASK)
                preds.append([])
                succs.append([])
                retry_of.append(inner)
                ends = [lo]  # its sources and its sinks (never mutated)
                if need:
                    # read only (by inferred_edges and _symbols): no copies; ``save_as`` holds the
                    # symbols of ``provides`` (a dict iterates them without a call into Names)
                    if _PLAIN_CLASSES.get(type(child)) and not (
                        child.revert_required_rebind or child.optional_rebind or child.revert_optional_rebind
                    ):
                        needs: Collection[str] = child.required_rebind.values()  # _needs, inline
                    else:
                        needs = _needs(child)
                    built.append((lo, lo + 1, ends, ends, child.save_as, needs))
                else:
                    built.append((lo, lo + 1, ends, ends, _NO_SYMBOLS, _NO_SYMBOLS))
            else:
                src, snk, prov, req = self.build_flow(child, inner, need)
                built.append((lo, len(c.atoms), src, snk, prov, req))
        manual: list[tuple[int, int]] = []
        if type(flow).iter_links is LinearFlow.iter_links:
            # each child to the next, no decider, nothing manual: the pairs without asking the flow
            edges: Iterable[tuple[int, int]] = pairwise(range(len(children)))
        else:
            links = self.link_edges(flow, children, built, manual)
            if complete:  # each pair once already (position_links), and nothing to infer
                edges = links
            else:
                if isinstance(flow, GraphFlow):
                    links.extend(self.inferred_edges(flow, built, manual))
                edges = dict.fromkeys(links)  # each ordered pair once, first come first
        sources, sinks = self.connect_children(edges, built, inner)
        if r >= 0:
            sources, sinks = self.close_scope(r, sources, sinks, inner)
        if not symbols:  # the parent does not read them (this flow's own children's were read above)
            return sources, sinks, _NO_SYMBOLS, _NO_SYMBOLS
        provides, requires = _symbols(flow, built)
        return sources, sinks, provides, requires

    def add_atoms(self, children: list[Node], retry: int, chain: bool) -> bool:
        """A linear or plain graph flow's children when they are all atoms with new names (the usual
        large flow): laid out in bulk, chained one after the other when ``chain``, without
        ``build_flow``'s per-child tuple and ``connect_children``'s per-edge checks (linear: 8.6k -> 2.7k
        instructions per atom). False, adding nothing, for any other children (none, a subflow, a retry
        controller, a name used already): ``build_flow`` then handles them one by one, and names the
        mistake."""
        classes = set(map(type, children))
        if not children or not all(issubclass(k, Atom) and not issubclass(k, Retry) for k in classes):
            return False
        new_names = list(map(_name_of, children))
        c = self.c
        index = c.index
        if len(set(new_names)) != len(new_names) or not index.keys().isdisjoint(new_names):
            return False
        lo, hi = len(c.atoms), len(c.atoms) + len(children)
        index.update(zip(new_names, range(lo, hi), strict=True))
        c.atoms.extend(children)  # type: ignore[arg-type]  # all atoms: checked above
        c.names.extend(new_names)
        c.kinds.extend(repeat(TASK, len(children)))
        c.retry_of.extend(repeat(retry, len(children)))
        if chain:
            c.preds.append([])
            c.preds.extend([[k] for k in range(lo, hi - 1)])  # atom k + 1 after atom k
            c.succs.extend([[k] for k in range(lo + 1, hi)])
            c.succs.append([])
        else:
            c.preds.extend([[] for _ in children])
            c.succs.extend([[] for _ in children])
        return True

    def position_edges(self, flow: GraphFlow, children: list[Node], lo: int) -> tuple[list[int], list[int]]:
        """The edges of a plain graph flow whose data edges are complete (no link, so no decider; each
        pair once) between its atoms laid out from ``lo``; its sources and sinks."""
        preds, succs = self.c.preds, self.c.succs
        for ku, kv in flow.position_links(children)[0]:
            succs[lo + ku].append(lo + kv)
            preds[lo + kv].append(lo + ku)
        nodes = range(lo, lo + len(children))
        return list(compress(nodes, map(not_, preds[lo:]))), list(compress(nodes, map(not_, succs[lo:])))

    def link_edges(
        self, flow: Flow, children: list[Node], built: list[_Built], manual: list[tuple[int, int]]
    ) -> list[tuple[int, int]]:
        """The flow's own links as (child, child) positions (those made by ``link()`` also go to
        ``manual``); a link's decider guards the head's sources."""
        out: list[tuple[int, int]]
        marked: list[tuple[int, int, dict[str, Any]]]
        if isinstance(flow, GraphFlow) and type(flow).iter_links is GraphFlow.iter_links:
            out, marked = flow.position_links(children)  # a plain graph flow: its links by position
        else:
            pos = {id(child): k for k, child in enumerate(children)}
            out, marked = [], []
            for u, v, meta in flow.iter_links():
                ku, kv = pos[id(u)], pos[id(v)]
                out.append((ku, kv))
                if meta.get("manual") or meta.get("decider") is not None:
                    marked.append((ku, kv, meta))
        siblings: frozenset[int] | None = None
        for ku, kv, meta in marked:
            if meta.get("manual"):
                manual.append((ku, kv))
            decider = meta.get("decider")
            if decider is not None and built[kv][2]:
                if siblings is None:
                    siblings = frozenset(
                        b[0]
                        for child, b in zip(children, built, strict=True)
                        if isinstance(child, Atom) and not isinstance(child, Retry)
                    )
                link = DeciderLink(
                    siblings=siblings,
                    decider=decider,
                    depth=meta["depth"],
                    history=range(built[ku][0], built[ku][1]),
                    target=range(built[kv][0], built[kv][1]),
                    scope=range(built[0][0], built[-1][1]),
                    label=_link_label(children[ku], children[kv]),
                )
                for entry in built[kv][2]:
                    self.c.deciders.setdefault(entry, []).append(link)
        return out

    def connect_children(
        self, edges: Iterable[tuple[int, int]], built: list[_Built], retry: int
    ) -> tuple[list[int], list[int]]:
        """Connect the ordered pairs of children (each given once); return the flow's sources and sinks.

        An empty subflow has no atom to order, but it still passes the order on: in ``a, empty, b``, ``b``
        runs after ``a`` (edges through empty children are bridged first)."""
        if any(not b[2] for b in built):
            edges = _bridge_empty(edges, {k for k, b in enumerate(built) if not b[2]})
        has_pred = [False] * len(built)
        has_succ = [False] * len(built)
        preds, succs = self.c.preds, self.c.succs
        for ku, kv in edges:
            sinks, sources = built[ku][3], built[kv][2]
            if not sinks or not sources:
                continue  # an empty subflow orders nothing
            has_succ[ku] = True
            has_pred[kv] = True
            if len(sinks) == 1 and len(sources) == 1:  # atom to atom (``connect``'s first case, inline)
                t, h = sinks[0], sources[0]
                succs[t].append(h)
                preds[h].append(t)
            else:
                self.connect(sinks, sources, retry)
        sources = [s for k, b in enumerate(built) if not has_pred[k] for s in b[2]]
        sinks = [s for k, b in enumerate(built) if not has_succ[k] for s in b[3]]
        return sources, sinks

    def close_scope(
        self, r: int, sources: list[int], sinks: list[int], retry: int
    ) -> tuple[list[int], list[int]]:
        """Controller ``r`` runs before its scope (the ids added since it): it becomes the flow's source."""
        self.c.scope_end[r] = len(self.c.atoms)
        if sources:
            self.connect([r], sources, retry)
        return [r], sinks or [r]

    def inferred_edges(
        self, flow: GraphFlow, built: list[_Built], links: list[tuple[int, int]]
    ) -> list[tuple[int, int]]:
        """Graph flows: a child runs after each sibling providing a symbol it requires, unless links
        made with ``link()`` already run that sibling after it (then the sibling is a later provider,
        as in ``a -> b -> c`` where each reads and writes one symbol). Edges ``add()`` made from
        data do not count: a cycle through data is still refused."""
        by_symbol: dict[str, list[int]] = {}
        for k, b in enumerate(built):
            for symbol in b[4]:
                found = by_symbol.get(symbol)
                if found is None:  # most symbols have one provider: no empty list made per symbol
                    by_symbol[symbol] = [k]
                else:
                    found.append(k)
        after: dict[int, list[int]] = {}
        for ku, kv in links:
            after.setdefault(ku, []).append(kv)
        reached: dict[int, set[int]] = {}
        out = []
        for k, b in enumerate(built):
            for symbol in b[5]:
                for p in by_symbol.get(symbol, ()):
                    if p != k and not (after and p in _reach(after, k, reached)):
                        out.append((p, k))
        return out


_name_of = attrgetter("name")


def _link_label(u: Node, v: Node) -> str:
    return f"{getattr(u, 'name', u)!r} -> {getattr(v, 'name', v)!r}"


_PLAIN = (Atom.requires, Atom.optional, Atom.revert_optional)
_PLAIN_CLASSES: dict[type, bool] = {}
"""Per atom class: does it keep Atom's ``requires``/``optional``/``revert_optional`` (see :func:`_needs`)."""


def _needs(atom: Atom) -> Collection[str]:
    """``atom.requires | atom.optional | atom.revert_optional``, read straight from the rebind maps
    those properties are made of (unless its class defines them its own way); a symbol may repeat.

    Most atoms bind execute's required arguments only: their view, with no set built (a set per atom
    cost about as much as the rest of a graph flow's compile of that atom)."""
    cls = type(atom)
    plain = _PLAIN_CLASSES.get(cls)
    if plain is None:  # asked once per class, not per atom
        plain = _PLAIN_CLASSES[cls] = (cls.requires, cls.optional, cls.revert_optional) == _PLAIN
    if not plain:
        return atom.requires | atom.optional | atom.revert_optional
    if not (atom.revert_required_rebind or atom.optional_rebind or atom.revert_optional_rebind):
        return atom.required_rebind.values()
    return (
        *atom.required_rebind.values(),
        *atom.revert_required_rebind.values(),
        *atom.optional_rebind.values(),
        *atom.revert_optional_rebind.values(),
    )


def _reach(after: dict[int, list[int]], start: int, memo: dict[int, set[int]]) -> set[int]:
    """Children the links run after ``start`` (remembered per start)."""
    found = memo.get(start)
    if found is None:
        found = set()
        stack = list(after.get(start, ()))
        while stack:
            x = stack.pop()
            if x not in found:
                found.add(x)
                stack.extend(after.get(x, ()))
        memo[start] = found
    return found


def _symbols(flow: Flow, built: list[_Built]) -> tuple[Set[str], Set[str]]:
    """What a flow provides, and what it requires from outside (its controller's included)."""
    provides: set[str] = set()
    requires: set[str] = set()
    if flow.retry is not None:
        provides.update(flow.retry.provides)
        requires.update(flow.retry.requires | flow.retry.optional | flow.retry.revert_optional)
    for b in built:
        provides.update(b[4])
    for b in built:
        requires.update(b[5])
    requires -= provides
    return provides, requires


def _bridge_empty(edges: Iterable[tuple[int, int]], empty: set[int]) -> list[tuple[int, int]]:
    """The edges between children with atoms, plus one from each predecessor of an empty child (found
    through chains of empty children) to each of its successors: the order an empty subflow carries."""
    pairs = list(edges)
    after: dict[int, list[int]] = {}
    before: dict[int, list[int]] = {}
    for u, v in pairs:
        after.setdefault(u, []).append(v)
        before.setdefault(v, []).append(u)

    def reach(adjacent: dict[int, list[int]], start: int) -> list[int]:
        found: list[int] = []
        seen, todo = {start}, [start]
        while todo:
            for k in adjacent.get(todo.pop(), ()):
                if k not in seen:
                    seen.add(k)
                    (todo if k in empty else found).append(k)
        return found

    out = [(u, v) for u, v in pairs if u not in empty and v not in empty]
    for e in empty:
        out.extend((u, v) for u in reach(before, e) for v in reach(after, e))
    return list(dict.fromkeys(out))
