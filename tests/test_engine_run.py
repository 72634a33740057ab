"""Running flows: results, the engine's life cycle, storage access, re-runs, suspend and resume."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest

from flowkit import FunctorTask, LinearFlow, Task, UnorderedFlow, engines
from flowkit.exceptions import InvalidFlowError, NotFound
from flowkit.states import AtomState, FlowState


class Counting:
    """Makes tasks that count their executions."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.order: list[str] = []
        self.lock = threading.Lock()

    def task(self, name: str, provides: Any = None, requires: tuple[str, ...] = (), value: Any = None):
        def execute(**kwargs: Any) -> Any:
            with self.lock:
                self.calls[name] += 1
                self.order.append(name)
            return value if value is not None else f"{name}-result"

        return FunctorTask(execute, name=name, provides=provides, requires=list(requires))


@pytest.fixture
def counting() -> Counting:
    return Counting()


def test_run_returns_every_provided_value_and_the_store(counting):
    flow = LinearFlow("f").add(
        counting.task("a", provides="x", value=1),
        counting.task("b", provides=("y", "z"), value=(2, 3), requires=("x",)),
        counting.task("c"),  # provides nothing
    )
    out = engines.run(flow, store={"given": "g"})
    assert out == {"given": "g", "x": 1, "y": 2, "z": 3}


def test_provided_value_overrides_store_value_of_same_name(counting):
    flow = LinearFlow("f").add(counting.task("a", provides="x", value="atom"))
    assert engines.run(flow, store={"x": "store"})["x"] == "atom"


def test_load_then_life_cycle_steps(counting):
    flow = LinearFlow("f").add(counting.task("a", provides="x"), counting.task("b", requires=("x", "s")))
    engine = engines.load(flow, store={"s": 1})
    assert isinstance(engine, engines.Engine)
    compiled = engine.compile()
    assert compiled is engine.compile()  # idempotent
    engine.prepare()
    engine.prepare()
    assert engine.storage.get_flow_state() is FlowState.PENDING
    assert engine.storage.get_atom_state("a") is AtomState.PENDING
    engine.validate()
    assert counting.calls == {}
    engine.run()
    assert counting.calls == {"a": 1, "b": 1}
    assert engine.storage.get_flow_state() is FlowState.SUCCESS


def test_run_iter_yields_states_and_ends_with_success(counting):
    flow = LinearFlow("f").add(counting.task("a"), counting.task("b"), counting.task("c"))
    engine = engines.load(flow)
    states = list(engine.run_iter())
    assert states
    assert all(isinstance(s, FlowState) for s in states)
    assert states[0] is FlowState.RUNNING
    assert states[-1] is FlowState.SUCCESS
    assert set(states[:-1]) == {FlowState.RUNNING}
    assert counting.calls == {"a": 1, "b": 1, "c": 1}


def test_run_iter_is_lazy(counting):
    flow = LinearFlow("f").add(counting.task("a"), counting.task("b"), counting.task("c"))
    it = engines.load(flow).run_iter()
    next(it)
    assert sum(counting.calls.values()) < 3
    for _ in it:
        pass
    assert counting.calls == {"a": 1, "b": 1, "c": 1}


def test_storage_fetch_fetch_all_and_states(counting):
    flow = LinearFlow("f").add(
        counting.task("a", provides="x", value=10),
        counting.task("b", provides={"k1", "k2"}, value={"k1": "v1", "k2": "v2"}),
    )
    engine = engines.load(flow, store={"s": "store-value"})
    engine.run()
    st = engine.storage
    assert st.fetch("x") == 10
    assert st.fetch("k2") == "v2"
    assert st.fetch("s") == "store-value"
    assert st.fetch_all() == {"s": "store-value", "x": 10, "k1": "v1", "k2": "v2"}
    assert st.get_atom_state("a") is AtomState.SUCCESS
    assert st.get_atom_state("b") == "SUCCESS"  # str enum: TaskFlow's bare strings compare equal
    assert st.get_flow_state() is FlowState.SUCCESS
    with pytest.raises(NotFound, match="nothing"):
        st.fetch("nothing")
    with pytest.raises(NotFound, match="no-such-atom"):
        st.get_atom_state("no-such-atom")


def test_fetch_before_run_sees_only_the_store(counting):
    engine = engines.load(LinearFlow("f").add(counting.task("a", provides="x")), store={"s": 1})
    assert engine.storage.fetch_all() == {"s": 1}
    with pytest.raises(NotFound):
        engine.storage.fetch("x")


def test_succeeded_flow_runs_again_without_executing_tasks(counting):
    flow = LinearFlow("f").add(counting.task("a", provides="x", value=1), counting.task("b"))
    engine = engines.load(flow)
    engine.run()
    assert counting.calls == {"a": 1, "b": 1}
    states = list(engine.run_iter())
    assert states[-1] is FlowState.SUCCESS
    engine.run()
    assert counting.calls == {"a": 1, "b": 1}
    assert engine.storage.fetch("x") == 1
    assert engine.storage.get_flow_state() is FlowState.SUCCESS


def test_task_class_instance_runs_in_its_own_engines(counting):
    class Hello(Task):
        default_provides = "greeting"

        def execute(self, who):
            return f"hello {who}"

    task = Hello(name="hello")
    assert engines.run(LinearFlow("one").add(task), store={"who": "a"})["greeting"] == "hello a"
    assert engines.run(LinearFlow("two").add(task), store={"who": "b"})["greeting"] == "hello b"


def test_suspend_from_a_listener_then_resume(counting):
    names = [f"t{i}" for i in range(1, 7)]
    flow = LinearFlow("f").add(*(counting.task(n, provides=f"out{n}") for n in names))
    engine = engines.load(flow)

    def on_success(state, details):
        if details["atom_name"] == "t3":
            engine.suspend()

    engine.atom_notifier.register(AtomState.SUCCESS, on_success)
    flow_states: list[Any] = []
    engine.notifier.register("*", lambda state, details: flow_states.append(state))
    engine.run()  # returns normally on suspend
    st = engine.storage
    assert st.get_flow_state() is FlowState.SUSPENDED
    assert [st.get_atom_state(n) for n in names] == [AtomState.SUCCESS] * 3 + [AtomState.PENDING] * 3
    assert counting.order == ["t1", "t2", "t3"]
    assert flow_states[-1] is FlowState.SUSPENDED

    engine.run()
    assert st.get_flow_state() is FlowState.SUCCESS
    assert counting.order == names
    assert counting.calls == dict.fromkeys(names, 1)
    assert FlowState.RESUMING in flow_states
    assert flow_states[-1] is FlowState.SUCCESS
    assert st.fetch("outt6") == "t6-result"


def test_suspend_from_another_thread_under_parallel_engine(counting):
    release = threading.Event()
    engine_box: list[engines.Engine] = []

    def blocker():
        # suspend from a worker thread while this atom is running: it finishes, nothing new starts
        engine_box[0].suspend()
        release.set()
        return "blocked"

    flow = LinearFlow("f").add(
        counting.task("a"),
        FunctorTask(blocker, name="blocker"),
        counting.task("c"),
        counting.task("d"),
    )
    engine = engines.load(flow, engine="parallel", max_workers=2)
    engine_box.append(engine)
    engine.run()
    assert release.is_set()
    assert engine.storage.get_flow_state() is FlowState.SUSPENDED
    assert engine.storage.get_atom_state("blocker") is AtomState.SUCCESS
    assert engine.storage.get_atom_state("c") is AtomState.PENDING
    engine.run()
    assert engine.storage.get_flow_state() is FlowState.SUCCESS
    assert counting.calls == {"a": 1, "c": 1, "d": 1}


def test_suspend_then_resume_with_unordered_flow_runs_each_once(counting):
    flow = LinearFlow("f").add(
        counting.task("first"),
        UnorderedFlow("u").add(*(counting.task(f"u{i}") for i in range(4))),
        counting.task("last"),
    )
    engine = engines.load(flow)
    engine.atom_notifier.register(
        AtomState.SUCCESS,
        lambda state, details: engine.suspend() if details["atom_name"] == "first" else None,
    )
    engine.run()
    assert engine.storage.get_flow_state() is FlowState.SUSPENDED
    assert counting.calls == {"first": 1}
    engine.run()
    assert engine.storage.get_flow_state() is FlowState.SUCCESS
    assert counting.calls == {"first": 1, "last": 1, **{f"u{i}": 1 for i in range(4)}}


def test_inject_between_suspend_and_resume(counting):
    seen = {}

    def needs(late):
        seen["late"] = late

    flow = LinearFlow("f").add(counting.task("a"), FunctorTask(needs, name="needs"))
    engine = engines.load(flow, store={"late": "early"})
    engine.atom_notifier.register(
        AtomState.SUCCESS, lambda state, details: engine.suspend() if details["atom_name"] == "a" else None
    )
    engine.run()
    engine.storage.inject({"late": "injected"})
    engine.run()
    assert seen == {"late": "injected"}


def test_unknown_engine_and_options_are_rejected():
    flow = LinearFlow("f")
    with pytest.raises(InvalidFlowError, match="bogus"):
        engines.load(flow, engine="bogus")
    with pytest.raises(InvalidFlowError, match="frobnicate"):
        engines.load(flow, frobnicate=True)
    with pytest.raises(InvalidFlowError):
        engines.load(flow, engine="serial", executor="threads")
    with pytest.raises(InvalidFlowError, match="max_workers"):
        engines.load(flow, engine="parallel", max_workers=0)


def test_empty_flow_succeeds():
    engine = engines.load(LinearFlow("empty"))
    engine.run()
    assert engine.storage.get_flow_state() is FlowState.SUCCESS
    assert engines.run(UnorderedFlow("e2"), store={"a": 1}) == {"a": 1}
