"""Runs that stop early or fail at awkward moments: the engine stays consistent and resumable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flowkit import FunctorTask, LinearFlow, Task, UnorderedFlow, engines, retry
from flowkit.exceptions import StorageError
from flowkit.states import AtomState, FlowState
from flowkit.storage import Recorder, Storage
from tests.support.background import Background
from tests.support.persistence import fresh_backend, saved_new_flow, saved_states


class Log(Task):
    def __init__(self, name: str, log: list[str], fail_first: int = 0) -> None:
        super().__init__(name=name)
        self.log = log
        self.fail_first = fail_first

    def execute(self) -> str:
        self.log.append(self.name)
        if self.log.count(self.name) <= self.fail_first:
            raise RuntimeError(f"{self.name} fails")
        return self.name

    def revert(self, **kwargs: Any) -> None:
        self.log.append(f"-{self.name}")


def test_serial_unordered_flow_under_a_retry_reruns_only_through_the_controller() -> None:
    log: list[str] = []
    flow = LinearFlow("f").add(
        UnorderedFlow("u", retry=retry.Times(3)).add(
            Log("a", log, fail_first=1), Log("b", log), Log("c", log)
        )
    )
    engine = engines.load(flow)
    engine.run()
    assert engine.storage.get_flow_state() is FlowState.SUCCESS
    # a fails first: b and c, released but not started, must not run before the controller again
    assert log == ["a", "-a", "a", "b", "c"]


def test_an_abandoned_run_iter_leaves_the_engine_resumable() -> None:
    log: list[str] = []
    engine = engines.load(LinearFlow("f").add(Log("a", log), Log("b", log), Log("c", log)))
    steps = engine.run_iter()
    for _ in steps:
        if log == ["a"]:
            break
    steps.close()
    assert engine.storage.get_flow_state() is FlowState.SUSPENDED
    engine.run()
    assert engine.storage.get_flow_state() is FlowState.SUCCESS
    assert log == ["a", "b", "c"]


def test_a_suspend_asked_before_run_is_kept() -> None:
    log: list[str] = []
    engine = engines.load(LinearFlow("f").add(Log("a", log)))
    engine.suspend()
    engine.run()
    assert engine.storage.get_flow_state() is FlowState.SUSPENDED and log == []
    engine.run()
    assert log == ["a"]


def test_a_base_exception_in_a_pool_thread_does_not_hang_the_parallel_engine() -> None:
    def bail() -> None:
        raise SystemExit(3)

    engine = engines.load(LinearFlow("f").add(FunctorTask(bail, name="bail")), engine="parallel")
    run = Background(engine.run)
    assert run.wait(20), "the engine hung on SystemExit in a task"
    assert run.errors and isinstance(run.errors[0], SystemExit)
    assert engine.storage.get_atom_state("bail") is AtomState.REVERTED


class FailingRecorder(Recorder):
    """Refuses to save a SUCCESS of atom ``name``."""

    def __init__(self, name: str) -> None:
        self.name = name

    def atom_changed(self, storage: Storage, i: int, state: AtomState) -> None:
        if storage.compiled.names[i] == self.name and state is AtomState.SUCCESS:
            raise StorageError("database gone")


def test_memory_never_claims_a_state_the_recorder_did_not_save() -> None:
    log: list[str] = []
    flow = LinearFlow("f").add(Log("a", log), Log("b", log))
    engine = engines.engine.Engine(flow, recorder=FailingRecorder("a"))
    with pytest.raises(StorageError):
        engine.run()
    assert engine.storage.get_atom_state("a") is AtomState.RUNNING  # as saved
    assert engine.storage.get_flow_state() is FlowState.SUSPENDED
    assert log == ["a"]


class Crash(BaseException):
    """Stands for the process dying (kill -9) in the middle of a revert."""


def test_a_crash_while_a_retry_reverts_its_scope_resumes_the_revert_then_the_retry(tmp_path: Path) -> None:
    backend = fresh_backend(f"sqlite:///{tmp_path}/f.db")
    log: list[str] = []
    crashed = []

    class Slow(Task):
        def execute(self) -> str:
            log.append("slow")
            return "slow"

        def revert(self, **kwargs: Any) -> None:
            if not crashed:
                crashed.append(True)
                raise Crash()
            log.append("-slow")

    def make() -> LinearFlow:
        return LinearFlow("f", retry=retry.Times(2)).add(Slow("slow"), Log("flaky", log, fail_first=1))

    book, fd = saved_new_flow(backend, "f")
    with pytest.raises(Crash):
        engines.load(make(), backend=backend, book=book, flow_detail=fd).run()
    states = saved_states(backend, fd.uuid)
    assert states["f_retry"] == "RETRYING"  # the decision was saved before the revert
    assert states["slow"] == "REVERTING"
    resumed = engines.load(make(), backend=backend, flow_detail=fd)
    resumed.run()
    assert resumed.storage.get_flow_state() is FlowState.SUCCESS
    # the interrupted revert finished, then the second attempt ran the whole scope
    assert log == ["slow", "flaky", "-flaky", "-slow", "slow", "flaky"]
    backend.close()


def test_a_resumed_revert_does_not_revert_an_atom_that_never_started(tmp_path: Path) -> None:
    backend = fresh_backend(f"sqlite:///{tmp_path}/f.db")
    log: list[str] = []
    crashed: list[bool] = []

    class Step(Task):
        def execute(self) -> str:
            log.append(self.name)
            return self.name

        def revert(self, **kwargs: Any) -> None:
            if self.name == "other" and not crashed:  # the process dies in the middle of reverting
                crashed.append(True)
                raise Crash()
            log.append(f"-{self.name}")

    def undecidable(history: dict[str, Any]) -> bool:
        raise ZeroDivisionError("cannot decide")

    def make() -> Any:
        from flowkit import GraphFlow

        first, guarded, other = Step("first"), Step("guarded"), Step("other")
        return GraphFlow("g").add(first, other, guarded).link(first, guarded, decider=undecidable)

    book, fd = saved_new_flow(backend, "g")
    with pytest.raises(Crash):
        engines.load(make(), backend=backend, book=book, flow_detail=fd).run()
    assert saved_states(backend, fd.uuid)["guarded"] == "FAILURE"  # not reverted yet when it died
    resumed = engines.load(make(), backend=backend, flow_detail=fd)
    with pytest.raises(Exception, match="cannot decide"):
        resumed.run()
    assert resumed.storage.get_flow_state() is FlowState.REVERTED
    assert "guarded" not in log and "-guarded" not in log  # it never ran, so it is never reverted
    assert log[-2:] == ["-other", "-first"]
    backend.close()
