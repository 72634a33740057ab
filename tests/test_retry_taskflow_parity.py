"""Retry controllers as TaskFlow programs see them: values provided, errors raised."""

from __future__ import annotations

from typing import Any

import pytest

from flowkit import LinearFlow, Task, engines, retry
from flowkit.exceptions import InvalidFlowError, NotFound
from flowkit.states import AtomState, FlowState


class Fails(Task):
    def execute(self, **kwargs: Any) -> None:
        raise RuntimeError("always")


class Undoes(Task):
    def __init__(self, name: str, revert_fails: bool = False) -> None:
        super().__init__(name=name)
        self.revert_fails = revert_fails

    def execute(self) -> None:
        pass

    def revert(self, **kwargs: Any) -> None:
        if self.revert_fails:
            raise OSError("cannot undo")


@pytest.mark.parametrize("controller", [retry.AlwaysRevert, retry.AlwaysRevertAll])
def test_controllers_that_never_retry_provide_none(controller):
    engine = engines.load(LinearFlow("f", retry=controller(name="r", provides="x")).add(Undoes("a")))
    engine.run()
    assert engine.storage.fetch("x") is None


def test_for_each_over_nothing_raises_not_found():
    flow = LinearFlow("f", retry=retry.ForEach([], name="r", provides="x")).add(Fails(name="t"))
    with pytest.raises(NotFound, match=r"^No elements left"):
        engines.run(flow)


@pytest.mark.parametrize("alone", [True, False])
def test_a_retry_run_as_a_task_is_a_type_error(alone):
    ctl = retry.Times(2, name="r")
    flow = ctl if alone else LinearFlow("f").add(ctl)
    engine = engines.load(flow)
    with pytest.raises(TypeError, match="retry="):
        engine.run()
    with pytest.raises(InvalidFlowError):
        engines.load(flow).run()


def test_a_controller_whose_retry_could_not_be_reverted_still_gives_its_value():
    flow = LinearFlow("f", retry=retry.Times(2, name="r", provides="x")).add(
        Undoes("a", revert_fails=True), Fails(name="t")
    )
    engine = engines.load(flow)
    with pytest.raises(OSError):
        engine.run()
    assert engine.storage.get_flow_state() is FlowState.FAILURE
    assert engine.storage.get_atom_state("r") is AtomState.RETRYING
    assert engine.storage.fetch_all() == {"x": 1}


class Flaky(Task):
    """Fails the first time; records what happened to it."""

    def __init__(self, name: str, log: list[str]) -> None:
        super().__init__(name=name)
        self.log = log

    def execute(self) -> None:
        self.log.append("run")
        if self.log.count("run") == 1:
            raise RuntimeError("first time")

    def revert(self, **kwargs: Any) -> None:
        self.log.append("undo")


def test_a_failure_saved_before_the_run_stopped_is_reverted_and_retried_on_the_next_run():
    log: list[str] = []
    flow = LinearFlow("f", retry=retry.Times(3, name="r", provides="attempt")).add(Flaky("t", log))
    engine = engines.load(flow)

    def stop_here(state: Any, details: dict[str, Any]) -> None:
        raise KeyboardInterrupt  # the process stops just after the failure was saved

    engine.atom_notifier.register(AtomState.FAILURE, stop_here)
    with pytest.raises(KeyboardInterrupt):
        engine.run()
    assert engine.storage.get_atom_state("t") is AtomState.FAILURE
    engine.atom_notifier.deregister(AtomState.FAILURE, stop_here)
    engine.run()
    # the failed attempt is undone before the controller runs its scope again
    assert log == ["run", "undo", "run"]
    assert engine.storage.fetch("attempt") == 2
    assert engine.storage.get_flow_state() is FlowState.SUCCESS
