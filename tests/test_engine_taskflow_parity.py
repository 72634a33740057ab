"""Engine behaviour TaskFlow programs rely on: load options, retry call conventions, reset notices."""

from __future__ import annotations

from concurrent import futures
from typing import Any

import pytest

from flowkit import LinearFlow, Task, engines, retry
from flowkit.exceptions import InvalidFlowError
from flowkit.notifier import Notifier
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
