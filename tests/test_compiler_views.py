"""The compiler without networkx: cycles found on the adjacency lists, the networkx view and the
``flowkit graph`` drawing built on demand, and both agreeing with the compiled lists."""

from __future__ import annotations

import itertools
import random
import sys
from collections.abc import Iterator
from typing import Any

import networkx as nx
import pytest

from flowkit import FunctorTask, GraphFlow, LinearFlow, UnorderedFlow, retry
from flowkit.atom import Atom
from flowkit.cli.graph import atom_graph
from flowkit.compiler import JUNCTION, JUNCTION_ATOM, compile_flow
from flowkit.exceptions import CycleError, ExecutionError
from flowkit.flow import Flow


def _task(name: str, provides: str | None = None, requires: tuple[str, ...] = ()) -> FunctorTask:
    return FunctorTask(lambda **kwargs: None, name=name, provides=provides, requires=list(requires))


def _is_rotation(found: list[str], expected: list[str]) -> bool:
    return len(found) == len(expected) and any(
        found == expected[k:] + expected[:k] for k in range(len(expected))
    )


@pytest.fixture
def shallow_stack() -> Iterator[None]:
    """A recursion limit far below the cycle lengths used, so only an iterative search passes."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(200)
    try:
        yield
    finally:
        sys.setrecursionlimit(limit)


def test_cycle_is_named_in_edge_order() -> None:
    a, b, c, d = (_task(n) for n in "abcd")
    flow = GraphFlow("g").add(d, a, b, c).link(a, b).link(b, c).link(c, a).link(c, d)
    with pytest.raises(CycleError) as info:
        compile_flow(flow)
    assert _is_rotation(info.value.cycle, ["a", "b", "c"])
    assert "-> 'a'" in str(info.value) or "-> 'b'" in str(info.value)


def test_a_long_data_cycle_is_named_whole_without_recursion(shallow_stack: None) -> None:
    n = 5_000
    tasks = [_task(f"t{i}", provides=f"v{i}", requires=(f"v{(i - 1) % n}",)) for i in range(n)]
    with pytest.raises(CycleError) as info:
        compile_flow(GraphFlow("ring").add(*tasks))
    assert _is_rotation(info.value.cycle, [f"t{i}" for i in range(n)])


def test_a_cycle_through_junctions_names_atoms_only() -> None:
    left = UnorderedFlow("left").add(*(_task(f"l{i}") for i in range(5)))
    right = UnorderedFlow("right").add(*(_task(f"r{i}") for i in range(5)))
    flow = GraphFlow("g").add(left, right).link(left, right).link(right, left)
    with pytest.raises(CycleError) as info:
        compile_flow(flow)
    cycle = info.value.cycle
    assert len(cycle) == 2 and cycle[0][0] != cycle[1][0], cycle
    assert all(name[0] in "lr" and name[1:].isdigit() for name in cycle)


def test_the_networkx_view_is_built_once_and_matches_the_lists() -> None:
    compiled = compile_flow(_random_flow(random.Random(7)))
    g = compiled.graph
    assert g is compiled.graph
    assert list(g.nodes) == compiled.names
    assert {
        (compiled.names[i], compiled.names[s]) for i in range(len(compiled.names)) for s in compiled.succs[i]
    } == set(g.edges)
    assert [g.nodes[n]["kind"] for n in compiled.names].count("junction") == compiled.kinds.count(JUNCTION)
    assert nx.is_directed_acyclic_graph(g)


def test_every_node_holds_an_atom_and_junctions_share_one_that_never_runs() -> None:
    """The engine indexes ``atoms`` by node id with no None check: a junction holds the placeholder."""
    left = UnorderedFlow("left", retry=retry.Times(attempts=2)).add(*(_task(f"l{i}") for i in range(5)))
    right = UnorderedFlow("right").add(*(_task(f"r{i}") for i in range(5)))
    compiled = compile_flow(LinearFlow("wide").add(left, right))
    assert JUNCTION in compiled.kinds
    for atom, kind in zip(compiled.atoms, compiled.kinds, strict=True):
        assert isinstance(atom, Atom)
        assert (atom is JUNCTION_ATOM) == (kind == JUNCTION)
    # the networkx view keeps showing no atom for a junction: the placeholder is internal
    for node, data in compiled.graph.nodes(data=True):
        assert (data["atom"] is None) == (data["kind"] == "junction"), node
    with pytest.raises(ExecutionError, match="junction"):
        JUNCTION_ATOM.execute()
    with pytest.raises(ExecutionError, match="junction"):
        JUNCTION_ATOM.revert()


def _contracted(g: nx.DiGraph) -> set[tuple[str, str]]:
    """The reference: junctions contracted with networkx, as ``flowkit graph`` did before."""
    g = g.copy()
    for node, kind in list(g.nodes(data="kind")):
        if kind == "junction":
            g.add_edges_from((p, s) for p in g.predecessors(node) for s in g.successors(node))
            g.remove_node(node)
    return set(g.edges)


def _random_flow(rng: random.Random, depth: int = 0, prefix: str = "f") -> Flow:
    """Nested linear/unordered/graph flows, wide enough for junctions, with retries and deciders."""
    kind = rng.choice([LinearFlow, UnorderedFlow, GraphFlow])
    flow: Any = kind(
        prefix, retry=retry.Times(attempts=2, name=f"{prefix}-retry") if rng.random() < 0.3 else None
    )
    children: list[Any] = []
    for k in range(rng.randint(2, 7)):
        name = f"{prefix}.{k}"
        if depth < 3 and rng.random() < 0.4:
            children.append(_random_flow(rng, depth + 1, name))
        else:
            children.append(_task(name))
    flow.add(*children)
    if kind is GraphFlow:
        for u, v in itertools.pairwise(children):
            if rng.random() < 0.6:
                flow.link(u, v, decider=(lambda history: True) if rng.random() < 0.3 else None)
    return flow


@pytest.mark.parametrize("seed", range(20))
def test_flowkit_graph_draws_what_the_networkx_view_holds(seed: int) -> None:
    compiled = compile_flow(_random_flow(random.Random(seed)))
    drawn = atom_graph(compiled)
    assert set(drawn.edges) == _contracted(compiled.graph)
    assert list(drawn.nodes) == [compiled.names[i] for i in compiled.atom_ids()]
    for i in compiled.atom_ids():
        assert drawn.nodes[compiled.names[i]] == compiled.graph.nodes[compiled.names[i]]["kind"]
