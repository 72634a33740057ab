"""Serial pairing: a task's SUCCESS is saved with the next task's RUNNING, in one transaction.

What must hold (``BackendRecorder.flush_deferred``): nothing acts on a SUCCESS before it is saved (the
next task's execute, a decider, an atom listener, the flow's end or a suspend), a failed paired write
leaves memory as the database has it (the task RUNNING, so it runs again on resume), and on PostgreSQL
a pair is one statement that writes a row only if the row before it was found.
"""

from __future__ import annotations

from typing import Any

import pytest

from flowkit import GraphFlow, LinearFlow, Task, engines
from flowkit.exceptions import StorageError
from flowkit.notifier import ANY
from flowkit.persistence.backends import Backend
from flowkit.persistence.models import FlowDetail, LogBook, TaskDetail
from flowkit.persistence.rows import ATOMS
from flowkit.states import AtomState, FlowState
from tests.support.persistence import BACKEND_KINDS, saved_flow, saved_states


@pytest.fixture(params=BACKEND_KINDS)
def backend_kind(request: pytest.FixtureRequest) -> str:
    """Every backend: pairing is the recorder's (``Connection.write_rows``; PostgreSQL's is its own)."""
    return str(request.param)


class Named(Task):
    """Returns its name; appends it to ``runs``."""

    def __init__(self, name: str, runs: list[str]) -> None:
        super().__init__(name=name)
        self.runs = runs

    def execute(self) -> str:
        self.runs.append(self.name)
        return self.name


class SeesSaved(Task):
    """Reads, from inside execute, the saved state of every atom before it."""

    def __init__(self, name: str, backend: Backend, before: list[str], seen: list[dict[str, str]]) -> None:
        super().__init__(name=name)
        self.backend, self.before, self.seen = backend, before, seen
        self.flow_uuid = ""

    def execute(self) -> None:
        states = saved_states(self.backend, self.flow_uuid)
        self.seen.append({name: states[name] for name in self.before})


def test_each_task_runs_with_every_task_before_it_saved_success(backend: Backend) -> None:
    seen: list[dict[str, str]] = []
    names = [f"t{i}" for i in range(6)]
    tasks = [SeesSaved(name, backend, names[:k], seen) for k, name in enumerate(names)]
    engine = engines.load(LinearFlow("f").add(*tasks), backend=backend)
    engine.prepare()
    for task in tasks:
        task.flow_uuid = engine._recorder.flow_detail.uuid  # type: ignore[attr-defined]
    engine.run()
    assert seen == [dict.fromkeys(names[:k], "SUCCESS") for k in range(6)]
    assert set(saved_states(backend, tasks[0].flow_uuid).values()) == {"SUCCESS"}


def test_a_decider_runs_after_the_result_it_reads_is_saved(backend: Backend) -> None:
    runs: list[str] = []
    saved_when_decided: list[str] = []
    head, tail = Named("head", runs), Named("tail", runs)
    flow = GraphFlow("g").add(head, tail)
    engine: Any = None

    def decide(history: dict[str, Any]) -> bool:
        saved_when_decided.append(saved_states(backend, engine._recorder.flow_detail.uuid)["head"])
        return history["head"] == "head"

    flow.link(head, tail, decider=decide)
    engine = engines.load(flow, backend=backend)
    engine.run()
    assert runs == ["head", "tail"] and saved_when_decided == ["SUCCESS"]


def test_an_atom_listener_is_told_of_a_success_already_saved(backend: Backend) -> None:
    runs: list[str] = []
    engine = engines.load(LinearFlow("f").add(Named("a", runs), Named("b", runs)), backend=backend)
    engine.prepare()
    uuid = engine._recorder.flow_detail.uuid  # type: ignore[attr-defined]
    told: list[tuple[str, str]] = []

    def listener(state: AtomState, details: dict[str, Any]) -> None:
        if state is AtomState.SUCCESS:
            told.append((details["atom_name"], saved_states(backend, uuid)[details["atom_name"]]))

    engine.atom_notifier.register(AtomState.SUCCESS, listener)
    engine.run()
    assert told == [("a", "SUCCESS"), ("b", "SUCCESS")]


def test_a_suspend_saves_the_last_success_before_the_flow_stops(backend: Backend) -> None:
    runs: list[str] = []
    engine: Any = None

    class Suspends(Named):
        def execute(self) -> str:
            engine.suspend()
            return super().execute()

    flow = LinearFlow("f").add(Named("a", runs), Suspends("b", runs), Named("c", runs))
    engine = engines.load(flow, backend=backend)
    engine.run()
    uuid = engine._recorder.flow_detail.uuid
    assert saved_states(backend, uuid) == {"a": "SUCCESS", "b": "SUCCESS", "c": "PENDING"}
    assert saved_flow(backend, uuid).state is FlowState.SUSPENDED
    engines.load(flow, backend=backend, flow_detail=saved_flow(backend, uuid)).run()
    assert runs == ["a", "b", "c"]


def test_a_failed_paired_write_leaves_the_task_running_and_it_runs_again_on_resume(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs: list[str] = []
    flow = LinearFlow("f").add(Named("a", runs), Named("b", runs), Named("c", runs))
    engine = engines.load(flow, backend=backend)
    engine.prepare()
    recorder: Any = engine._recorder  # type: ignore[attr-defined]
    conn = recorder._connection()
    write_rows = conn.write_rows
    b = engine.storage.get_atom_uuid("b")

    def fails_with_b_success(rows: Any, *args: Any, **kwargs: Any) -> bool:
        if (ATOMS, b, "SUCCESS") in [(table, uuid, values.get("state")) for table, uuid, values in rows]:
            raise StorageError("the database went away (injected)")  # b's SUCCESS with c's RUNNING
        return write_rows(rows, *args, **kwargs)

    monkeypatch.setattr(conn, "write_rows", fails_with_b_success)
    with pytest.raises(StorageError, match="injected"):
        engine.run()
    st = engine.storage
    # memory says what the database says: b RUNNING (its result not kept), c never started
    assert [st.get_atom_state(n) for n in "abc"] == [AtomState.SUCCESS, AtomState.RUNNING, AtomState.PENDING]
    uuid = recorder.flow_detail.uuid
    assert saved_states(backend, uuid) == {"a": "SUCCESS", "b": "RUNNING", "c": "PENDING"}
    monkeypatch.undo()
    engines.load(flow, backend=backend, flow_detail=saved_flow(backend, uuid)).run()
    assert runs == ["a", "b", "b", "c"]  # b again (at least once), a not
    assert set(saved_states(backend, uuid).values()) == {"SUCCESS"}


def _two_saved_tasks(backend: Backend) -> tuple[FlowDetail, TaskDetail, TaskDetail]:
    """A saved flow detail with two PENDING task details (for Connection.write_rows)."""
    book, fd = LogBook("b"), FlowDetail("f")
    first, second = TaskDetail("first"), TaskDetail("second")
    book.add(fd)
    fd.add(first)
    fd.add(second)
    with backend.get_connection() as conn:
        conn.save_logbook(book)
    return fd, first, second


@pytest.mark.parametrize("backend_kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_write_rows_writes_each_row_only_after_the_one_before_it_was_found(backend: Backend) -> None:
    fd, first, second = _two_saved_tasks(backend)

    def states() -> tuple[str | None, str | None]:
        saved = saved_flow(backend, fd.uuid)
        return tuple(saved.find(ad.uuid).state.value for ad in (first, second))  # type: ignore[return-value, union-attr]

    with backend.get_connection(autocommit=True) as conn:
        running, done = {"state": "RUNNING"}, {"state": "SUCCESS", "seq": 1}
        assert conn.write_rows([(ATOMS, first.uuid, done), (ATOMS, second.uuid, running)])
        assert states() == ("SUCCESS", "RUNNING")
        # the first row missing: the second is not written
        assert not conn.write_rows([(ATOMS, "no-such-uuid", running), (ATOMS, second.uuid, done)])
        assert states() == ("SUCCESS", "RUNNING")
        # fenced: rows at fence 0 refuse token 5, both
        assert not conn.write_rows([(ATOMS, first.uuid, running), (ATOMS, second.uuid, done)], fence=5)
        assert states() == ("SUCCESS", "RUNNING")
        # the second row missing: the first is written (it was found), the answer is False
        assert not conn.write_rows([(ATOMS, first.uuid, running), (ATOMS, "no-such-uuid", done)])
        assert states() == ("RUNNING", "RUNNING")
        assert conn.write_rows([(ATOMS, first.uuid, done), (ATOMS, second.uuid, done)], fence=0)
        assert states() == ("SUCCESS", "SUCCESS")


@pytest.mark.parametrize("backend_kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_a_paired_write_that_fails_half_done_is_made_again_on_a_new_connection(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kept connection's fast path (SQLite: BEGIN IMMEDIATE, the updates, COMMIT on the cursor;
    PostgreSQL: one statement) meets a connection error after its first row: the half-done transaction
    is dropped with its connection, and the whole write is made again on a new one."""
    from sqlalchemy import exc as sa_exc

    fd, first, second = _two_saved_tasks(backend)
    updates: Any = backend.updates  # type: ignore[attr-defined]
    method = "update_rows" if updates.server_side else "_bound"  # (SQLite: each row's statement, made)
    real = getattr(updates, method)
    calls: list[int] = []

    def lost_once(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2 - updates.server_side:  # SQLite: after the first row; PostgreSQL: the statement
            raise sa_exc.OperationalError("UPDATE", {}, Exception("server closed the connection (injected)"))
        return real(*args, **kwargs)

    with backend.get_connection(autocommit=True) as conn:
        assert conn.write_row(ATOMS, first.uuid, {"state": "RUNNING"})  # the kept connection, open
        session = conn.session
        monkeypatch.setattr(updates, method, lost_once)
        rows = [
            (ATOMS, first.uuid, {"state": "SUCCESS", "seq": 1}),
            (ATOMS, second.uuid, {"state": "RUNNING"}),
        ]
        assert conn.write_rows(rows)
        assert conn.session != session  # made again on a new database connection
    saved = saved_flow(backend, fd.uuid)
    assert [saved.find(ad.uuid).state for ad in (first, second)] == [AtomState.SUCCESS, AtomState.RUNNING]  # type: ignore[union-attr]


def test_with_an_atom_listener_a_success_is_still_paired_and_told_once_saved(backend: Backend) -> None:
    runs: list[str] = []
    engine = engines.load(LinearFlow("f").add(Named("a", runs), Named("b", runs)), backend=backend)
    engine.prepare()
    uuid = engine._recorder.flow_detail.uuid  # type: ignore[attr-defined]
    told: list[tuple[str, str, str]] = []  # (atom, state told, state saved then)

    def listener(state: AtomState, details: dict[str, Any]) -> None:
        name = details["atom_name"]
        told.append((name, AtomState(state).value, saved_states(backend, uuid)[name]))

    engine.atom_notifier.register(ANY, listener)
    writes = conn_writes(engine)
    engine.run()
    assert told == [
        ("a", "RUNNING", "RUNNING"),
        ("a", "SUCCESS", "SUCCESS"),
        ("b", "RUNNING", "RUNNING"),
        ("b", "SUCCESS", "SUCCESS"),
    ]
    # the flow's RUNNING (a durable point, except on SQLite, where it goes with a's RUNNING: nothing
    # listens to the flow), then a's SUCCESS with b's RUNNING and b's with the flow's SUCCESS: paired
    # although a listener is told of each
    start = [["RUNNING"]] if backend.start_is_durable else [["RUNNING", "RUNNING"]]
    assert [[values["state"] for _table, _uuid, values in rows] for rows in writes] == [
        *start,
        ["SUCCESS", "RUNNING"],
        ["SUCCESS", "SUCCESS"],
    ]


def test_a_listener_that_suspends_at_a_success_stops_the_next_task_before_it_is_called(
    backend: Backend,
) -> None:
    """The SUCCESS is told after the write that saves it with the next task's RUNNING: that task is
    saved RUNNING, is not called, and runs on the next run (as one a stopped run left RUNNING)."""
    runs: list[str] = []
    flow = LinearFlow("f").add(Named("a", runs), Named("b", runs), Named("c", runs))
    engine = engines.load(flow, backend=backend)

    def suspend_after_a(state: AtomState, details: dict[str, Any]) -> None:
        if details["atom_name"] == "a":
            engine.suspend()

    engine.atom_notifier.register(AtomState.SUCCESS, suspend_after_a)
    engine.run()
    uuid = engine._recorder.flow_detail.uuid  # type: ignore[attr-defined]
    assert runs == ["a"]
    assert saved_states(backend, uuid) == {"a": "SUCCESS", "b": "RUNNING", "c": "PENDING"}
    assert saved_flow(backend, uuid).state is FlowState.SUSPENDED
    engine.run()  # the same engine again, then a fresh one would do the same from the database
    assert runs == ["a", "b", "c"]
    assert set(saved_states(backend, uuid).values()) == {"SUCCESS"}


def conn_writes(engine: Any) -> list[list[tuple[str, str, dict[str, Any]]]]:
    """Every ``write_rows`` and ``write_durable`` call of the engine's recorder connection from now on
    (their rows)."""
    conn = engine._recorder._connection()
    writes: list[list[tuple[str, str, dict[str, Any]]]] = []

    def recording(real: Any) -> Any:
        def recorded(rows: Any, *args: Any, **kwargs: Any) -> Any:
            writes.append([(table, uuid, dict(values)) for table, uuid, values in rows])  # (merged into)
            return real(rows, *args, **kwargs)

        return recorded

    conn.write_rows = recording(conn.write_rows)
    conn.write_durable = recording(conn.write_durable)
    return writes


@pytest.mark.parametrize("backend_kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_write_rows_inside_a_unit_of_work_is_part_of_its_transaction(backend: Backend) -> None:
    """Called from inside ``run_together`` on the autocommit connection, ``write_rows`` opens no
    transaction of its own: the unit failing after it takes its rows back with the rest."""
    fd, first, second = _two_saved_tasks(backend)
    rows = [(ATOMS, first.uuid, {"state": "RUNNING"}), (ATOMS, second.uuid, {"state": "RUNNING"})]

    def unit() -> None:
        assert conn.write_rows(rows)
        assert conn.write_durable(rows, None, conn.session)
        raise RuntimeError("the unit fails after the writes")

    with backend.get_connection(autocommit=True) as conn, pytest.raises(RuntimeError, match="after the"):
        conn.run_together(unit)
    saved = saved_flow(backend, fd.uuid)
    assert [saved.find(ad.uuid).state for ad in (first, second)] == [AtomState.PENDING] * 2  # type: ignore[union-attr]


class Reverts(Named):
    """A Named task whose revert appends ``-name`` to ``runs``."""

    def revert(self, *args: Any, **kwargs: Any) -> None:
        self.runs.append(f"-{self.name}")


def test_a_listener_that_cancels_at_a_success_reverts_nothing_of_the_task_it_stopped(
    backend: Backend,
) -> None:
    """The cancel's twin of the suspend above: the next task is saved RUNNING with the SUCCESS and not
    called; the cancel's revert undoes what ran and only that (no revert of a task whose execute never
    ran), and every atom ends REVERTED or PENDING in the database."""
    from flowkit.exceptions import Cancelled

    runs: list[str] = []
    flow = LinearFlow("f").add(Reverts("a", runs), Reverts("b", runs), Reverts("c", runs))
    engine = engines.load(flow, backend=backend)

    def cancel_after_a(state: AtomState, details: dict[str, Any]) -> None:
        if details["atom_name"] == "a":
            engine.cancel("stop here")

    engine.atom_notifier.register(AtomState.SUCCESS, cancel_after_a)
    with pytest.raises(Cancelled):
        engine.run()
    uuid = engine._recorder.flow_detail.uuid  # type: ignore[attr-defined]
    assert runs == ["a", "-a"]
    assert saved_states(backend, uuid) == {"a": "REVERTED", "b": "REVERTED", "c": "PENDING"}
    assert saved_flow(backend, uuid).state is FlowState.REVERTED


# -- the flow's start, saved with the first task's RUNNING (Recorder.pair_start) ------------------------


def _flow_state_writes(writes: list[list[tuple[str, str, dict[str, Any]]]]) -> list[list[str]]:
    return [[values["state"] for _table, _uuid, values in rows] for rows in writes]


def test_a_fenced_start_goes_with_the_first_running_and_the_task_runs_after_both_are_saved(
    backend: Backend,
) -> None:
    """A conductor's run (fenced: its start is no durable point): the flow's RUNNING is written with the
    first task's RUNNING, one transaction, before that task's execute, which sees both saved."""
    seen: list[dict[str, str]] = []
    flow_seen: list[str] = []

    class SeesFlow(SeesSaved):
        def execute(self) -> None:
            flow_seen.append(saved_flow(self.backend, self.flow_uuid).state.value)
            super().execute()

    task = SeesFlow("a", backend, ["a"], seen)
    engine = engines.load(LinearFlow("f").add(task), backend=backend, fence=3)
    engine.prepare()
    task.flow_uuid = engine._recorder.flow_detail.uuid  # type: ignore[attr-defined]
    writes = conn_writes(engine)
    engine.run()
    assert flow_seen == ["RUNNING"] and seen == [{"a": "RUNNING"}]
    assert _flow_state_writes(writes)[0] == ["RUNNING", "RUNNING"]  # the flow's, then a's
    assert [(table, uuid) for table, uuid, _values in writes[0]] == [
        ("flowdetails", task.flow_uuid),
        ("atomdetails", engine.storage.get_atom_uuid("a")),
    ]
    assert saved_flow(backend, task.flow_uuid).state is FlowState.SUCCESS


def test_a_flow_listener_is_told_of_running_once_it_is_saved(backend: Backend) -> None:
    """Someone listens to the flow: its start is written on its own, before the listener hears it."""
    runs: list[str] = []
    engine = engines.load(LinearFlow("f").add(Named("a", runs)), backend=backend, fence=3)
    engine.prepare()
    uuid = engine._recorder.flow_detail.uuid  # type: ignore[attr-defined]
    told: list[tuple[str, str]] = []

    def listener(state: FlowState, details: dict[str, Any]) -> None:
        told.append((FlowState(state).value, saved_flow(backend, uuid).state.value))

    engine.notifier.register(ANY, listener)
    writes = conn_writes(engine)
    engine.run()
    assert told[0] == ("RUNNING", "RUNNING")
    assert ["RUNNING", "RUNNING"] not in _flow_state_writes(writes)


def test_run_iter_saves_the_start_before_its_first_step(backend: Backend) -> None:
    """Stepping the engine, the caller sees the flow between its start and the first task: the start
    is saved before the first step is handed out."""
    runs: list[str] = []
    engine = engines.load(LinearFlow("f").add(Named("a", runs)), backend=backend, fence=3)
    engine.prepare()
    uuid = engine._recorder.flow_detail.uuid  # type: ignore[attr-defined]
    steps = engine.run_iter()
    next(steps)
    assert saved_flow(backend, uuid).state is FlowState.RUNNING and runs == []
    for _ in steps:
        pass
    assert runs == ["a"]


def test_a_failed_start_pair_leaves_the_flow_as_saved_and_it_runs_on_resume(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The write of the start with the first RUNNING fails: nothing ran, memory says what the database
    says (the flow not started), and the next run runs the task once."""
    runs: list[str] = []
    flow = LinearFlow("f").add(Named("a", runs))
    engine = engines.load(flow, backend=backend, fence=3)
    engine.prepare()
    recorder: Any = engine._recorder  # type: ignore[attr-defined]
    conn = recorder._connection()
    write_rows = conn.write_rows

    def fails_with_the_start(rows: Any, *args: Any, **kwargs: Any) -> bool:
        if any(table != ATOMS for table, _uuid, _values in rows):
            raise StorageError("the database went away (injected)")
        return write_rows(rows, *args, **kwargs)

    monkeypatch.setattr(conn, "write_rows", fails_with_the_start)
    with pytest.raises(StorageError, match="injected"):
        engine.run()
    uuid = recorder.flow_detail.uuid
    assert runs == []
    assert engine.storage.get_flow_state() is saved_flow(backend, uuid).state is FlowState.PENDING
    assert saved_states(backend, uuid) == {"a": "PENDING"}
    monkeypatch.undo()
    engines.load(flow, backend=backend, flow_detail=saved_flow(backend, uuid), fence=4).run()
    assert runs == ["a"]
    assert saved_flow(backend, uuid).state is FlowState.SUCCESS


def test_a_newer_claim_refuses_the_start_pair_and_nothing_runs(backend: Backend) -> None:
    """A newer claim raised the fence after this engine's set-up: the start, written with the first
    RUNNING, is refused (ClaimLost), the task is not called, and the database keeps the newer claim's."""
    from flowkit.exceptions import ClaimLost

    runs: list[str] = []
    flow = LinearFlow("f").add(Named("a", runs))
    engine = engines.load(flow, backend=backend, fence=3)
    engine.prepare()
    uuid = engine._recorder.flow_detail.uuid  # type: ignore[attr-defined]
    engines.load(flow, backend=backend, flow_detail=saved_flow(backend, uuid), fence=4).prepare()
    with pytest.raises(ClaimLost):
        engine.run()
    assert runs == []
    assert saved_flow(backend, uuid).state is FlowState.PENDING
    assert saved_states(backend, uuid) == {"a": "PENDING"}
