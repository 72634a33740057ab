"""Deciders as TaskFlow programs see them: one shared history per target, depths that stop at nested flows."""

from __future__ import annotations

from typing import Any

import pytest

from flowkit import GraphFlow, LinearFlow, Task, engines
from flowkit.notifier import ANY
from flowkit.states import AtomState


class Mark(Task):
    def execute(self) -> str:
        return self.name


def _ran(flow: Any) -> list[str]:
    engine = engines.load(flow)
    ran: list[str] = []
    engine.atom_notifier.register(
        ANY, lambda state, details: ran.append(details["atom_name"]) if state is AtomState.RUNNING else None
    )
    engine.run()
    return sorted(ran)


def test_every_decider_into_one_target_sees_the_results_before_all_of_them():
    asked: list[dict[str, Any]] = []

    def no(history: dict[str, Any]) -> bool:
        asked.append(dict(history))
        return False

    first, second = Mark(name="first"), Mark(name="second")
    tail = LinearFlow("tail").add(Mark(name="t1"), Mark(name="t2"))
    flow = GraphFlow("g").add(first, second, tail)
    flow.link(first, second)
    flow.link(second, tail, decider=no)
    flow.link(first, tail, decider=no)
    assert _ran(flow) == ["first", "second"]
    assert asked == [{"first": "first", "second": "second"}] * 2


def _fan(depth: str) -> GraphFlow:
    """start -> skipped -> {nested(inner), after -> last}; start -> nested says yes."""
    start, skipped, after, last = (Mark(name=n) for n in ("start", "skipped", "after", "last"))
    nested = GraphFlow("nested").add(Mark(name="inner"))
    flow = GraphFlow("g").add(start, skipped, nested, after, last)
    flow.link(start, skipped, decider=lambda history: False, decider_depth=depth)
    flow.link(skipped, nested)
    flow.link(skipped, after)
    flow.link(after, last)
    flow.link(start, nested, decider=lambda history: True, decider_depth=depth)
    return flow


@pytest.mark.parametrize(
    ("depth", "ran"),
    [
        ("ALL", ["start"]),
        ("FLOW", ["inner", "start"]),  # the nested flow is not reached
        ("NEIGHBORS", ["inner", "last", "start"]),  # only tasks of the same flow right after
        ("ATOM", ["after", "inner", "last", "start"]),
    ],
)
def test_a_false_decider_reaches_as_far_as_its_depth_and_not_into_nested_flows(depth, ran):
    assert _ran(_fan(depth)) == ran


def test_the_widest_of_several_false_deciders_is_applied():
    a, b, c, d = (Mark(name=n) for n in "abcd")
    flow = GraphFlow("g").add(a, b, c, d)
    flow.link(a, c, decider=lambda history: False, decider_depth="ATOM")
    flow.link(b, c, decider=lambda history: False, decider_depth="ALL")
    flow.link(c, d)
    assert _ran(flow) == ["a", "b"]


def test_a_decider_whose_atoms_were_all_ignored_is_not_asked():
    asked: list[str] = []
    a, b, c = (Mark(name=n) for n in "abc")
    flow = GraphFlow("g").add(a, b, c)
    flow.link(a, b, decider=lambda history: False, decider_depth="ATOM")
    flow.link(b, c, decider=lambda history: asked.append("b->c") or True)
    assert _ran(flow) == ["a", "c"]
    assert asked == []


class Gives(Task):
    def __init__(self, name: str, value: int) -> None:
        super().__init__(name=name, provides="x")
        self.value = value

    def execute(self) -> int:
        return self.value


class Takes(Task):
    def execute(self, x: int) -> int:
        return x


def test_an_atom_whose_provider_was_ignored_gets_the_value_from_the_provider_before_it():
    a, b, c = Gives("a", 1), Gives("b", 2), Takes(name="c", provides="seen")
    gate = Mark(name="gate")
    inner = GraphFlow("g").add(gate, b, c)
    inner.link(gate, b, decider=lambda history: False, decider_depth="ATOM")
    inner.link(b, c)
    engine = engines.load(LinearFlow("f").add(a, inner))
    engine.run()
    assert engine.storage.get_atom_state("b") is AtomState.IGNORE
    assert engine.storage.fetch("seen") == 1
