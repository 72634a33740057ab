"""The compiler's short cuts for large flows keep the structure they short-cut.

Symbols are worked out only below a graph flow (which infers edges from them), and a linear flow's
links are taken as "each child to the next" without asking the flow, unless its class lays links
out its own way. These tests pin what those short cuts must not change.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from itertools import pairwise
from typing import Any

from flowkit import GraphFlow, LinearFlow, Task, UnorderedFlow
from flowkit.compiler import FROM_ATOM, compile_flow
from flowkit.flow import Node


class Step(Task):
    def execute(self, **kwargs: Any) -> int:
        return 1


def _edges(flow: Any) -> set[tuple[str, str]]:
    c = compile_flow(flow)
    return {(c.names[t], c.names[h]) for t in range(len(c.atoms)) for h in c.succs[t]}


def test_a_graph_flow_orders_by_symbols_provided_deep_inside_nested_linear_flows() -> None:
    deep = LinearFlow("outer").add(
        Step(name="first"), LinearFlow("inner").add(Step(name="maker", provides="x"))
    )
    user = Step(name="user", requires=["x"])
    flow = GraphFlow("g").add(user, deep, resolve_requires=False)
    c = compile_flow(flow)
    assert ("maker", "user") in _edges(flow)
    (binding,) = c.bindings[c.index["user"]]
    assert binding.kind == FROM_ATOM and c.names[binding.provider] == "maker"


def test_a_graph_flow_orders_by_symbols_required_deep_inside_nested_flows() -> None:
    needs = UnorderedFlow("u").add(LinearFlow("l").add(Step(name="user", requires=["x"])))
    flow = GraphFlow("g").add(needs, Step(name="maker", provides="x"), resolve_requires=False)
    assert ("maker", "user") in _edges(flow)


def test_linear_flows_chain_children_and_subflows_in_order() -> None:
    flow = LinearFlow("l").add(
        Step(name="a"),
        UnorderedFlow("u").add(Step(name="b"), Step(name="c")),
        Step(name="d"),
    )
    assert _edges(flow) == {("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")}


class Reversed(LinearFlow):
    """A linear flow whose class lays its links out backwards: the compiler must ask it."""

    def iter_links(self) -> Iterator[tuple[Node, Node, dict[str, Any]]]:
        for before, after in pairwise(reversed(list(self))):
            yield before, after, {}


def test_a_linear_flow_subclass_with_its_own_links_is_asked_for_them() -> None:
    flow = Reversed("r").add(Step(name="a"), Step(name="b"), Step(name="c"))
    assert _edges(flow) == {("c", "b"), ("b", "a")}


def _chain(n: int) -> LinearFlow:
    return LinearFlow("l").add(*(Step(name=f"s{i}") for i in range(n)))


def test_compiling_hands_what_it_built_to_the_oldest_gc_generation() -> None:
    gc.collect()
    assert gc.get_freeze_count() == 0
    c = compile_flow(_chain(300))
    young = {id(o) for o in gc.get_objects(generation=0)} | {id(o) for o in gc.get_objects(generation=1)}
    assert not any(id(lst) in young for lst in (*c.preds, *c.succs))
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0


def test_compiling_leaves_objects_the_program_froze_frozen() -> None:
    gc.collect()
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        assert frozen > 0
        compile_flow(_chain(50))
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()


def test_compiling_leaves_a_disabled_gc_disabled() -> None:
    gc.disable()
    try:
        compile_flow(_chain(5))
        assert not gc.isenabled()
    finally:
        gc.enable()


class SaysItNeedsX(Step):
    """Declares its requirement through its own ``requires``, not through its signature."""

    @property
    def requires(self) -> frozenset[str]:
        return frozenset({"x"})


def test_a_graph_flow_orders_by_an_atom_classes_own_requires() -> None:
    flow = GraphFlow("g").add(
        SaysItNeedsX(name="user"), Step(name="maker", provides="x"), resolve_requires=False
    )
    assert ("maker", "user") in _edges(flow)


def test_an_argument_binds_to_the_nearest_earlier_provider_not_only_a_direct_one() -> None:
    flow = LinearFlow("l").add(
        Step(name="far", provides="x"),
        Step(name="near", provides="x"),
        Step(name="between"),
        Step(name="user", requires=["x"]),
        Step(name="after", provides="x"),
    )
    c = compile_flow(flow)
    (binding,) = c.bindings[c.index["user"]]
    assert binding.kind == FROM_ATOM and c.names[binding.provider] == "near"
    assert c.keyed == [False] * len(c.atoms)


def test_keyed_marks_only_atoms_that_provide_by_key_or_index() -> None:
    flow = LinearFlow("l").add(
        Step(name="whole", provides="x"),
        Step(name="pair", provides=("a", "b")),
        Step(name="none"),
        Step(name="named", provides={"k", "m"}),
    )
    c = compile_flow(flow)
    keyed = [c.keyed[c.index[n]] for n in ("whole", "pair", "none", "named")]
    assert keyed == [False, True, False, True]
