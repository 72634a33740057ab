"""Engine behaviour TaskFlow programs rely on: load options, retry call conventions, reset notices."""

from __future__ import annotations

import contextlib
from concurrent import futures
from typing import Any

import pytest

from flowkit import LinearFlow, Task, engines, retry
from flowkit.exceptions import InvalidFlowError, NotFound
from flowkit.notifier import Notifier
from flowkit.persistence.models import FlowDetail
from flowkit.states import AtomState, FlowState


class Boom(Exception):
    pass


class Step(Task):
    """Records its executions and reverts in a shared list."""

    def __init__(self, log: list[str], name: str, fail: bool = False) -> None:
        super().__init__(name=name)
        self.log = log
        self.fail = fail

    def execute(self) -> None:
        self.log.append(f"run {self.name}")
        if self.fail:
            raise Boom(self.name)

    def revert(self, **kwargs: Any) -> None:
        self.log.append(f"undo {self.name}")


def test_options_are_empty_when_none_are_given():
    engine = engines.load(LinearFlow("f").add(Step([], "a")))
    assert engine.options == {}


def test_options_keep_what_was_given_including_the_callers_executor():
    pool = futures.ThreadPoolExecutor(2)
    try:
        flow = LinearFlow("f").add(Step([], "a"))
        e1 = engines.load(flow, engine="parallel", executor=pool, defer_reverts=True)
        e2 = engines.load(flow, engine="parallel", executor=pool)
        assert e1.options == {"executor": pool, "defer_reverts": True}
        assert e2.options["executor"] is e1.options["executor"]
    finally:
        pool.shutdown(wait=True)


@pytest.mark.parametrize("defer", [True, False, None])
def test_defer_reverts_never_leaves_atoms_outside_a_reverted_subflow_done(defer):
    # TaskFlow's default (defer_reverts=False) would revert only the subflow; flowkit reverts all.
    log: list[str] = []
    flow = LinearFlow("f").add(
        Step(log, "before"),
        LinearFlow("sub", retry=retry.AlwaysRevert(name="ar")).add(Step(log, "boom", fail=True)),
    )
    engine = engines.load(flow, defer_reverts=defer)
    with pytest.raises(Boom):
        engine.run()
    assert engine.storage.get_atom_states() == {
        "before": AtomState.REVERTED,
        "ar": AtomState.REVERTED,
        "boom": AtomState.REVERTED,
    }
    assert log == ["run before", "run boom", "undo boom", "undo before"]
    assert engine.storage.get_flow_state() is FlowState.REVERTED


def test_defer_reverts_must_be_a_bool():
    with pytest.raises(InvalidFlowError, match="defer_reverts"):
        engines.load(LinearFlow("f").add(Step([], "a")), defer_reverts="yes")


class KeywordsOnly(retry.Retry):
    """A controller written TaskFlow's way: every method takes keywords only."""

    def __init__(self, seen: list[tuple[str, int]], name: str) -> None:
        super().__init__(name=name)
        self.seen = seen

    def execute(self, **kwargs: Any) -> int:
        self.seen.append(("execute", len(kwargs["history"])))
        return 1

    def on_failure(self, **kwargs: Any) -> retry.Decision:
        self.seen.append(("on_failure", len(kwargs["history"])))
        return retry.RETRY if len(kwargs["history"]) < 2 else retry.REVERT

    def revert(self, **kwargs: Any) -> None:
        self.seen.append(("revert", len(kwargs["history"])))


def test_retry_methods_get_the_history_by_keyword():
    seen: list[tuple[str, int]] = []
    flow = LinearFlow("f", retry=KeywordsOnly(seen, "r")).add(Step([], "boom", fail=True))
    with pytest.raises(Boom):
        engines.run(flow)
    assert seen == [
        ("execute", 0),
        ("on_failure", 1),
        ("execute", 1),
        ("on_failure", 2),
        ("revert", 2),
    ]


def test_atoms_reset_for_another_attempt_are_announced_pending():
    log: list[str] = []
    flow = LinearFlow("f", retry=retry.Times(2, name="r")).add(Step(log, "ok"), Step(log, "boom", fail=True))
    engine = engines.load(flow)
    seen: list[tuple[str, AtomState]] = []
    engine.atom_notifier.register(
        Notifier.ANY, lambda state, details: seen.append((details["atom_name"], state))
    )
    with pytest.raises(Boom):
        engine.run()
    second_attempt = seen.index(("r", AtomState.RUNNING), 1)
    between = seen[seen.index(("r", AtomState.RETRYING)) : second_attempt]
    assert ("ok", AtomState.PENDING) in between
    assert ("boom", AtomState.PENDING) in between
    # every state a listener saw last is the one storage holds
    last = dict(seen)
    assert last == engine.storage.get_atom_states()


class Add(Task):
    default_provides = "value"

    def execute(self, value: int) -> int:
        return value + 1

    def revert(self, value: int, **kwargs: Any) -> int:
        return value * 10


def adders(prefix: str) -> LinearFlow:
    """A factory (importable by path) for the factory tests."""
    return LinearFlow(f"{prefix}-flow").add(
        Add(name=f"{prefix}1", rebind={"value": "start"}), Add(name=f"{prefix}2")
    )


def test_fetch_mapped_args_gives_what_each_atom_was_given():
    flow = adders("a")
    engine = engines.load(flow, store={"start": 0})
    engine.run()
    storage = engine.storage
    assert storage.fetch_mapped_args({"value": "start"}, atom_name="a1") == {"value": 0}
    assert storage.fetch_mapped_args({"value": "value"}, atom_name="a2") == {"value": 1}
    assert storage.fetch_mapped_args({"value": "value"}) == {"value": 2}  # the latest
    assert storage.fetch_mapped_args({"x": "nowhere"}, optional_args=["x"]) == {}
    with pytest.raises(NotFound):
        storage.fetch_mapped_args({"x": "nowhere"})


def test_revert_results_retry_histories_and_intentions_can_be_read():
    flow = LinearFlow("f", retry=retry.Times(1, name="r")).add(
        Add(name="a1", rebind={"value": "start"}), Step([], "boom", fail=True)
    )
    engine = engines.load(flow, store={"start": 4})
    with pytest.raises(Boom):
        engine.run()
    storage = engine.storage
    assert storage.get_revert_result("a1") == 40
    assert storage.get_revert_result("boom") is None
    assert [(name, len(h)) for name, h in storage.get_retry_histories()] == [("r", 1)]
    assert storage.get_atom_intention("a1") == "REVERT"
    fresh = engines.load(adders("b"), store={"start": 0}).storage
    assert fresh.get_atom_intention("b1") == "EXECUTE"


@pytest.mark.parametrize("fail", [False, True])
def test_reset_runs_a_finished_flow_again_from_the_start(fail):
    log: list[str] = []
    flow = LinearFlow("f").add(Step(log, "a"), Step(log, "b", fail=fail))
    engine = engines.load(flow)
    seen: list[tuple[str, AtomState]] = []
    engine.atom_notifier.register(
        Notifier.ANY, lambda state, details: seen.append((details["atom_name"], state))
    )
    for _ in range(2):
        with contextlib.suppress(Boom):
            engine.run()
    assert log.count("run a") == (2 if fail else 1)  # a finished flow runs nothing again
    engine.reset()
    assert engine.storage.get_flow_state() is FlowState.PENDING
    assert set(engine.storage.get_atom_states().values()) == {AtomState.PENDING}
    assert seen[-2:] == [("a", AtomState.PENDING), ("b", AtomState.PENDING)]
    log.clear()
    with pytest.raises(Boom) if fail else contextlib.nullcontext():
        engine.run()
    assert log[:2] == ["run a", "run b"]


def test_flow_from_detail_and_load_from_factory_rebuild_by_the_factory():
    engine = engines.load_from_factory(adders, factory_kwargs={"prefix": "c"}, store={"start": 1})
    engine.run()
    assert engine.storage.fetch("value") == 3
    detail = engine._recorder.flow_detail  # type: ignore[union-attr]
    assert detail.name == "c-flow"
    assert detail.meta["factory"]["kwargs"] == {"prefix": "c"}
    rebuilt = engines.flow_from_detail(detail)
    assert [a.name for a in rebuilt] == ["c1", "c2"]
    with pytest.raises(InvalidFlowError, match="no factory information saved"):
        engines.flow_from_detail(FlowDetail("bare"))


class UsesAttempt(Task):
    """Fails every attempt; its revert names the arguments it needs, the controller's value among them."""

    def __init__(self, got: list[tuple[int, int]]) -> None:
        super().__init__(name="uses")
        self.got = got

    def execute(self, x: int, y: int) -> None:
        raise Boom(x)

    def revert(self, x: int, y: int, **kwargs: Any) -> None:
        self.got.append((x, y))


def test_revert_gets_the_arguments_execute_had_including_the_controllers_value():
    got: list[tuple[int, int]] = []
    flow = LinearFlow("f", retry=retry.ForEach([1, 2], name="r", provides="x")).add(UsesAttempt(got))
    with pytest.raises(Boom):
        engines.run(flow, store={"y": 5})
    assert got == [(1, 5), (2, 5)]
