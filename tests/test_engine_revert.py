"""Reverting: order, arguments, re-raised errors, failing reverts, and parallel failures."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from flowkit import GraphFlow, LinearFlow, Task, UnorderedFlow, engines
from flowkit.exceptions import WrappedFailure
from flowkit.failure import Failure
from flowkit.states import AtomState, FlowState


class DiskFull(Exception):
    """A task's own exception type."""


class Journal:
    """A thread-safe record of execute/revert calls with a global sequence number."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[tuple[str, str, dict[str, Any]]] = []

    def add(self, kind: str, name: str, **data: Any) -> int:
        with self.lock:
            self.events.append((kind, name, data))
            return len(self.events)

    def names(self, kind: str) -> list[str]:
        with self.lock:
            return [name for k, name, _ in self.events if k == kind]

    def data(self, kind: str, name: str) -> dict[str, Any]:
        matches = [d for k, n, d in self.events if k == kind and n == name]
        assert len(matches) == 1, (kind, name, matches)
        return matches[0]

    def seq(self, kind: str, name: str) -> int:
        for i, (k, n, _) in enumerate(self.events):
            if k == kind and n == name:
                return i
        raise AssertionError(f"no {kind} event for {name}")


class Step(Task):
    """Records execute/revert; fails in execute or revert when asked; waits on a barrier if given."""

    def __init__(
        self,
        journal: Journal,
        fail: BaseException | None = None,
        revert_fail: BaseException | None = None,
        barrier: threading.Barrier | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.journal = journal
        self.fail = fail
        self.revert_fail = revert_fail
        self.barrier = barrier

    def execute(self, value):
        self.journal.add("execute", self.name, value=value)
        if self.barrier is not None:
            self.barrier.wait(timeout=10)
        if self.fail is not None:
            raise self.fail
        return f"{self.name}:{value}"

    def revert(self, value, result, flow_failures):
        self.journal.add("revert-start", self.name)
        self.journal.add("revert", self.name, value=value, result=result, flow_failures=flow_failures)
        if self.revert_fail is not None:
            raise self.revert_fail
        self.journal.add("revert-end", self.name)


def step(journal: Journal, name: str, value: Any = None, **kwargs: Any) -> Step:
    return Step(journal, name=name, inject={"value": value if value is not None else name}, **kwargs)


@pytest.fixture
def journal() -> Journal:
    return Journal()


@pytest.mark.parametrize("engine_kind", ["serial", "parallel"])
def test_last_failure_reverts_all_in_reverse_order_once(journal, engine_kind):
    names = [f"t{i}" for i in range(1, 6)]
    flow = LinearFlow("f").add(
        *(step(journal, n, value=i) for i, n in enumerate(names[:-1])),
        step(journal, names[-1], value=99, fail=DiskFull("no space left")),
    )
    engine = engines.load(flow, engine=engine_kind)
    with pytest.raises(DiskFull, match="no space left"):
        engine.run()
    assert journal.names("execute") == names
    assert journal.names("revert") == list(reversed(names))
    for i, name in enumerate(names[:-1]):
        data = journal.data("revert", name)
        assert data["value"] == i
        assert data["result"] == f"{name}:{i}"
        assert list(data["flow_failures"]) == ["t5"]
        failure = data["flow_failures"]["t5"]
        assert isinstance(failure, Failure)
        assert failure.check(DiskFull)
    failed = journal.data("revert", "t5")
    assert failed["value"] == 99
    assert isinstance(failed["result"], Failure)
    assert failed["result"].check(DiskFull)
    assert failed["result"].exception_str == "no space left"
    st = engine.storage
    assert st.get_flow_state() is FlowState.REVERTED
    assert set(st.get_atom_states().values()) == {AtomState.REVERTED}


def test_atoms_that_never_ran_are_not_reverted(journal):
    flow = LinearFlow("f").add(
        step(journal, "a"), step(journal, "boom", fail=DiskFull("x")), step(journal, "never")
    )
    engine = engines.load(flow)
    with pytest.raises(DiskFull):
        engine.run()
    assert journal.names("revert") == ["boom", "a"]
    assert engine.storage.get_atom_state("never") is AtomState.PENDING


def test_revert_with_kwargs_gets_execute_args_result_and_failures():
    got: dict[str, Any] = {}

    class Greedy(Task):
        def execute(self, x, y=2):
            return x + y

        def revert(self, **kwargs):
            got.update(kwargs)

    class Boom(Task):
        def execute(self):
            raise DiskFull("boom")

    flow = LinearFlow("f").add(Greedy(name="greedy"), Boom(name="boom"))
    with pytest.raises(DiskFull):
        engines.run(flow, store={"x": 1, "y": 5})
    assert got["x"] == 1
    assert got["y"] == 5
    assert got["result"] == 6
    assert set(got["flow_failures"]) == {"boom"}


def test_revert_without_special_args_is_called_without_them():
    got: list[dict[str, Any]] = []

    class Plain(Task):
        def execute(self, x):
            return x

        def revert(self, x):
            got.append({"x": x})

    class Boom(Task):
        def execute(self):
            raise DiskFull("boom")

    with pytest.raises(DiskFull):
        engines.run(LinearFlow("f").add(Plain(name="plain"), Boom(name="boom")), store={"x": 3})
    assert got == [{"x": 3}]


def test_failing_revert_gives_flow_failure_and_wrapped_failure(journal):
    flow = LinearFlow("f").add(
        step(journal, "a"),
        step(journal, "b", revert_fail=KeyError("cannot undo b")),
        step(journal, "c", fail=DiskFull("c failed")),
    )
    engine = engines.load(flow)
    with pytest.raises(WrappedFailure) as info:
        engine.run()
    wrapped = info.value
    assert len(wrapped) == 2
    assert wrapped.check(DiskFull) is not None
    assert wrapped.check(KeyError) is not None
    assert {f.atom_name for f in wrapped} == {"b", "c"}
    assert engine.storage.get_flow_state() is FlowState.FAILURE
    assert engine.storage.get_atom_state("b") is AtomState.REVERT_FAILURE
    assert engine.storage.get_atom_state("c") is AtomState.REVERTED
    # Observed: nothing is reverted past a failed revert: b's predecessor a is left as it was.
    assert engine.storage.get_atom_state("a") is AtomState.SUCCESS
    assert journal.names("revert") == ["c", "b"]


def test_revert_failure_leaves_predecessors_but_reverts_independent_atoms(journal):
    """linear(unordered(linear(a, b), z), c) where c fails and b's revert fails.

    Observed (documented) behaviour: c and z (which depends on nothing of b) are reverted;
    b ends REVERT_FAILURE; a, which runs before b, is left in SUCCESS, not reverted.
    """
    flow = LinearFlow("f").add(
        UnorderedFlow("u").add(
            LinearFlow("ab").add(step(journal, "a"), step(journal, "b", revert_fail=KeyError("stuck"))),
            step(journal, "z"),
        ),
        step(journal, "c", fail=DiskFull("c failed")),
    )
    engine = engines.load(flow)
    with pytest.raises(WrappedFailure):
        engine.run()
    states = engine.storage.get_atom_states()
    assert states == {
        "a": AtomState.SUCCESS,
        "b": AtomState.REVERT_FAILURE,
        "z": AtomState.REVERTED,
        "c": AtomState.REVERTED,
    }
    reverted = journal.names("revert")
    assert reverted[0] == "c"
    assert sorted(reverted) == ["b", "c", "z"]
    assert engine.storage.get_flow_state() is FlowState.FAILURE


def test_reverted_flow_can_be_run_again(journal):
    flaky = step(journal, "flaky", fail=DiskFull("first time"))
    flow = LinearFlow("f").add(step(journal, "a"), flaky)
    engine = engines.load(flow)
    with pytest.raises(DiskFull):
        engine.run()
    assert engine.storage.get_flow_state() is FlowState.REVERTED
    flaky.fail = None
    engine.run()
    assert engine.storage.get_flow_state() is FlowState.SUCCESS
    assert journal.names("execute") == ["a", "flaky", "a", "flaky"]
    assert engine.storage.get_atom_state("a") is AtomState.SUCCESS


class KwStep(Step):
    """A Step that accepts extra symbols, to draw data edges with ``requires``."""

    def execute(self, value, **kwargs):
        return super().execute(value)

    def revert(self, value, result, flow_failures, **kwargs):
        return super().revert(value, result, flow_failures)


def _diamond(journal: Journal, tail_fail: BaseException) -> GraphFlow:
    def s(name: str, provides: str | None, requires: list[str], **kw: Any) -> KwStep:
        return KwStep(journal, name=name, provides=provides, requires=requires, inject={"value": 0}, **kw)

    return GraphFlow("g").add(
        s("boom", None, ["d_out"], fail=tail_fail),
        s("d", "d_out", ["b_out", "c_out"]),
        s("b", "b_out", ["a_out"]),
        s("c", "c_out", ["a_out"]),
        s("a", "a_out", []),
    )


@pytest.mark.parametrize("engine_kind", ["serial", "parallel"])
def test_graph_reverts_in_reverse_dependency_order(journal, engine_kind):
    with pytest.raises(DiskFull):
        engines.run(
            _diamond(journal, DiskFull("tail")),
            engine=engine_kind,
            **({"max_workers": 4} if engine_kind == "parallel" else {}),
        )
    assert journal.names("execute")[0] == "a"
    seq = journal.seq
    # each revert starts only after every revert of its successors has ended
    assert seq("revert-end", "boom") < seq("revert-start", "d")
    assert seq("revert-end", "d") < seq("revert-start", "b")
    assert seq("revert-end", "d") < seq("revert-start", "c")
    assert seq("revert-end", "b") < seq("revert-start", "a")
    assert seq("revert-end", "c") < seq("revert-start", "a")
    assert sorted(journal.names("revert")) == ["a", "b", "boom", "c", "d"]


def test_parallel_engine_two_simultaneous_failures_wrapped(journal):
    barrier = threading.Barrier(2)
    flow = LinearFlow("f").add(
        step(journal, "before"),
        UnorderedFlow("u").add(
            step(journal, "f1", fail=DiskFull("one"), barrier=barrier),
            step(journal, "f2", fail=KeyError("two"), barrier=barrier),
        ),
        step(journal, "after"),
    )
    engine = engines.load(flow, engine="parallel", max_workers=4)
    with pytest.raises(WrappedFailure) as info:
        engine.run()
    failures = list(info.value)
    assert len(failures) == 2
    assert {f.atom_name for f in failures} == {"f1", "f2"}
    assert info.value.check(DiskFull).atom_name == "f1"
    assert info.value.check(KeyError).atom_name == "f2"
    assert engine.storage.get_flow_state() is FlowState.REVERTED
    assert sorted(journal.names("revert")) == ["before", "f1", "f2"]
    assert journal.names("revert")[-1] == "before"
    for name in ("f1", "f2"):
        assert set(journal.data("revert", name)["flow_failures"]) == {"f1", "f2"}
    assert engine.storage.get_atom_state("after") is AtomState.PENDING


def test_parallel_engine_reraises_single_failure_as_itself(journal):
    flow = UnorderedFlow("u").add(step(journal, "ok"), step(journal, "bad", fail=DiskFull("only one")))
    with pytest.raises(DiskFull, match="only one"):
        engines.run(flow, engine="parallel")
    assert sorted(journal.names("revert")) == ["bad", "ok"]


def test_atom_still_running_when_a_sibling_fails_is_reverted_too(journal):
    class Slow(Step):
        def execute(self, value):
            time.sleep(0.2)
            return super().execute(value)

    flow = LinearFlow("f").add(
        UnorderedFlow("u").add(
            step(journal, "fast", fail=DiskFull("fast")), Slow(journal, name="slow", inject={"value": 1})
        ),
        step(journal, "after"),
    )
    engine = engines.load(flow, engine="parallel", max_workers=2)
    with pytest.raises(DiskFull):
        engine.run()
    assert sorted(journal.names("revert")) == ["fast", "slow"]
    assert journal.data("revert", "slow")["result"] == "slow:1"
    assert engine.storage.get_atom_state("slow") is AtomState.REVERTED
    assert engine.storage.get_atom_state("after") is AtomState.PENDING


def test_parallel_revert_through_a_junction(journal):
    first = [step(journal, f"first-{i}") for i in range(20)]
    second = [step(journal, f"second-{i}") for i in range(20)]
    flow = LinearFlow("f").add(
        UnorderedFlow("g1").add(*first),
        UnorderedFlow("g2").add(*second),
        step(journal, "boom", fail=DiskFull("late")),
    )
    with pytest.raises(DiskFull):
        engines.run(flow, engine="parallel", max_workers=4)
    order = journal.names("revert")
    assert len(order) == 41
    assert order[0] == "boom"
    assert all(n.startswith("second-") for n in order[1:21])
    assert all(n.startswith("first-") for n in order[21:])


def test_suspend_while_reverting_then_resume_finishes_the_revert(journal):
    flow = LinearFlow("f").add(
        step(journal, "a"), step(journal, "b"), step(journal, "c"), step(journal, "boom", fail=DiskFull("x"))
    )
    engine = engines.load(flow)
    engine.atom_notifier.register(
        AtomState.REVERTED, lambda s, d: engine.suspend() if d["atom_name"] == "c" else None
    )
    engine.run()  # suspended: returns without raising
    st = engine.storage
    assert st.get_flow_state() is FlowState.SUSPENDED
    assert journal.names("revert") == ["boom", "c"]
    assert st.get_atom_state("b") is AtomState.SUCCESS
    with pytest.raises(DiskFull):
        engine.run()
    assert journal.names("revert") == ["boom", "c", "b", "a"]
    assert journal.names("execute") == ["a", "b", "c", "boom"]
    assert st.get_flow_state() is FlowState.REVERTED


def test_run_again_after_failed_revert_retries_the_revert_and_finishes(journal):
    b = step(journal, "b", revert_fail=KeyError("stuck"))
    flow = LinearFlow("f").add(step(journal, "a"), b, step(journal, "c", fail=DiskFull("c")))
    engine = engines.load(flow)
    with pytest.raises(WrappedFailure):
        engine.run()
    assert engine.storage.get_flow_state() is FlowState.FAILURE
    b.revert_fail = None
    with pytest.raises(DiskFull):  # only the original failure is left
        engine.run()
    assert journal.names("revert") == ["c", "b", "b", "a"]
    assert journal.names("execute") == ["a", "b", "c"]  # nothing executes again
    assert engine.storage.get_flow_state() is FlowState.REVERTED
    assert set(engine.storage.get_atom_states().values()) == {AtomState.REVERTED}
