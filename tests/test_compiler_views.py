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

from flowkit import FunctorTask, GraphFlow, LinearFlow, UnorderedFlow, engines, retry
from flowkit.atom import Atom
from flowkit.cli.graph import atom_graph
from flowkit.compiler import JUNCTION, JUNCTION_ATOM, compile_flow
from flowkit.exceptions import CycleError, ExecutionError, MissingRequirementError
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


def test_data_against_the_links_is_a_missing_requirement_not_a_cycle() -> None:
    # As in TaskFlow, an atom reads only what atoms that run before it provide: c provides x, but the
    # links run a before c, so a's x is missing (validate names both), not a cycle a -> b -> c -> a.
    a, b, d = _task("a", requires=("x",)), _task("b"), _task("d")
    c = _task("c", provides="x")
    flow = GraphFlow("g").add(d, a, b).link(a, b)
    flow.add(c, resolve_existing=False).link(b, c).link(c, d)
    compile_flow(flow)
    with pytest.raises(MissingRequirementError, match=r"'a' requires 'x'.*provided by 'c'"):
        engines.load(flow).validate()


def test_a_long_data_cycle_is_named_whole_without_recursion(shallow_stack: None) -> None:
    n = 5_000
    tasks = [_task(f"t{i}", provides=f"v{i}", requires=(f"v{(i - 1) % n}",)) for i in range(n)]
    with pytest.raises(CycleError) as info:
        compile_flow(GraphFlow("ring").add(*tasks))
    assert _is_rotation(info.value.cycle, [f"t{i}" for i in range(n)])


def test_data_across_nested_flows_against_a_link_is_a_missing_requirement() -> None:
    left = UnorderedFlow("left").add(*(_task(f"l{i}") for i in range(5)))
    right = UnorderedFlow("right").add(*(_task(f"r{i}") for i in range(4)), _task("r4", provides="x"))
    left.add(_task("l5", requires=("x",)))
    # right provides x to left, but the link runs left first: l5 cannot read it (TaskFlow's scoping)
    flow = GraphFlow("g").add(left).add(right, resolve_existing=False).link(left, right)
    compile_flow(flow)
    with pytest.raises(MissingRequirementError, match=r"'l5' requires 'x'.*provided by 'r4'"):
        engines.load(flow).validate()


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
