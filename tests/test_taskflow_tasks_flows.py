"""TaskFlow's task and flow names: ``Task.notifier``, ``Task.copy``, map/reduce functor tasks,
``FunctorTask(version=)``, ``Flow.iter_nodes``, ``graph_flow.TargetedFlow`` and ``impl_memory``."""

from __future__ import annotations

import logging
import pickle
from typing import Any

import pytest

from flowkit import FunctorTask, LinearFlow, Task, engines
from flowkit.exceptions import InvalidAtomArgumentError, InvalidFlowError, InvalidFormat
from flowkit.notifier import EVENT_UPDATE_PROGRESS
from flowkit.patterns import graph_flow
from flowkit.persistence.backends import impl_memory
from flowkit.task import MapFunctorTask, ReduceFunctorTask


class Progressing(Task):
    def execute(self, steps: list[float]) -> int:
        for value in steps:
            self.update_progress(value)
        return len(steps)


class Make(Task):
    def __init__(self, name: str, provides: Any = None, **kwargs: Any) -> None:
        super().__init__(name=name, provides=provides, **kwargs)

    def execute(self, **kwargs: Any) -> str:
        return self.name


def test_task_notifier_receives_progress_when_executed_directly_and_by_an_engine() -> None:
    seen: list[float] = []
    task = Progressing()
    task.notifier.register(EVENT_UPDATE_PROGRESS, lambda event, details: seen.append(details["progress"]))
    task.execute([0.0, 0.5, 1.0])
    assert seen == [0.0, 0.5, 1.0]
    seen.clear()
    engines.load(LinearFlow("f").add(task), store={"steps": [0.25, 0.75]}).run()
    assert seen == [0.0, 0.25, 0.75, 1.0]  # the engine tells the start and the end, as TaskFlow's


def test_progress_out_of_bounds_is_clamped_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[float] = []
    task = Progressing()
    task.notifier.register(EVENT_UPDATE_PROGRESS, lambda event, details: seen.append(details["progress"]))
    with caplog.at_level(logging.WARNING, logger="flowkit.task"):
        task.execute([-1.0, 0.5, 2.0])
    assert seen == [0.0, 0.5, 1.0]
    assert len([r for r in caplog.records if "clamped" in r.getMessage()]) == 2


def test_copy_keeps_or_drops_listeners_and_pickling_drops_them() -> None:
    task = Progressing()
    task.notifier.register(EVENT_UPDATE_PROGRESS, lambda event, details: None)
    assert len(task.copy().notifier) == 1
    assert len(task.copy(retain_listeners=False).notifier) == 0
    copied = task.copy()
    task.notifier.reset()
    assert len(copied.notifier) == 1
    task.notifier.register(EVENT_UPDATE_PROGRESS, lambda event, details: None)  # lambdas do not pickle
    assert len(pickle.loads(pickle.dumps(task)).notifier) == 0


def test_functor_task_version_and_callable_checks() -> None:
    assert FunctorTask(lambda: None, version=(2, 0)).version == (2, 0)
    assert FunctorTask(lambda: None).version == (1, 0)
    for bad in ({"execute": 2}, {"execute": lambda: None, "revert": 2}):
        with pytest.raises(InvalidAtomArgumentError) as info:
            FunctorTask(**bad)  # type: ignore[arg-type]
        assert isinstance(info.value, ValueError) and isinstance(info.value, InvalidFlowError)


def test_map_and_reduce_functor_tasks_run_in_requires_order() -> None:
    flow = LinearFlow("f").add(
        MapFunctorTask(lambda x: x * 2, requires=["b", "a"], provides="doubled", name="map"),
        ReduceFunctorTask(lambda x, y: f"{x}{y}", requires=["a", "b", "c"], provides="joined", name="reduce"),
    )
    engine = engines.load(flow, store={"a": 1, "b": 2, "c": 3})
    engine.run()
    assert engine.storage.fetch("doubled") == [4, 2]
    assert engine.storage.fetch("joined") == "123"


@pytest.mark.parametrize(
    "make, error",
    [
        (lambda: MapFunctorTask(2, requires=["a"]), InvalidAtomArgumentError),  # type: ignore[arg-type]
        (lambda: MapFunctorTask(lambda: None, requires=["a"]), InvalidAtomArgumentError),
        (lambda: MapFunctorTask(lambda x, y: None, requires=["a"]), InvalidAtomArgumentError),
        (lambda: ReduceFunctorTask(lambda x: None, requires=["a", "b"]), InvalidAtomArgumentError),
        (lambda: ReduceFunctorTask(lambda x, y: None, requires=["a"]), InvalidAtomArgumentError),
        (lambda: ReduceFunctorTask(lambda x, y: None, requires=1), TypeError),  # type: ignore[arg-type]
    ],
)
def test_functor_tasks_refuse_bad_functors_and_requires(make: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        make()


def test_iter_nodes_yields_children_with_empty_metadata() -> None:
    a, b = Make("a"), Make("b")
    assert list(LinearFlow("f").add(a, b).iter_nodes()) == [(a, {}), (b, {})]


def test_targeted_flow_runs_only_what_the_target_needs() -> None:
    a = Make("a", provides="x")
    b = Make("b", requires=["x"], provides="y")
    c = Make("c")
    d = Make("d")
    flow = graph_flow.TargetedFlow("g").add(a, b, c, d)
    flow.link(c, b)
    flow.set_target(b)
    assert [n for n, _ in flow.iter_nodes()] == [a, b, c]
    assert len(flow) == 3
    assert [(u, v) for u, v, _ in flow.iter_links()] == [(a, b), (c, b)]
    engine = engines.load(flow)
    engine.run()
    assert engine.storage.get_atom_states() == {"a": "SUCCESS", "b": "SUCCESS", "c": "SUCCESS"}
    flow.reset_target()
    assert len(flow) == 4
    with pytest.raises(InvalidAtomArgumentError, match=r"^Node 'zzz' not found"):
        flow.set_target(Make("zzz"))


def test_impl_memory_backend_from_a_settings_dict() -> None:
    backend = impl_memory.MemoryBackend(conf={})
    engine = engines.load(LinearFlow("f").add(Make("a", provides="x")), backend=backend)
    engine.run()
    with backend.get_connection() as conn:
        assert [fd.name for book in conn.get_logbooks() for fd in book] == ["f"]
    assert impl_memory.MemoryBackend({"connection": "memory://"}).display_url.startswith("memory")
    with pytest.raises(InvalidFormat, match="'bogus'"):
        impl_memory.MemoryBackend({"bogus": 1})


def test_temporary_flow_detail_is_saved_and_usable_by_an_engine() -> None:
    from flowkit.persistence import temporary
    from flowkit.utils import persistence_utils

    assert persistence_utils.temporary_flow_detail is temporary.temporary_flow_detail
    backend = impl_memory.MemoryBackend()
    book, flow_detail = persistence_utils.temporary_flow_detail(backend, meta={"k": "v"})
    with backend.get_connection() as conn:
        assert conn.get_flow_detail(flow_detail.uuid).meta == {"k": "v"}
    engine = engines.load(LinearFlow("f").add(Make("a")), backend=backend, book=book, flow_detail=flow_detail)
    engine.run()
    with backend.get_connection() as conn:
        assert conn.get_flow_detail(flow_detail.uuid).state == "SUCCESS"
    assert persistence_utils.temporary_flow_detail()[1].name == "tmp-flow-detail"
    assert persistence_utils.temporary_log_book(backend).name == "tmp"


class SeparateRevert(Task):
    def execute(self, execute_arg: Any) -> str:
        return "done"

    def revert(self, revert_arg: Any, result: Any, flow_failures: Any, optional_arg: Any = None) -> None:
        SeparateRevert.seen.append((revert_arg, result, optional_arg))

    seen: list[Any] = []


class Boom(Task):
    def execute(self) -> None:
        raise RuntimeError("boom")


def test_revert_rebind_and_revert_requires_bind_revert_apart() -> None:
    task = SeparateRevert(rebind=("a",), revert_rebind=("b",))
    assert task.rebind == {"execute_arg": "a"}
    assert task.revert_rebind == {"revert_arg": "b"}
    assert task.requires == {"a", "b"}
    task = SeparateRevert(requires=["execute_arg"], revert_requires=["revert_arg"])
    assert task.revert_rebind == {"revert_arg": "revert_arg"}
    task = SeparateRevert(requires="execute_arg", revert_requires="revert_arg")  # a str is one symbol
    assert task.rebind == {"execute_arg": "execute_arg"} and task.revert_rebind == {
        "revert_arg": "revert_arg"
    }
    task = SeparateRevert(rebind=("a",), revert_rebind={"revert_arg": "b", "optional_arg": "c"})
    assert task.revert_optional == {"c"}
    SeparateRevert.seen.clear()
    engine = engines.load(LinearFlow("f").add(task, Boom()), store={"a": 1, "b": 2, "c": 3})
    with pytest.raises(RuntimeError):
        engine.run()
    assert SeparateRevert.seen == [(2, "done", 3)]
    with pytest.raises(InvalidAtomArgumentError, match="'nope'"):
        SeparateRevert(revert_rebind={"nope": "x"})
