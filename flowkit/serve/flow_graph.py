"""A saved flow's graph for the console: nodes, edges and nested flows as groups.

The database keeps atoms, not links. When the flow detail names its factory (``meta["factory"]``,
as every posted job's does), the flow is rebuilt and compiled, which gives the real DAG and its
nesting; compiled graphs are cached per factory and arguments. When it names none, or the factory
cannot be imported here, the graph is derived from the saved atoms alone (in their compiled order,
no edges) and :attr:`Graph.source` says so, with the reason in :attr:`Graph.note`.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

from flowkit.atom import Atom
from flowkit.cli.graph import atom_graph
from flowkit.compiler import compile_flow
from flowkit.exceptions import FlowkitError
from flowkit.factory import FactoryDetails, check_allowed
from flowkit.flow import Flow
from flowkit.persistence.models import FlowDetail

__all__ = ["Graph", "GraphEdge", "GraphGroup", "GraphNode", "graph_of"]

_CACHE_SIZE = 64


@dataclass(frozen=True)
class GraphNode:
    """One atom; ``group`` is the id of the innermost (sub)flow holding it."""

    name: str
    kind: str
    group: str | None


@dataclass(frozen=True)
class GraphEdge:
    """``source`` runs before ``target``; ``decider`` names the decider guarding the link, if any."""

    source: str
    target: str
    decider: str | None = None


@dataclass(frozen=True)
class GraphGroup:
    """A (sub)flow: ``id`` is its path of flow names joined by ``/``; ``parent`` the enclosing one."""

    id: str
    name: str
    pattern: str
    parent: str | None
    retry: str | None


@dataclass(frozen=True)
class Graph:
    """What the console draws. ``source`` is "factory" (compiled) or "atoms" (derived, no edges)."""

    source: str
    nodes: list[GraphNode] = field(default_factory=list)
    edges: list[GraphEdge] = field(default_factory=list)
    groups: list[GraphGroup] = field(default_factory=list)
    note: str | None = None


_cache: OrderedDict[str, Graph] = OrderedDict()
_lock = threading.Lock()


def graph_of(fd: FlowDetail, allow: Iterable[str] | None = None) -> Graph:
    """The graph of ``fd``'s flow; see the module docstring. Never raises for a flow it cannot build."""
    try:
        details = FactoryDetails.from_flow_detail(fd)
    except FlowkitError as exc:
        return _derived(fd, f"its factory record cannot be read: {exc}")
    if details is None:
        return _derived(fd, "the flow detail names no factory, so its links are unknown")
    try:
        check_allowed(details.name, allow)  # before the cache: what one caller may not build, none sees
    except FlowkitError as exc:
        return _derived(fd, str(exc))
    key = json.dumps([details.name, list(details.args), dict(details.kwargs)], sort_keys=True, default=str)
    with _lock:
        found = _cache.get(key)
        if found is not None:
            _cache.move_to_end(key)
            return found
    try:
        graph = compiled_graph(details.build(allow))
    except Exception as exc:  # a factory is user code: whatever it raises, show the atoms instead
        return _derived(fd, f"factory {details.name!r} could not be built here: {type(exc).__name__}: {exc}")
    with _lock:
        _cache[key] = graph
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return graph


def _derived(fd: FlowDetail, why: str) -> Graph:
    atoms = sorted(fd, key=lambda ad: (ad.position or 0, ad.name))
    nodes = [GraphNode(ad.name, ad.kind, None) for ad in atoms]
    return Graph("atoms", nodes, note=f"Drawn from the saved atoms only: {why}.")


def compiled_graph(flow: Flow) -> Graph:
    """The compiled DAG of ``flow`` with junctions contracted, and its nested flows as groups."""
    compiled = compile_flow(flow)
    groups: list[GraphGroup] = []
    group_of: dict[str, str] = {}
    _walk(compiled.flow, None, groups, group_of)
    g = atom_graph(compiled)  # the same contracted graph `flowkit graph` draws
    nodes = [GraphNode(name, kind, group_of.get(name)) for name, kind in g.nodes.items()]
    edges = g.edges
    return Graph("factory", nodes, [GraphEdge(u, v, d) for (u, v), d in edges.items()], groups)


def _walk(flow: Flow, parent: str | None, groups: list[GraphGroup], group_of: dict[str, str]) -> None:
    gid = flow.name if parent is None else f"{parent}/{flow.name}"
    retry = flow.retry.name if flow.retry is not None else None
    groups.append(GraphGroup(gid, flow.name, type(flow).__name__, parent, retry))
    if retry is not None:
        group_of[retry] = gid
    for child in flow:
        if isinstance(child, Flow):
            _walk(child, gid, groups, group_of)
        elif isinstance(child, Atom):
            group_of[child.name] = gid
