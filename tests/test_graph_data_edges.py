"""A graph flow whose data edges are complete is compiled from them alone: the same DAG as inferring.

``GraphFlow.data_edges_complete`` lets the compiler skip inferring a plain graph flow's edges from its
children's symbols. These tests build random graph flows and compile each twice, once as it is and
once with the flag cleared (the inferring path), and ask for the same edges, order and bindings; and
they check that whatever can make the data edges incomplete clears the flag.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from flowkit import GraphFlow, LinearFlow, Task
from flowkit.compiler import CompiledFlow, compile_flow
from flowkit.exceptions import AmbiguousProviderError, FlowkitError


class Needs(Task):
    """Requires what ``requires`` says, provides ``provides``."""

    def execute(self, **kwargs: Any) -> None:
        return None


class Optional(Task):
    """One optional argument, bound to ``symbol``."""

    def __init__(self, name: str, symbol: str, provides: Any = None) -> None:
        super().__init__(name=name, provides=provides, rebind={"opt": symbol})

    def execute(self, opt: Any = None) -> None:
        return None


def _shape(c: CompiledFlow) -> tuple[Any, ...]:
    bindings = [[(b.arg, b.symbol, b.kind, b.provider, b.key) for b in bs] for bs in c.bindings]
    return (c.names, c.preds, c.succs, c.order, bindings)


def _both_ways(flow: GraphFlow) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """The flow compiled as it is, and with the shortcut turned off (edges inferred again)."""
    fast = _shape(compile_flow(flow))
    flow._data_complete = False
    slow = _shape(compile_flow(flow))
    return fast, slow


def _random_flow(rng: random.Random, n: int, symbols: int) -> GraphFlow:
    flow = GraphFlow("g")
    for i in range(n):
        requires = rng.sample([f"s{k}" for k in range(symbols)], rng.randint(0, min(2, symbols)))
        chosen = rng.sample(range(symbols), rng.randint(0, min(2, symbols)))
        provides = [f"s{k}" for k in chosen if f"s{k}" not in requires]
        task = Needs(name=f"t{i}", requires=requires, provides=provides or None)
        try:
            flow.add(task)
        except FlowkitError:  # ambiguous or cyclic: refused, the flow is left as it was
            continue
    return flow


def _compiled_the_same(shortcut: str, max_atoms: int, max_symbols: int) -> int:
    """Compile 400 random graph flows that take ``shortcut`` (a GraphFlow property) both ways, asserting
    the same result; how many took it."""
    taken = 0
    for seed in range(400):
        rng = random.Random(seed)
        flow = _random_flow(rng, rng.randint(1, max_atoms), rng.randint(1, max_symbols))
        if not getattr(flow, shortcut):
            continue
        taken += 1
        fast, slow = _both_ways(flow)
        assert fast == slow, f"seed {seed}"
    return taken


def test_random_graph_flows_compile_the_same_without_inferring() -> None:
    # the shortcut was taken often enough to mean something
    assert _compiled_the_same("data_edges_complete", 12, 6) > 100


def test_a_chain_stays_complete_and_compiles_the_same() -> None:
    flow = GraphFlow("chain").add(
        *(Needs(name=f"t{i}", provides=f"v{i}", requires=[f"v{i - 1}"] if i else []) for i in range(50))
    )
    assert flow.data_edges_complete
    assert flow.data_edges_chain
    fast, slow = _both_ways(flow)
    assert fast == slow


@pytest.mark.parametrize(
    ("shape", "chain"),
    [
        ([("a", "x", []), ("b", "y", ["x"]), ("c", "z", ["x"])], False),  # c after a, not after b
        ([("a", "x", []), ("b", "y", ["x"]), ("c", "z", [])], False),  # c after nothing
        ([("a", "x", []), ("b", "y", ["x", "w"]), ("c", "w", [])], False),  # c provides what b requires
        ([("a", "x", []), ("b", "y", []), ("c", "z", ["x", "y"])], False),  # c after two
        ([("a", "x", ["q"]), ("b", "y", ["x", "q"])], True),  # symbols from the store do not matter
    ],
)
def test_only_a_chain_is_laid_out_as_one(shape: list[tuple[str, str, list[str]]], chain: bool) -> None:
    flow = GraphFlow("g").add(*(Needs(name=n, provides=p, requires=r) for n, p, r in shape))
    assert flow.data_edges_complete
    assert flow.data_edges_chain is chain
    fast, slow = _both_ways(flow)
    assert fast == slow


def test_random_chains_compile_the_same_as_inferred() -> None:
    assert _compiled_the_same("data_edges_chain", 8, 3) > 20


def test_a_second_provider_added_later_clears_it() -> None:
    # b is met by a when p2 comes: add() leaves p2 unlinked to b, compiling infers p2 -> b
    flow = GraphFlow("g").add(Needs(name="a", provides="x"), Needs(name="b", requires=["x"]))
    assert flow.data_edges_complete
    flow.add(Needs(name="p2", provides="x"))
    assert not flow.data_edges_complete
    with pytest.raises(AmbiguousProviderError):  # found only by inferring p2 -> b (as before the shortcut)
        compile_flow(flow)


def test_optional_symbols_clear_it() -> None:
    flow = GraphFlow("g").add(Needs(name="a", provides="x"), Optional("b", "x"))
    assert not flow.data_edges_complete
    compiled = compile_flow(flow)
    assert compiled.index["a"] in compiled.preds[compiled.index["b"]]


@pytest.mark.parametrize("keyword", ["resolve_requires", "resolve_existing"])
def test_an_add_without_resolving_clears_it(keyword: str) -> None:
    flow = GraphFlow("g").add(Needs(name="a", provides="x"))
    flow.add(Needs(name="b", requires=["x"]), **{keyword: False})
    assert not flow.data_edges_complete
    compiled = compile_flow(flow)
    assert compiled.index["a"] in compiled.preds[compiled.index["b"]]


def test_links_subflows_and_refused_adds_clear_it() -> None:
    a, b = Needs(name="a"), Needs(name="b")
    linked = GraphFlow("linked").add(a, b)
    assert linked.data_edges_complete
    linked.link(a, b)
    assert not linked.data_edges_complete

    nested = GraphFlow("nested").add(LinearFlow("inner").add(Needs(name="c")))
    assert not nested.data_edges_complete

    refused = GraphFlow("refused").add(Needs(name="p1", provides="x"), Needs(name="p2", provides="x"))
    assert refused.data_edges_complete
    with pytest.raises(FlowkitError):
        refused.add(Needs(name="r", requires=["x"]))  # two providers: ambiguous
    assert not refused.data_edges_complete
