"""Flows as TaskFlow reports them while they are built: requires/provides per pattern (controllers
included), link metadata, cycles and ambiguous providers refused at ``add()``/``link()``, the
``resolve_requires``/``resolve_existing`` switches, default controller names and ``str(flow)``."""

from __future__ import annotations

from typing import Any

import pytest

from flowkit import GraphFlow, LinearFlow, Task, UnorderedFlow, engines, retry
from flowkit.exceptions import AmbiguousProviderError, CycleError, DependencyFailure, InvalidFlowError


class Make(Task):
    def __init__(self, name: str, provides: Any = None, requires: Any = None) -> None:
        super().__init__(name=name, provides=provides, requires=requires)

    def execute(self, **kwargs: Any) -> Any:
        return self.name


def test_atom_provides_equals_a_set_and_keeps_declared_order() -> None:
    task = Make("t", provides=["c", "a", "b"])
    assert task.provides == {"a", "b", "c"}
    assert list(task.provides) == ["c", "a", "b"]
    assert Make("u").provides == set()


def test_linear_flow_requires_what_no_earlier_child_or_controller_provides() -> None:
    ctl = retry.AlwaysRevert("rt", requires=["x"], provides=["a"])
    flow = LinearFlow("lf", ctl).add(Make("use", requires=["a", "b"]), Make("give", provides="b"))
    assert flow.requires == {"x", "b"}  # "b" comes only after its user
    assert flow.provides == {"a", "b"}
    same = LinearFlow("same", retry.AlwaysRevert("r2", requires=["x"], provides=["x"]))
    assert same.requires == {"x"} and same.provides == {"x"}


def test_unordered_flow_siblings_do_not_satisfy_each_other() -> None:
    flow = UnorderedFlow("uf").add(Make("give", provides="x")).add(Make("use", requires=["x"]))
    assert flow.requires == {"x"}
    assert flow.provides == {"x"}
    ctl = UnorderedFlow("uf2", retry.AlwaysRevert("rt", requires=["x"])).add(Make("g", provides="x"))
    assert ctl.requires == {"x"}


def test_graph_flow_requires_and_links_carry_reasons() -> None:
    a = Make("a", provides=["x", "y"])
    b = Make("b", requires=["x", "y"], provides="z")
    c = Make("c", requires=["z", "w"])
    flow = GraphFlow("g").add(c).add(a, b)  # c added first: resolved when b comes
    assert flow.requires == {"w"}
    assert flow.provides == {"x", "y", "z"}
    assert sorted((u.name, v.name, sorted(m["reasons"])) for u, v, m in flow.iter_links()) == [
        ("a", "b", ["x", "y"]),
        ("b", "c", ["z"]),
    ]


def test_linear_links_are_invariant_and_manual_links_are_marked() -> None:
    a, b = Make("a", provides="x"), Make("b", requires=["x"])
    assert [m for _, _, m in LinearFlow("lf").add(a, b).iter_links()] == [{"invariant": True}]
    c, d = Make("c"), Make("d")
    g = GraphFlow("g").add(a, b, c, d).link(c, d).link(a, b)
    metas = {(u.name, v.name): m for u, v, m in g.iter_links()}
    assert metas == {("a", "b"): {"reasons": {"x"}, "manual": True}, ("c", "d"): {"manual": True}}


def test_ambiguous_provider_is_refused_at_add_and_the_flow_is_unchanged() -> None:
    flow = GraphFlow("g").add(Make("p1", provides="x"), Make("p2", provides="x"))
    with pytest.raises(AmbiguousProviderError) as info:
        flow.add(Make("free"), Make("use", requires=["x"]))
    assert set(info.value.providers) == {"p1", "p2"}
    assert isinstance(info.value, DependencyFailure)
    assert [n.name for n in flow] == ["p1", "p2"]
    assert list(flow.iter_links()) == []


def test_data_cycle_is_refused_at_add_even_within_one_call() -> None:
    flow = GraphFlow("g")
    with pytest.raises(CycleError) as info:
        flow.add(
            Make("a", provides="a", requires=["b"]),
            Make("b", provides="b", requires=["c"]),
            Make("c", provides="c", requires=["a"]),
        )
    assert set(info.value.cycle) == {"a", "b", "c"}
    assert len(flow) == 0 and list(flow.iter_links()) == []


def test_link_checks_nodes_and_cycles() -> None:
    a, b, stranger = Make("a", provides="x"), Make("b", requires=["x"]), Make("s")
    flow = GraphFlow("g").add(a, b)
    with pytest.raises(InvalidFlowError, match="'s' not found to link from"):
        flow.link(stranger, b)
    with pytest.raises(ValueError, match="'s' not found to link to"):
        flow.link(a, stranger)
    with pytest.raises(CycleError):
        flow.link(b, a)
    assert [(u.name, v.name, m) for u, v, m in flow.iter_links()] == [("a", "b", {"reasons": {"x"}})]


def test_resolve_switches_leave_requirements_open_but_the_compiler_still_orders_by_data() -> None:
    give = Make("give", provides=["a", "b"])
    use = Make("use", requires=["a", "b"])
    flow = GraphFlow("g").add(give, use, resolve_requires=False)
    assert flow.requires == {"a", "b"} and list(flow.iter_links()) == []
    later = GraphFlow("g2").add(Make("use2", requires=["a"]))
    later.add(Make("give2", provides="a"), resolve_existing=False)
    assert later.requires == {"a"}
    resolved = GraphFlow("g3").add(Make("use3", requires=["a"])).add(Make("give3", provides="a"))
    assert resolved.requires == set()
    # the data still orders the run: the user runs after the provider add() was told not to link
    engine = engines.load(
        GraphFlow("g4").add(Make("u4", requires=["a"]), Make("g4t", provides="a"), resolve_existing=False)
    )
    engine.run()
    assert engine.storage.fetch("a") == "g4t"


def test_invalid_flow_error_is_a_value_error() -> None:
    assert issubclass(InvalidFlowError, ValueError)
    with pytest.raises(ValueError):
        GraphFlow("g").add(Make("a"), Make("b")).link(Make("a"), Make("b"))


def test_unnamed_controller_is_named_after_its_flow() -> None:
    ctl = retry.Times(2)
    LinearFlow("outer", ctl)
    assert ctl.name == "outer_retry"
    named = retry.Times(2, name="mine")
    GraphFlow("g", named)
    assert named.name == "mine"


def test_times_zero_attempts_runs_once_and_does_not_retry() -> None:
    calls: list[int] = []

    class Boom(Task):
        def execute(self) -> None:
            calls.append(1)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        engines.run(LinearFlow("f", retry.Times(0)).add(Boom("boom")))
    assert calls == [1]
    with pytest.raises(InvalidFlowError):
        retry.Times(-1)


def test_for_each_accepts_a_set() -> None:
    seen: list[int] = []

    class Pick(Task):
        def execute(self, v: int) -> None:
            seen.append(v)
            if v != 3:
                raise RuntimeError(v)

    engines.run(LinearFlow("f", retry.ForEach({1, 2, 3}, provides="v")).add(Pick("pick")))
    assert seen == list({1, 2, 3})[: seen.index(3) + 1] and seen[-1] == 3
    with pytest.raises(InvalidFlowError):
        retry.ForEach("abc")


def test_str_of_a_flow_names_pattern_name_and_length() -> None:
    assert str(GraphFlow("g")) == '"graph_flow.Flow: g(len=0)"'
    assert str(LinearFlow("l").add(Make("a"))) == '"linear_flow.Flow: l(len=1)"'
    assert str(UnorderedFlow("u")) == '"unordered_flow.Flow: u(len=0)"'


class Explicit(Task):
    def execute(self, context: Any, spam: Any, eggs: Any = None) -> Any:
        return (context, spam, eggs)


def test_auto_extract_false_binds_only_named_parameters() -> None:
    task = Explicit(auto_extract=False, requires=("spam", "context"))
    assert task.rebind == {"context": "context", "spam": "spam"}
    assert task.optional_rebind == {}
    with pytest.raises(ValueError, match=r"^Missing arguments"):
        Explicit(auto_extract=False, requires=("spam",))
    assert Explicit(auto_extract=False, rebind={"context": "c", "spam": "s"}).rebind == {
        "context": "c",
        "spam": "s",
    }
    assert Explicit().optional_rebind == {"eggs": "eggs"}


# -- resolve_requires=False, links and later providers -------------------------------------------


class _AddOne(Task):
    default_provides = "value"

    def execute(self, value: int) -> int:
        return value + 1


def test_children_added_unresolved_and_linked_in_order_read_each_from_the_one_before() -> None:
    a, b, c = _AddOne("a", inject={"value": 0}), _AddOne("b"), _AddOne("c")
    flow = GraphFlow("g").add(a, b, c, resolve_requires=False)
    assert list(flow.iter_links()) == []  # no child of that call links to another
    flow.link(a, b)
    flow.link(b, c)  # c provides what b needs, but runs after it: not a cycle
    engine = engines.load(flow)
    engine.run()
    assert [engine.storage.get(n) for n in "abc"] == [1, 2, 3]


def test_a_new_provider_is_not_linked_to_a_requirer_already_served() -> None:
    class NeedsX(Task):
        def execute(self, x: int) -> int:
            return x

    class GivesX(Task):
        default_provides = "x"

        def execute(self) -> int:
            return 1

    flow = GraphFlow("g").add(NeedsX("needs"), GivesX("first"))  # first -> needs (resolve_existing)
    flow.add(GivesX("second"))  # needs is served already: no link to it
    links = {(u.name, v.name) for u, v, _ in flow.iter_links()}
    assert links == {("first", "needs")}


def test_a_cycle_made_by_link_names_each_atom_once() -> None:
    a, b, c = _AddOne("a", inject={"value": 0}), _AddOne("b"), _AddOne("c")
    flow = GraphFlow("g").add(a, b, c, resolve_requires=False)
    flow.link(a, b)
    flow.link(b, c)
    with pytest.raises(CycleError) as info:
        flow.link(c, a)
    assert info.value.cycle == ["c", "a", "b"]


def test_loading_something_that_is_not_a_flow_is_a_type_error_naming_it() -> None:
    with pytest.raises(TypeError, match="i am a string"):
        engines.load("i am a string")  # type: ignore[arg-type]
