"""A revert that fails: ``run()`` raises the revert's own exception (as TaskFlow), with the failure
that caused the revert attached as its ``__context__``; storage keeps both, by atom."""

from __future__ import annotations

from typing import Any

import pytest

from flowkit import LinearFlow, Task, UnorderedFlow, engines
from flowkit.exceptions import WrappedFailure
from flowkit.states import FlowState


class Nasty(Task):
    def execute(self) -> None:
        pass

    def revert(self, **kwargs: Any) -> None:
        raise RuntimeError("Gotcha!")


class Failing(Task):
    def execute(self) -> None:
        raise RuntimeError("Woot!")


@pytest.mark.parametrize("engine", ["serial", "parallel"])
@pytest.mark.parametrize(
    "flow",
    [
        lambda: LinearFlow("l").add(Nasty("nasty"), Failing("fail")),
        lambda: LinearFlow("l").add(UnorderedFlow("u").add(Nasty("nasty")), Failing("fail")),
        lambda: UnorderedFlow("u").add(LinearFlow("l").add(Nasty("nasty"), Failing("fail"))),
    ],
)
def test_the_failed_revert_is_raised_and_the_cause_is_its_context(engine: str, flow: Any) -> None:
    eng = engines.load(flow(), engine=engine)
    with pytest.raises(RuntimeError, match=r"^Gotcha!$") as info:
        eng.run()
    assert not isinstance(info.value, WrappedFailure)
    cause = info.value.__context__
    assert isinstance(cause, RuntimeError) and str(cause) == "Woot!"
    assert eng.storage.get_flow_state() is FlowState.FAILURE


class AlsoNasty(Task):
    def execute(self) -> None:
        pass

    def revert(self, **kwargs: Any) -> None:
        raise ValueError("Nope!")


@pytest.mark.parametrize("engine", ["serial", "parallel"])
def test_several_failed_reverts_raise_a_wrapped_failure_of_them(engine: str) -> None:
    flow = LinearFlow("l").add(UnorderedFlow("u").add(Nasty("nasty"), AlsoNasty("also")), Failing("fail"))
    with pytest.raises(WrappedFailure) as info:
        engines.load(flow, engine=engine).run()
    assert sorted((f.atom_name, f.exception_str) for f in info.value) == [
        ("also", "Nope!"),
        ("nasty", "Gotcha!"),
    ]
    cause = info.value.__context__
    assert isinstance(cause, RuntimeError) and str(cause) == "Woot!"


def test_storage_lists_execute_and_revert_failures_by_atom() -> None:
    engine = engines.load(LinearFlow("l").add(Nasty("nasty"), Failing("fail")))
    with pytest.raises(RuntimeError, match="Gotcha!"):
        engine.run()
    assert [(n, f.exception_str) for n, f in engine.storage.get_execute_failures().items()] == [
        ("fail", "Woot!")
    ]
    assert [(n, f.exception_str) for n, f in engine.storage.get_revert_failures().items()] == [
        ("nasty", "Gotcha!")
    ]
    revert_result = engine.storage.get_revert_result("nasty")
    assert revert_result is not None and revert_result.check(RuntimeError)
