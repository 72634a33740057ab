"""``run_iter()`` steps and the order listeners hear retries in: what TaskFlow programs observe.

Programs that drive several engines by hand read TaskFlow's engine steps from ``run_iter()``
(RESUMING, then rounds of SCHEDULING / WAITING / ANALYZING, then the final state) and may
``send(True)`` to suspend. Listeners hear a retry controller's RETRYING once its scope is reverted.
"""

from __future__ import annotations

from typing import Any

import pytest

from flowkit import LinearFlow, Task, UnorderedFlow, engines, retry, states
from flowkit.notifier import ANY
from flowkit.states import AtomState, EngineState, FlowState

R, SCH, W, AN = EngineState.RESUMING, EngineState.SCHEDULING, EngineState.WAITING, EngineState.ANALYZING


class Note(Task):
    """Appends its name to a shared log when it runs (and ``undo NAME`` when reverted)."""

    def __init__(self, log: list[Any], name: str, fail_times: int = 0) -> None:
        super().__init__(name=name)
        self.log = log
        self.fail_times = fail_times

    def execute(self) -> None:
        self.log.append(self.name)
        if self.fail_times:
            self.fail_times -= 1
            raise RuntimeError(f"{self.name} failed")

    def revert(self, **kwargs: Any) -> None:
        self.log.append(f"undo {self.name}")


def test_states_module_names_the_engine_steps():
    assert (states.SCHEDULING, states.WAITING, states.ANALYZING) == ("SCHEDULING", "WAITING", "ANALYZING")
    assert EngineState.RESUMING == states.RESUMING


def test_a_serial_linear_flow_gives_one_round_per_atom_and_runs_it_while_scheduling():
    log: list[Any] = []
    engine = engines.load(LinearFlow("f").add(Note(log, "a"), Note(log, "b")))
    for step in engine.run_iter():
        log.append(step)
    assert log == [R, SCH, "a", W, AN, SCH, "b", W, AN, FlowState.SUCCESS]


@pytest.mark.parametrize("engine", ["serial", "parallel"])
def test_an_empty_flow_still_makes_one_round(engine):
    assert list(engines.load(LinearFlow("empty"), engine=engine).run_iter()) == [R, SCH, W, AN, "SUCCESS"]


def test_a_parallel_round_starts_every_ready_atom():
    log: list[Any] = []
    flow = UnorderedFlow("u").add(Note(log, "a"), Note(log, "b"), Note(log, "c"))
    steps = list(engines.load(flow, engine="parallel", max_workers=3).run_iter())
    assert steps[:2] == [R, SCH] and steps[-1] == FlowState.SUCCESS
    # one round starts all three; each ANALYZING takes every call finished by then (1 to 3 steps)
    assert steps.count(SCH) == 1 and 1 <= steps.count(AN) <= 3
    assert sorted(log) == ["a", "b", "c"]


def test_sending_true_suspends_before_the_next_atom_and_the_next_run_goes_on():
    log: list[Any] = []
    engine = engines.load(LinearFlow("f").add(Note(log, "a"), Note(log, "b")))
    it = engine.run_iter()
    seen, answer = [], None
    while True:
        try:
            step = it.send(answer)
        except StopIteration:
            break
        seen.append(step)
        answer = step == W
    assert log == ["a"] and seen[-1] == FlowState.SUSPENDED
    assert engine.storage.get_flow_state() is FlowState.SUSPENDED
    resumed = list(engine.run_iter())
    assert resumed[0] == R and resumed[-1] == FlowState.SUCCESS
    assert log == ["a", "b"] and engine.storage.get_flow_state() is FlowState.SUCCESS


def test_a_reset_flow_run_again_reports_resuming_first():
    log: list[Any] = []
    engine = engines.load(LinearFlow("f").add(Note(log, "a")))
    engine.run()
    engine.reset()
    assert list(engine.run_iter()) == [R, SCH, W, AN, FlowState.SUCCESS]
    assert log == ["a", "a"]


def test_retrying_is_announced_after_the_scope_is_reverted_but_saved_before():
    log: list[Any] = []
    flow = LinearFlow("f", retry=retry.Times(2, name="r")).add(Note(log, "a"), Note(log, "b", fail_times=1))
    engine = engines.load(flow)
    heard: list[tuple[str, AtomState, Any]] = []

    def hear(state: AtomState, details: dict[str, Any]) -> None:
        name = details["atom_name"]
        saved = engine.storage.get_atom_state("r") if state is AtomState.REVERTING else None
        heard.append((name, state, saved))

    engine.atom_notifier.register(ANY, hear)
    engine.run()
    names_states = [(n, s) for n, s, _ in heard]
    i = names_states.index(("r", AtomState.RETRYING))
    assert names_states[i - 4 : i] == [
        ("b", AtomState.REVERTING),
        ("b", AtomState.REVERTED),
        ("a", AtomState.REVERTING),
        ("a", AtomState.REVERTED),
    ]
    # while the scope was being reverted the decision was already saved
    assert {saved for n, s, saved in heard[i - 4 : i] if s is AtomState.REVERTING} == {AtomState.RETRYING}
    assert log == ["a", "b", "undo b", "undo a", "a", "b"]


def test_flow_listeners_hear_running_then_reverted_though_reverting_is_saved():
    log: list[Any] = []
    engine = engines.load(LinearFlow("f").add(Note(log, "a"), Note(log, "boom", fail_times=1)))
    heard: list[tuple[FlowState, FlowState]] = []
    saved_during_revert: list[FlowState] = []
    engine.notifier.register(ANY, lambda state, details: heard.append((state, details["old_state"])))
    engine.atom_notifier.register(
        AtomState.REVERTING,
        lambda state, details: saved_during_revert.append(engine.storage.get_flow_state()),
    )
    with pytest.raises(RuntimeError):
        engine.run()
    assert [s for s, _ in heard] == [FlowState.RUNNING, FlowState.REVERTED]
    assert set(saved_during_revert) == {FlowState.REVERTING}


class Stuck(Task):
    """Runs fine; its revert fails."""

    def execute(self) -> None:
        pass

    def revert(self, **kwargs: Any) -> None:
        raise OSError("cannot undo")


def test_a_failed_revert_raises_its_own_exception_chained_to_the_failure_that_caused_the_revert():
    log: list[Any] = []
    engine = engines.load(LinearFlow("f").add(Stuck(name="stuck"), Note(log, "boom", fail_times=1)))
    with pytest.raises(OSError, match="cannot undo") as caught:
        engine.run()
    assert isinstance(caught.value.__context__, RuntimeError)
    assert str(caught.value.__context__) == "boom failed"
    assert engine.storage.get_flow_state() is FlowState.FAILURE


def test_several_failed_reverts_raise_them_together():
    from flowkit.exceptions import WrappedFailure

    log: list[Any] = []
    flow = UnorderedFlow("u").add(Stuck(name="s1"), Stuck(name="s2"))
    engine = engines.load(LinearFlow("f").add(flow, Note(log, "boom", fail_times=1)))
    with pytest.raises(WrappedFailure) as caught:
        engine.run()
    assert sorted(f.atom_name for f in caught.value) == ["s1", "s2"]
    assert isinstance(caught.value.__context__, RuntimeError)


def test_an_error_thrown_into_run_iter_ends_the_flow_failure_and_is_raised():
    log: list[Any] = []
    engine = engines.load(LinearFlow("f").add(Note(log, "a"), Note(log, "b"), Note(log, "c")))
    it = engine.run_iter()
    rounds = 0
    with pytest.raises(OSError, match="broke"):
        for step in it:
            rounds += step == SCH
            if rounds == 2:
                it.throw(OSError("broke"))
    assert engine.storage.get_flow_state() is FlowState.FAILURE
    assert log == ["a"]  # thrown in at the second round: b was not started
    engine.run()  # the flow can be run on from where it stopped
    assert log == ["a", "b", "c"] and engine.storage.get_flow_state() is FlowState.SUCCESS


def test_a_suspend_sent_on_the_final_step_is_not_kept_for_the_next_run():
    log: list[Any] = []
    engine = engines.load(LinearFlow("f").add(Note(log, "a")))
    it = engine.run_iter()
    step = next(it)
    while step != FlowState.SUCCESS:
        step = it.send(False)
    with pytest.raises(StopIteration):
        it.send(True)
    engine.reset()
    engine.run()
    assert log == ["a", "a"] and engine.storage.get_flow_state() is FlowState.SUCCESS


def test_a_reverted_flow_run_again_goes_back_to_pending_then_running():
    log: list[Any] = []
    engine = engines.load(LinearFlow("f").add(Note(log, "boom", fail_times=2)))
    with pytest.raises(RuntimeError):
        engine.run()
    heard: list[Any] = []
    engine.notifier.register(ANY, lambda state, details: heard.append(state))
    engine.atom_notifier.register(ANY, lambda state, details: heard.append((details["atom_name"], state)))
    with pytest.raises(RuntimeError):
        engine.run()
    assert heard[:3] == [("boom", AtomState.PENDING), FlowState.PENDING, FlowState.RUNNING]


def test_not_a_flow_is_a_type_error_naming_it():
    with pytest.raises(TypeError, match="not a flow at all"):
        engines.load("not a flow at all")  # type: ignore[arg-type]


@pytest.mark.parametrize("engine", ["serial", "parallel"])
def test_atoms_ready_together_start_by_priority_highest_first(engine):
    log: list[Any] = []
    flow = UnorderedFlow("u")
    for i in range(5):
        task = Note(log, f"t{i}")
        task.priority = i
        flow.add(task)
    started: list[str] = []
    eng = engines.load(flow, engine=engine, max_workers=1) if engine == "parallel" else engines.load(flow)
    eng.atom_notifier.register(AtomState.RUNNING, lambda state, details: started.append(details["atom_name"]))
    eng.run()
    assert started == ["t4", "t3", "t2", "t1", "t0"]


class Halves(Task):
    def execute(self) -> None:
        self.update_progress(0.5)

    def revert(self, **kwargs: Any) -> None:
        pass


def test_a_tasks_own_notifier_hears_progress_start_and_end_around_execute_and_revert():
    from flowkit.notifier import EVENT_UPDATE_PROGRESS

    heard: list[float] = []
    task = Halves(name="h")
    task.notifier.register(EVENT_UPDATE_PROGRESS, lambda event, details: heard.append(details["progress"]))
    log: list[Any] = []
    engine = engines.load(LinearFlow("f").add(task, Note(log, "boom", fail_times=1)))
    with pytest.raises(RuntimeError):
        engine.run()
    assert heard == [0.0, 0.5, 1.0, 0.0, 1.0]
    assert not engine.atom_notifier.active  # nothing of the run is left registered


def test_an_unknown_engine_is_not_found_and_an_invalid_flow_error():
    from flowkit.exceptions import InvalidFlowError, NotFound

    with pytest.raises(NotFound, match="unknown engine 'warp'") as caught:
        engines.load(LinearFlow("f"), engine="warp")
    assert isinstance(caught.value, InvalidFlowError)
    assert str(caught.value).startswith("unknown engine 'warp'; choose one of serial")
