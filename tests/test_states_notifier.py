"""State machines and notifications: every observed transition is allowed; listeners see what they should."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from flowkit import FunctorTask, GraphFlow, LinearFlow, Task, UnorderedFlow, engines, notifier, retry, states
from flowkit.exceptions import ExecutionError, InvalidStateError
from flowkit.failure import Failure
from flowkit.notifier import ANY, Notifier
from flowkit.states import (
    ATOM_TRANSITIONS,
    FLOW_TRANSITIONS,
    JOB_TRANSITIONS,
    AtomState,
    FlowState,
    JobState,
    check_atom_transition,
    check_flow_transition,
    check_job_transition,
    job_sources,
)


class Boom(Exception):
    pass


class Value(Task):
    def __init__(self, value: Any = None, fail: bool = False, revert_fail: bool = False, **kw: Any) -> None:
        super().__init__(**kw)
        self.value = value
        self.fail = fail
        self.revert_fail = revert_fail

    def execute(self):
        if self.fail:
            raise Boom(self.name)
        return self.value

    def revert(self, **kwargs):
        if self.revert_fail:
            raise KeyError(self.name)


class Watch:
    """Registers ANY listeners on both notifiers and keeps every event."""

    def __init__(self, engine: engines.Engine) -> None:
        self.atom_events: list[tuple[Any, dict[str, Any]]] = []
        self.flow_events: list[tuple[Any, dict[str, Any]]] = []
        engine.atom_notifier.register(ANY, lambda e, d: self.atom_events.append((e, d)))
        engine.notifier.register(ANY, lambda e, d: self.flow_events.append((e, d)))

    def atom_transitions(self) -> list[tuple[str, AtomState, AtomState]]:
        return [
            (d["atom_name"], d["old_state"], e)
            for e, d in self.atom_events
            if e != notifier.EVENT_UPDATE_PROGRESS
        ]

    def of(self, atom: str) -> list[AtomState]:
        return [new for name, _, new in self.atom_transitions() if name == atom]

    def flow_states(self) -> list[FlowState]:
        return [e for e, _ in self.flow_events]

    def assert_all_allowed(self) -> None:
        assert self.atom_events, "no atom events observed"
        for name, old, new in self.atom_transitions():
            assert isinstance(new, AtomState)
            assert new in ATOM_TRANSITIONS[old], f"{name}: {old} -> {new} is not allowed"
        assert self.flow_events, "no flow events observed"
        for new, details in self.flow_events:
            old = details["old_state"]
            assert isinstance(new, FlowState)
            assert new in FLOW_TRANSITIONS[old], f"flow: {old} -> {new} is not allowed"


def test_successful_run_transitions():
    flow = LinearFlow("f").add(
        Value(1, name="a", provides="x"), UnorderedFlow("u").add(Value(2, name="b"), Value(3, name="c"))
    )
    engine = engines.load(flow)
    watch = Watch(engine)
    engine.run()
    watch.assert_all_allowed()
    for name in ("a", "b", "c"):
        assert watch.of(name) == [AtomState.RUNNING, AtomState.SUCCESS]
    assert watch.flow_states() == [FlowState.RUNNING, FlowState.SUCCESS]


def test_reverted_run_transitions():
    flow = LinearFlow("f").add(Value(1, name="a"), Value(name="boom", fail=True))
    engine = engines.load(flow)
    watch = Watch(engine)
    with pytest.raises(Boom):
        engine.run()
    watch.assert_all_allowed()
    assert watch.of("a") == [AtomState.RUNNING, AtomState.SUCCESS, AtomState.REVERTING, AtomState.REVERTED]
    assert watch.of("boom") == [
        AtomState.RUNNING,
        AtomState.FAILURE,
        AtomState.REVERTING,
        AtomState.REVERTED,
    ]
    # REVERTING is saved (a crash mid-revert resumes the revert) but flow listeners, as TaskFlow's,
    # hear RUNNING then REVERTED; the REVERTED notice says where it came from.
    assert watch.flow_states() == [FlowState.RUNNING, FlowState.REVERTED]
    assert watch.flow_events[-1][1]["old_state"] is FlowState.REVERTING


def test_revert_failure_run_transitions():
    flow = LinearFlow("f").add(Value(1, name="a", revert_fail=True), Value(name="boom", fail=True))
    engine = engines.load(flow)
    watch = Watch(engine)
    with pytest.raises(KeyError):
        engine.run()
    watch.assert_all_allowed()
    assert watch.of("a")[-1] is AtomState.REVERT_FAILURE
    assert watch.flow_states()[-1] is FlowState.FAILURE


def test_retried_run_transitions():
    attempts = []

    def flaky(attempt):
        attempts.append(attempt)
        if attempt < 3:
            raise Boom("again")

    flow = LinearFlow("f", retry=retry.Times(3, name="r", provides="attempt")).add(
        Value(0, name="steady"), FunctorTask(flaky, name="flaky")
    )
    engine = engines.load(flow)
    watch = Watch(engine)
    engine.run()
    watch.assert_all_allowed()
    assert AtomState.RETRYING in watch.of("r")
    assert watch.of("r")[-1] is AtomState.SUCCESS
    assert watch.of("flaky").count(AtomState.FAILURE) == 2
    assert watch.of("flaky")[-1] is AtomState.SUCCESS


def test_ignored_and_suspended_run_transitions():
    a, b = Value(1, name="a"), Value(2, name="b")
    g = GraphFlow("g").add(a, b).link(a, b, decider=lambda history: False)
    flow = LinearFlow("f").add(g, Value(3, name="c"), Value(4, name="d"))
    engine = engines.load(flow, store={})
    watch = Watch(engine)
    engine.atom_notifier.register(
        AtomState.SUCCESS, lambda e, d: engine.suspend() if d["atom_name"] == "a" else None
    )
    engine.run()
    assert engine.storage.get_flow_state() is FlowState.SUSPENDED
    engine.run()
    watch.assert_all_allowed()
    assert watch.of("b") == [AtomState.IGNORE]
    assert FlowState.SUSPENDED in watch.flow_states()
    assert FlowState.RESUMING in watch.flow_states()


def test_check_atom_transition_rejects_illegal_moves():
    with pytest.raises(InvalidStateError) as info:
        check_atom_transition("my-atom", AtomState.PENDING, AtomState.SUCCESS)
    assert "my-atom" in str(info.value)
    assert "PENDING" in str(info.value)
    assert "SUCCESS" in str(info.value)
    assert info.value.name == "my-atom"
    assert isinstance(info.value, ExecutionError)
    with pytest.raises(InvalidStateError):
        check_atom_transition("my-atom", AtomState.REVERTED, AtomState.SUCCESS)
    with pytest.raises(InvalidStateError):
        check_atom_transition("my-atom", AtomState.IGNORE, AtomState.RUNNING)
    check_atom_transition("my-atom", AtomState.PENDING, AtomState.RUNNING)
    check_atom_transition("my-atom", AtomState.RUNNING, AtomState.SUCCESS)


def test_check_flow_transition_rejects_illegal_moves():
    with pytest.raises(InvalidStateError, match="my-flow"):
        check_flow_transition("my-flow", FlowState.PENDING, FlowState.SUCCESS)
    with pytest.raises(InvalidStateError):
        check_flow_transition("my-flow", FlowState.REVERTED, FlowState.SUCCESS)
    check_flow_transition("my-flow", FlowState.SUCCESS, FlowState.SUCCESS)  # staying put is fine
    check_flow_transition("my-flow", FlowState.RUNNING, FlowState.SUCCESS)


def test_check_job_transition_rejects_illegal_moves_naming_the_job():
    J = JobState
    with pytest.raises(InvalidStateError, match="job 'job-1' cannot go from COMPLETE to CLAIMED") as info:
        check_job_transition("job-1", J.COMPLETE, J.CLAIMED)
    assert (info.value.kind, info.value.name) == ("job", "job-1")
    for old, new in [(J.UNCLAIMED, J.COMPLETE), (J.CLAIMED, J.CLAIMED), (J.SET_ASIDE, J.UNCLAIMED)]:
        with pytest.raises(InvalidStateError):
            check_job_transition("job-1", old, new)
    for new in (J.UNCLAIMED, J.COMPLETE, J.TRASHED, J.SET_ASIDE):
        check_job_transition("job-1", J.CLAIMED, new)
    check_job_transition("job-1", J.UNCLAIMED, J.CLAIMED)
    # what the SQL board's conditional updates match: exactly the states the table lets move there
    assert job_sources(J.CLAIMED) == {J.UNCLAIMED, J.WAITING}
    assert job_sources(J.WAITING) == {J.CLAIMED}  # parked by its owner (durable waits)
    assert job_sources(J.COMPLETE) == job_sources(J.TRASHED) == job_sources(J.UNCLAIMED) == {J.CLAIMED}
    assert job_sources(J.SET_ASIDE) == {J.UNCLAIMED, J.CLAIMED}


def test_transition_tables_cover_every_state():
    assert set(ATOM_TRANSITIONS) == set(AtomState)
    assert set(FLOW_TRANSITIONS) == set(FlowState)
    assert set(JOB_TRANSITIONS) == set(JobState)
    for targets in ATOM_TRANSITIONS.values():
        assert targets <= set(AtomState)
    for targets in FLOW_TRANSITIONS.values():
        assert targets <= set(FlowState)
    for job_targets in JOB_TRANSITIONS.values():
        assert job_targets <= set(JobState)


def test_states_are_taskflow_strings():
    assert AtomState.SUCCESS == states.SUCCESS == "SUCCESS"
    assert FlowState.SUSPENDED == states.SUSPENDED
    assert {s.value for s in FlowState} == {
        "PENDING",
        "RUNNING",
        "SUCCESS",
        "FAILURE",
        "REVERTED",
        "SUSPENDED",
        "RESUMING",
        "REVERTING",
    }


def test_flow_notifier_details():
    flow = LinearFlow("named-flow").add(Value(1, name="a"))
    engine = engines.load(flow)
    watch = Watch(engine)
    engine.run()
    for _, details in watch.flow_events:
        assert details["flow_name"] == "named-flow"
        assert details["flow_uuid"] == engine.storage.flow_uuid
    assert [d["old_state"] for _, d in watch.flow_events] == [FlowState.PENDING, FlowState.RUNNING]


def test_atom_notifier_details_for_tasks_and_retries():
    flow = LinearFlow("f", retry=retry.Times(2, name="ctl", provides="attempt")).add(
        Value({"k": 1}, name="task-a", provides="out")
    )
    engine = engines.load(flow)
    watch = Watch(engine)
    engine.run()
    task_events = [(e, d) for e, d in watch.atom_events if d["atom_name"] == "task-a"]
    retry_events = [(e, d) for e, d in watch.atom_events if d["atom_name"] == "ctl"]
    assert task_events
    assert retry_events
    for _, d in task_events:
        assert d["task_name"] == "task-a"
    for _, d in retry_events:
        assert "task_name" not in d
    success = [d for e, d in task_events if e is AtomState.SUCCESS]
    assert len(success) == 1
    assert success[0]["result"] == {"k": 1}
    retry_success = [d for e, d in retry_events if e is AtomState.SUCCESS]
    assert retry_success[0]["result"] == 1


def test_atom_notifier_failure_details_carry_the_failure():
    engine = engines.load(LinearFlow("f").add(Value(name="boom", fail=True)))
    failures = []
    engine.atom_notifier.register(AtomState.FAILURE, lambda e, d: failures.append(d))
    with pytest.raises(Boom):
        engine.run()
    assert len(failures) == 1
    assert failures[0]["atom_name"] == "boom"
    assert isinstance(failures[0]["result"], Failure)
    assert failures[0]["result"].check(Boom)


def test_specific_event_registration_only_gets_that_event():
    engine = engines.load(LinearFlow("f").add(Value(1, name="a"), Value(2, name="b")))
    running: list[Any] = []
    engine.atom_notifier.register(AtomState.RUNNING, lambda e, d: running.append((e, d["atom_name"])))
    engine.run()
    assert running == [(AtomState.RUNNING, "a"), (AtomState.RUNNING, "b")]


def test_any_and_specific_both_called():
    n = Notifier()
    got: list[str] = []
    n.register(ANY, lambda e, d: got.append(f"any:{e}"))
    n.register("x", lambda e, d: got.append(f"x:{e}"))
    n.notify("x", {})
    n.notify("y", {})
    assert sorted(got) == ["any:x", "any:y", "x:x"]


def test_deregister():
    engine = engines.load(LinearFlow("f").add(Value(1, name="a")))
    got: list[Any] = []

    def cb(event, details):
        got.append(event)

    engine.atom_notifier.register(ANY, cb)
    assert engine.atom_notifier.is_registered(ANY, cb)
    assert engine.atom_notifier.deregister(ANY, cb) is True
    assert not engine.atom_notifier.is_registered(ANY, cb)
    assert engine.atom_notifier.deregister(ANY, cb) is False
    assert engine.atom_notifier.listeners_count() == 0
    assert engine.atom_notifier.active is False
    engine.run()
    assert got == []


def test_details_filter():
    engine = engines.load(LinearFlow("f").add(Value(1, name="a"), Value(2, name="b")))
    got: list[str] = []
    engine.atom_notifier.register(
        AtomState.SUCCESS,
        lambda e, d: got.append(d["atom_name"]),
        details_filter=lambda d: d["atom_name"] == "b",
    )
    engine.run()
    assert got == ["b"]


def test_details_are_copies_per_callback():
    n = Notifier()
    seen: list[dict[str, Any]] = []

    def vandal(event, details):
        details["atom_name"] = "changed"

    n.register(ANY, vandal)
    n.register(ANY, lambda e, d: seen.append(d))
    n.notify("e", {"atom_name": "orig"})
    assert seen == [{"atom_name": "orig"}]


def test_register_rejects_non_callable():
    with pytest.raises(TypeError):
        Notifier().register(ANY, "not callable")  # type: ignore[arg-type]


def test_raising_callback_does_not_break_the_flow(caplog):
    engine = engines.load(LinearFlow("f").add(Value(1, name="a", provides="x"), Value(2, name="b")))
    after: list[str] = []

    def bad(event, details):
        raise RuntimeError("listener bug")

    engine.atom_notifier.register(ANY, bad)
    engine.notifier.register(ANY, bad)
    engine.atom_notifier.register(AtomState.SUCCESS, lambda e, d: after.append(d["atom_name"]))
    with caplog.at_level(logging.ERROR, logger="flowkit.notifier"):
        engine.run()
    assert engine.storage.get_flow_state() is FlowState.SUCCESS
    assert engine.storage.fetch("x") == 1
    assert after == ["a", "b"]
    assert any("listener bug" in (r.exc_text or "") or r.exc_info for r in caplog.records)


def test_raising_callback_does_not_break_revert():
    engine = engines.load(LinearFlow("f").add(Value(1, name="a"), Value(name="boom", fail=True)))

    def bad(event, details):
        raise RuntimeError("listener bug")

    engine.atom_notifier.register(ANY, bad)
    with pytest.raises(Boom):
        engine.run()
    assert engine.storage.get_flow_state() is FlowState.REVERTED
