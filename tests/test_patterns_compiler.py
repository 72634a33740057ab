"""Patterns, the compiler's structural checks, and deciders on graph-flow links."""

from __future__ import annotations

import itertools
from typing import Any

import networkx as nx
import pytest

import flowkit
from flowkit import FunctorTask, GraphFlow, LinearFlow, UnorderedFlow, engines, retry
from flowkit.compiler import compile_flow
from flowkit.exceptions import (
    AmbiguousProviderError,
    CompilationError,
    CycleError,
    DuplicateNameError,
    FlowkitError,
    InvalidFlowError,
    MissingRequirementError,
)
from flowkit.patterns import graph_flow, linear_flow, unordered_flow
from flowkit.states import AtomState, FlowState


class Recorder:
    """Makes tasks that append their name to ``log`` when they run (and ``-name`` on revert)."""

    def __init__(self) -> None:
        self.log: list[str] = []

    def task(
        self, name: str, provides: Any = None, requires: tuple[str, ...] = (), value: Any = None
    ) -> FunctorTask:
        def execute(**kwargs: Any) -> Any:
            self.log.append(name)
            return value if value is not None else name

        def revert(**kwargs: Any) -> None:
            self.log.append(f"-{name}")

        return FunctorTask(execute, name=name, provides=provides, requires=list(requires), revert=revert)


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


# -- patterns ----------------------------------------------------------------------------------------


def test_taskflow_module_aliases_are_the_primary_classes():
    assert linear_flow.Flow is flowkit.LinearFlow
    assert unordered_flow.Flow is flowkit.UnorderedFlow
    assert graph_flow.Flow is flowkit.GraphFlow
    assert isinstance(linear_flow.Flow("x"), flowkit.Flow)


def test_linear_flow_runs_children_in_add_order(rec):
    flow = LinearFlow("f").add(rec.task("c"), rec.task("a"), rec.task("b"))
    engines.run(flow)
    assert rec.log == ["c", "a", "b"]


def test_unordered_flow_runs_every_child(rec):
    flow = UnorderedFlow("u").add(*(rec.task(f"t{i}") for i in range(5)))
    engines.run(flow)
    assert sorted(rec.log) == [f"t{i}" for i in range(5)]


def test_nesting_four_deep_passes_values_across_levels(rec):
    deepest = GraphFlow("l4").add(
        rec.task("g2", provides="g2out", requires=("g1out",)),
        rec.task("g1", provides="g1out", requires=("seed",)),
    )
    level3 = LinearFlow("l3").add(rec.task("l3a", provides="seed", requires=("top",)), deepest)
    level2 = UnorderedFlow("l2").add(level3, rec.task("side", provides="side"))
    level1 = LinearFlow("l1").add(
        rec.task("first", provides="top"),
        level2,
        rec.task("last", requires=("g2out", "side")),
    )
    root = LinearFlow("root").add(level1)
    out = engines.run(root)
    assert out["g2out"] == "g2"
    order = rec.log
    assert order[0] == "first"
    assert order[-1] == "last"
    assert order.index("l3a") < order.index("g1") < order.index("g2")
    assert sorted(order) == sorted(["first", "l3a", "g1", "g2", "side", "last"])


def test_graph_flow_orders_by_data_whatever_the_add_order(rec):
    for perm in itertools.permutations(["a", "b", "c"]):
        rec.log.clear()
        tasks = {
            "a": rec.task("a", provides="x"),
            "b": rec.task("b", provides="y", requires=("x",)),
            "c": rec.task("c", requires=("y",)),
        }
        engines.run(GraphFlow("g").add(*(tasks[n] for n in perm)))
        assert rec.log == ["a", "b", "c"], perm


def test_graph_link_adds_order(rec):
    a, b = rec.task("a"), rec.task("b")
    g = GraphFlow("g").add(a, b).link(b, a)
    engines.run(g)
    assert rec.log == ["b", "a"]
    assert ("b", "a") in engines.load(g).compilation.graph.edges


def test_graph_link_between_subflows(rec):
    s1 = LinearFlow("s1").add(rec.task("s1a"), rec.task("s1b"))
    s2 = UnorderedFlow("s2").add(rec.task("s2a"), rec.task("s2b"))
    g = GraphFlow("g").add(s2, s1).link(s1, s2)
    engines.run(g)
    assert rec.log[:2] == ["s1a", "s1b"]
    assert sorted(rec.log[2:]) == ["s2a", "s2b"]


def test_link_to_a_non_child_is_rejected(rec):
    a, stranger = rec.task("a"), rec.task("stranger")
    g = GraphFlow("g").add(a)
    with pytest.raises(InvalidFlowError, match="stranger"):
        g.link(a, stranger)


def test_link_with_unknown_decider_depth_is_rejected(rec):
    a, b = rec.task("a"), rec.task("b")
    g = GraphFlow("g").add(a, b)
    with pytest.raises(InvalidFlowError, match="decider_depth"):
        g.link(a, b, decider=lambda history: True, decider_depth="SIDEWAYS")


# -- structural errors --------------------------------------------------------------------------------


def _running_events(engine: engines.Engine) -> list[str]:
    started: list[str] = []
    engine.atom_notifier.register(
        AtomState.RUNNING, lambda state, details: started.append(details["atom_name"])
    )
    return started


def test_cycle_from_data_raises_naming_the_atoms_before_anything_runs(rec):
    # add() refuses this cycle itself; resolve_existing=False skips that check, and the compiler,
    # which orders by data whatever add() was told, must still find it.
    g = GraphFlow("g").add(rec.task("free"), rec.task("a", provides="x", requires=("y",)))
    g.add(rec.task("b", provides="y", requires=("x",)), resolve_existing=False)
    engine = engines.load(g)
    started = _running_events(engine)
    with pytest.raises(CycleError) as info:
        engine.run()
    assert set(info.value.cycle) == {"a", "b"}
    assert "'a'" in str(info.value)
    assert "'b'" in str(info.value)
    assert "free" not in info.value.cycle
    assert rec.log == []
    assert started == []
    assert isinstance(info.value, CompilationError)
    assert isinstance(info.value, FlowkitError)


def test_cycle_from_links_raises_at_link_and_leaves_the_flow_as_it_was(rec):
    a, b, c = rec.task("a"), rec.task("b"), rec.task("c")
    g = GraphFlow("g").add(a, b, c).link(a, b).link(b, c)
    with pytest.raises(CycleError) as info:
        g.link(c, a)
    assert set(info.value.cycle) == {"a", "b", "c"}
    assert [(u.name, v.name) for u, v, _ in g.iter_links()] == [("a", "b"), ("b", "c")]
    engines.run(g)
    assert rec.log == ["a", "b", "c"]


def test_cycle_between_link_and_data(rec):
    a = rec.task("a", provides="x")
    b = rec.task("b", requires=("x",))
    g = GraphFlow("g").add(a, b)
    with pytest.raises(CycleError) as info:
        g.link(b, a)
    assert set(info.value.cycle) == {"a", "b"}
    assert rec.log == []


def test_missing_requirement_names_atom_and_symbol_before_anything_runs(rec):
    flow = LinearFlow("f").add(rec.task("first"), rec.task("needy", requires=("ghost",)))
    engine = engines.load(flow)
    started = _running_events(engine)
    engine.compile()
    engine.prepare()
    with pytest.raises(MissingRequirementError) as info:
        engine.validate()
    assert info.value.atom == "needy"
    assert info.value.symbol == "ghost"
    assert "needy" in str(info.value)
    assert "ghost" in str(info.value)
    with pytest.raises(MissingRequirementError):
        engine.run()
    assert rec.log == []
    assert started == []
    assert engine.storage.get_atom_state("first") is AtomState.PENDING


def test_missing_requirement_satisfied_by_store(rec):
    flow = LinearFlow("f").add(rec.task("needy", requires=("ghost",)))
    engines.run(flow, store={"ghost": 1})
    assert rec.log == ["needy"]


def test_requirement_provided_only_after_its_user_is_missing(rec):
    flow = LinearFlow("f").add(rec.task("user", requires=("x",)), rec.task("late", provides="x"))
    with pytest.raises(MissingRequirementError) as info:
        engines.run(flow)
    assert info.value.atom == "user"
    assert "late" in str(info.value)
    assert rec.log == []


def test_ambiguous_unordered_providers_name_both(rec):
    flow = LinearFlow("f").add(
        UnorderedFlow("u").add(rec.task("p1", provides="x"), rec.task("p2", provides="x")),
        rec.task("consumer", requires=("x",)),
    )
    engine = engines.load(flow)
    with pytest.raises(AmbiguousProviderError) as info:
        engine.run()
    assert sorted(info.value.providers) == ["p1", "p2"]
    assert info.value.atom == "consumer"
    assert info.value.symbol == "x"
    for word in ("p1", "p2", "consumer", "'x'"):
        assert word in str(info.value)
    assert rec.log == []


def test_later_linear_provider_shadows_earlier(rec):
    flow = LinearFlow("f").add(
        rec.task("early", provides="x", value="early-x"),
        rec.task("late", provides="x", value="late-x"),
    )
    seen = {}

    def consume(x):
        seen["x"] = x

    flow.add(FunctorTask(consume, name="consumer"))
    out = engines.run(flow)
    assert seen["x"] == "late-x"
    assert out["x"] == "late-x"


def test_shadowing_works_through_nested_flows(rec):
    seen = {}

    def consume(x):
        seen["x"] = x

    flow = LinearFlow("f").add(
        UnorderedFlow("u").add(rec.task("p1", provides="x", value=1), rec.task("other", provides="o")),
        LinearFlow("inner").add(rec.task("p2", provides="x", value=2)),
        FunctorTask(consume, name="consumer"),
    )
    engines.run(flow)
    assert seen["x"] == 2


def test_duplicate_atom_names_are_rejected(rec):
    flow = LinearFlow("f").add(rec.task("same"), LinearFlow("sub").add(rec.task("same")))
    with pytest.raises(DuplicateNameError, match="same"):
        engines.load(flow).compile()
    with pytest.raises(DuplicateNameError):
        engines.run(flow)
    assert rec.log == []


def test_duplicate_flow_names_are_rejected(rec):
    flow = LinearFlow("f").add(LinearFlow("sub").add(rec.task("a")), LinearFlow("sub").add(rec.task("b")))
    with pytest.raises(DuplicateNameError, match="sub"):
        engines.load(flow).compile()


def test_duplicate_retry_name_is_rejected(rec):
    flow = LinearFlow("f").add(
        LinearFlow("s1", retry=retry.Times(2, name="r")).add(rec.task("a")),
        LinearFlow("s2", retry=retry.Times(2, name="r")).add(rec.task("b")),
    )
    with pytest.raises(DuplicateNameError, match="'r'"):
        engines.load(flow).compile()


def test_unordered_sibling_output_is_not_visible(rec):
    flow = UnorderedFlow("u").add(rec.task("maker", provides="x"), rec.task("taker", requires=("x",)))
    with pytest.raises(MissingRequirementError) as info:
        engines.run(flow)
    assert info.value.atom == "taker"
    assert info.value.symbol == "x"
    assert "maker" in info.value.not_before
    assert "maker" in str(info.value)
    assert rec.log == []


def test_retry_added_as_child_is_rejected(rec):
    flow = LinearFlow("f").add(retry.Times(2, name="r"))
    with pytest.raises(InvalidFlowError, match="'r'"):
        engines.load(flow).compile()


# -- the compiled graph -------------------------------------------------------------------------------


def test_compiled_graph_nodes_and_edges(rec):
    flow = LinearFlow("f", retry=retry.Times(2, name="rt")).add(
        rec.task("a"),
        UnorderedFlow("u").add(rec.task("b"), rec.task("c")),
        rec.task("d"),
    )
    graph = engines.load(flow).compilation.graph
    assert isinstance(graph, nx.DiGraph)
    assert set(graph.nodes) == {"rt", "a", "b", "c", "d"}
    assert set(graph.edges) == {("rt", "a"), ("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")}
    assert graph.nodes["rt"]["kind"] == "retry"
    assert graph.nodes["a"]["kind"] == "task"
    assert graph.nodes["a"]["atom"].name == "a"


def test_compiled_graph_of_graph_flow(rec):
    g = GraphFlow("g").add(
        rec.task("c", requires=("x", "y")),
        rec.task("a", provides="x"),
        rec.task("b", provides="y"),
        rec.task("lonely"),
    )
    graph = engines.load(g).compilation.graph
    assert set(graph.nodes) == {"a", "b", "c", "lonely"}
    assert set(graph.edges) == {("a", "c"), ("b", "c")}


def test_junction_keeps_large_group_joins_small(rec):
    first = [rec.task(f"first-{i}") for i in range(20)]
    second = [rec.task(f"second-{i}") for i in range(20)]
    flow = LinearFlow("f").add(UnorderedFlow("g1").add(*first), UnorderedFlow("g2").add(*second))
    engine = engines.load(flow)
    graph = engine.compilation.graph
    assert graph.number_of_edges() < 100  # 20 x 20 = 400 without a junction
    for u in first:
        for v in second:
            assert nx.has_path(graph, u.name, v.name)
    engine.run()
    assert len(rec.log) == 40
    assert all(name.startswith("first-") for name in rec.log[:20])
    assert all(name.startswith("second-") for name in rec.log[20:])
    states = engine.storage.get_atom_states()
    assert len(states) == 40  # junctions are not atoms
    assert set(states.values()) == {AtomState.SUCCESS}


def test_junction_ordering_under_parallel_engine(rec):
    first = [rec.task(f"first-{i}") for i in range(20)]
    second = [rec.task(f"second-{i}") for i in range(20)]
    flow = LinearFlow("f").add(UnorderedFlow("g1").add(*first), UnorderedFlow("g2").add(*second))
    engines.run(flow, engine="parallel", max_workers=4)
    assert sorted(rec.log[:20]) == sorted(t.name for t in first)
    assert sorted(rec.log[20:]) == sorted(t.name for t in second)


# -- deciders -----------------------------------------------------------------------------------------


def test_decider_receives_history_of_upstream_atoms(rec):
    calls: list[dict[str, Any]] = []

    def decider(*, history):
        calls.append(dict(history))
        return True

    up = LinearFlow("up").add(rec.task("u1", value=1), rec.task("u2", value=2))
    target = rec.task("target")
    g = GraphFlow("g").add(up, target).link(up, target, decider=decider)
    engines.run(g)
    assert calls == [{"u1": 1, "u2": 2}]
    assert rec.log == ["u1", "u2", "target"]


def test_false_decider_ignores_target_and_flow_succeeds(rec):
    a, b = rec.task("a"), rec.task("b")
    g = GraphFlow("g").add(a, b).link(a, b, decider=lambda history: False)
    engine = engines.load(g)
    engine.run()
    assert rec.log == ["a"]
    assert engine.storage.get_atom_state("b") is AtomState.IGNORE
    assert engine.storage.get_atom_state("a") is AtomState.SUCCESS
    assert engine.storage.get_flow_state() is FlowState.SUCCESS


def test_true_decider_runs_target(rec):
    a, b = rec.task("a", provides="x", value=5), rec.task("b")
    g = GraphFlow("g").add(a, b).link(a, b, decider=lambda history: history["a"] == 5)
    engine = engines.load(g)
    engine.run()
    assert rec.log == ["a", "b"]
    assert engine.storage.get_atom_state("b") is AtomState.SUCCESS


def _depth_flow(rec: Recorder, depth: str) -> LinearFlow:
    """outer linear: graph(a -> sub(b1, b2) -> c -> e) then d; the decider sits on a -> sub."""
    a, c, e = rec.task("a"), rec.task("c"), rec.task("e")
    sub = LinearFlow("sub").add(rec.task("b1"), rec.task("b2"))
    g = GraphFlow("g").add(a, sub, c, e)
    g.link(a, sub, decider=lambda history: False, decider_depth=depth)
    g.link(sub, c)
    g.link(c, e)
    return LinearFlow("outer").add(g, rec.task("d"))


@pytest.mark.parametrize(
    ("depth", "ignored"),
    [
        ("ALL", {"b1", "b2", "c", "e", "d"}),
        ("FLOW", {"b1", "b2", "c", "e"}),
        ("NEIGHBORS", {"b1", "b2", "c"}),
        ("ATOM", {"b1", "b2"}),
        ("atom", {"b1", "b2"}),
        (graph_flow.Depth.FLOW, {"b1", "b2", "c", "e"}),
    ],
)
def test_decider_depth(rec, depth, ignored):
    engine = engines.load(_depth_flow(rec, depth))
    engine.run()
    states = engine.storage.get_atom_states()
    everything = {"a", "b1", "b2", "c", "e", "d"}
    assert {n for n, s in states.items() if s is AtomState.IGNORE} == ignored
    assert {n for n, s in states.items() if s is AtomState.SUCCESS} == everything - ignored
    assert set(rec.log) == everything - ignored
    assert engine.storage.get_flow_state() is FlowState.SUCCESS


def test_default_decider_depth_is_all(rec):
    a, b, c = rec.task("a"), rec.task("b"), rec.task("c")
    g = GraphFlow("g").add(a, b, c).link(a, b, decider=lambda history: False).link(b, c)
    engine = engines.load(LinearFlow("outer").add(g, rec.task("d")))
    engine.run()
    assert rec.log == ["a"]


def test_decider_that_raises_fails_the_flow_with_a_clear_error(rec):
    def decider(history):
        raise ZeroDivisionError("cannot decide")

    a, b = rec.task("a"), rec.task("b")
    g = GraphFlow("g").add(a, b).link(a, b, decider=decider)
    engine = engines.load(g)
    with pytest.raises(FlowkitError) as info:
        engine.run()
    text = str(info.value)
    assert "ZeroDivisionError" in text
    assert "cannot decide" in text
    assert "'a'" in text
    assert "'b'" in text
    # The guarded atom ends FAILURE with the decider's error but never executed, so its
    # revert is not called (there is nothing to undo); a's is.
    assert rec.log == ["a", "-a"]
    assert engine.storage.get_atom_state("a") is AtomState.REVERTED
    assert engine.storage.get_flow_state() is FlowState.REVERTED


def test_an_empty_subflow_in_a_linear_flow_still_orders_its_neighbours() -> None:
    a, b, c, d = (FunctorTask(lambda: None, name=n) for n in "abcd")
    flow = LinearFlow("f").add(a, LinearFlow("empty"), UnorderedFlow("u").add(b, c), LinearFlow("e2"), d)
    compiled = compile_flow(flow)
    succs = {compiled.names[i]: sorted(compiled.names[s] for s in compiled.succs[i]) for i in range(4)}
    assert succs == {"a": ["b", "c"], "b": ["d"], "c": ["d"], "d": []}
