"""The parallel engine: thread and process executors, user executors, pickling checks, progress."""

from __future__ import annotations

import multiprocessing
import os
import threading
from concurrent import futures
from typing import Any

import pytest

from flowkit import FunctorTask, LinearFlow, Task, UnorderedFlow, engines, notifier
from flowkit.exceptions import NotSerializableError
from flowkit.states import AtomState, FlowState
from tests.support import tasks as importable
from tests.support.tasks import Add, Explode, Multiply, Progressing, ReturnsLock, WhereAmI


class Meet(Task):
    """Waits for all its siblings at a barrier: only succeeds if they really run at the same time."""

    def __init__(self, barrier: threading.Barrier, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.barrier = barrier

    def execute(self):
        self.barrier.wait(timeout=10)
        return threading.current_thread().name


def test_task_module_is_importable_by_name():
    assert importable.__name__ == "tests.support.tasks"
    assert Add.__module__ == "tests.support.tasks"


def test_threads_overlap_up_to_max_workers():
    barrier = threading.Barrier(4)
    flow = UnorderedFlow("u").add(*(Meet(barrier, name=f"m{i}", provides=f"t{i}") for i in range(4)))
    engine = engines.load(flow, engine="parallel", executor="threads", max_workers=4)
    engine.run()
    out = engine.storage.fetch_all()
    assert len({out[f"t{i}"] for i in range(4)}) == 4  # four different worker threads
    assert threading.current_thread().name not in {out[f"t{i}"] for i in range(4)}
    assert engine.storage.get_flow_state() is FlowState.SUCCESS


def test_default_parallel_executor_is_threads():
    barrier = threading.Barrier(2)
    flow = UnorderedFlow("u").add(Meet(barrier, name="a"), Meet(barrier, name="b"))
    engines.run(flow, engine="parallel")


def test_process_executor_runs_importable_tasks():
    flow = LinearFlow("f").add(
        UnorderedFlow("u").add(Add(name="add"), WhereAmI(name="where")),
        Multiply(name="mul"),
        FunctorTask(importable.double, name="double", rebind={"value": "product"}, provides="doubled"),
    )
    out = engines.run(flow, store={"x": 2, "y": 3}, engine="parallel", executor="processes", max_workers=2)
    assert out["sum"] == 5
    assert out["product"] == 50
    assert out["doubled"] == 100
    assert out["pid"] != os.getpid()


def test_process_executor_reraises_the_tasks_exception():
    flow = LinearFlow("f").add(Add(name="add"), Explode(name="explode"))
    engine = engines.load(
        flow, store={"x": 1, "y": 1}, engine="parallel", executor="processes", max_workers=1
    )
    with pytest.raises(ValueError, match="explode in explode"):
        engine.run()
    assert engine.storage.get_flow_state() is FlowState.REVERTED
    assert engine.storage.get_atom_state("add") is AtomState.REVERTED


def test_process_executor_rejects_lambda_task_before_anything_runs():
    flow = LinearFlow("f").add(
        Add(name="add"),
        FunctorTask(lambda sum: sum, name="lambda-task"),
    )
    engine = engines.load(flow, store={"x": 1, "y": 1}, engine="parallel", executor="processes")
    started: list[str] = []
    engine.atom_notifier.register(AtomState.RUNNING, lambda s, d: started.append(d["atom_name"]))
    with pytest.raises(NotSerializableError) as info:
        engine.validate()
    assert info.value.atom == "lambda-task"
    assert "lambda-task" in str(info.value)
    with pytest.raises(NotSerializableError, match="lambda-task"):
        engine.run()
    assert started == []
    assert set(engine.storage.get_atom_states().values()) == {AtomState.PENDING}


def test_process_executor_unpicklable_result_fails_naming_the_atom():
    flow = LinearFlow("f").add(Add(name="add"), ReturnsLock(name="locker"))
    engine = engines.load(
        flow, store={"x": 1, "y": 1}, engine="parallel", executor="processes", max_workers=1
    )
    with pytest.raises(NotSerializableError) as info:
        engine.run()
    assert info.value.atom == "locker"
    assert "locker" in str(info.value)
    assert "result" in str(info.value)
    assert engine.storage.get_atom_state("add") is AtomState.REVERTED


def test_user_thread_pool_is_used_and_not_shut_down():
    executor = futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="users-pool")
    try:
        barrier = threading.Barrier(2)
        flow = UnorderedFlow("u").add(
            Meet(barrier, name="a", provides="ta"), Meet(barrier, name="b", provides="tb")
        )
        out = engines.run(flow, engine="parallel", executor=executor)
        assert out["ta"].startswith("users-pool")
        assert out["tb"].startswith("users-pool")
        # still usable: the engine did not shut it down
        assert executor.submit(lambda: 42).result(timeout=5) == 42
        # and usable by a second engine run
        out2 = engines.run(
            UnorderedFlow("u2").add(Meet(threading.Barrier(1), name="c", provides="tc")),
            engine="parallel",
            executor=executor,
        )
        assert out2["tc"].startswith("users-pool")
    finally:
        executor.shutdown(wait=True)


def test_user_process_pool_is_used():
    ctx = multiprocessing.get_context("forkserver")
    with futures.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as executor:
        out = engines.run(LinearFlow("f").add(WhereAmI(name="where")), engine="parallel", executor=executor)
        assert out["pid"] != os.getpid()
        assert executor.submit(os.getpid).result(timeout=30) == out["pid"]


class ThreadProgress(Task):
    def execute(self):
        self.update_progress(0.3)
        self.update_progress(0.9)
        return threading.current_thread().name


@pytest.mark.parametrize(
    ("executor", "task_cls", "expected"),
    [("threads", ThreadProgress, [0.3, 0.9]), ("processes", Progressing, [0.25, 0.5, 1.0])],
)
def test_progress_events_reach_the_atom_notifier(executor, task_cls, expected):
    engine = engines.load(LinearFlow("f").add(task_cls(name="prog")), engine="parallel", executor=executor)
    events: list[dict[str, Any]] = []
    lock = threading.Lock()

    def on_progress(event, details):
        with lock:
            events.append(details)

    engine.atom_notifier.register(notifier.EVENT_UPDATE_PROGRESS, on_progress)
    engine.run()
    assert [d["progress"] for d in events] == expected
    assert {d["atom_name"] for d in events} == {"prog"}
    assert {d["task_name"] for d in events} == {"prog"}


def test_process_executor_unpicklable_argument_fails_naming_the_atom():
    flow = LinearFlow("f").add(FunctorTask(importable.double, name="dbl"))
    engine = engines.load(flow, store={"value": threading.Lock()}, engine="parallel", executor="processes")
    with pytest.raises(NotSerializableError) as info:
        engine.run()
    err = info.value
    assert err.atom == "dbl"
    assert "arguments" in str(err)


def test_process_executor_unpicklable_argument_is_a_single_clean_failure():
    flow = LinearFlow("f").add(FunctorTask(importable.double, name="dbl"))
    engine = engines.load(flow, store={"value": threading.Lock()}, engine="parallel", executor="processes")
    with pytest.raises(NotSerializableError, match="dbl"):
        engine.run()
    assert engine.storage.get_flow_state() is FlowState.REVERTED
