"""The engine with persistence: state saved as it happens, resume after suspend, retries, reverts."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from flowkit import LinearFlow, Task, UnorderedFlow, context, engines, retry
from flowkit.exceptions import InvalidFlowError, NotSerializableError, SchemaError
from flowkit.persistence import backends
from flowkit.persistence.backends import Backend
from flowkit.persistence.models import FlowDetail, Intention, LogBook, RetryDetail
from flowkit.states import AtomState, FlowState
from tests.support.persistence import fresh_backend, saved_flow, saved_states


class Record(Task):
    """Returns its name; counts its executions in a shared list."""

    def __init__(self, name: str, runs: list[str], provides: str | None = None) -> None:
        super().__init__(name=name, provides=provides)
        self.runs = runs

    def execute(self, **kwargs: Any) -> dict[str, str]:
        self.runs.append(self.name)
        return {"made_by": self.name}


class Peek(Task):
    """Reads the database from inside ``execute``: what is saved while it runs."""

    def __init__(self, backend: Backend, flow_uuid: str) -> None:
        super().__init__(name="peek")
        self.backend, self.flow_uuid = backend, flow_uuid
        self.seen: dict[str, Any] = {}

    def execute(self) -> None:
        fd = saved_flow(self.backend, self.flow_uuid)
        me, first = fd.find_by_name("peek"), fd.find_by_name("first")
        assert me is not None and first is not None
        self.seen = {
            "flow": fd.state,
            "me": (me.state, me.intention, me.attempts, me.uuid),
            "first": (first.state, first.results),
            "context_uuid": context.current_atom_uuid(),
        }


class Boom(Exception):
    pass


class Fail(Task):
    def execute(self) -> None:
        raise Boom("planned")


class Undo(Task):
    def execute(self) -> str:
        return f"{self.name}-made"

    def revert(self, result: Any, flow_failures: Any, **kwargs: Any) -> str:
        return f"undid {result}"


def test_every_state_is_saved_before_the_engine_acts_on_it(backend: Backend) -> None:
    fd = FlowDetail("peeking")
    runs: list[str] = []
    peek = Peek(backend, fd.uuid)
    flow = LinearFlow("peeking").add(Record("first", runs, provides="x"), peek)
    engine = engines.load(flow, backend=backend, flow_detail=fd)
    engine.run()
    assert peek.seen["flow"] is FlowState.RUNNING
    state, intention, attempts, uuid = peek.seen["me"]
    assert (state, intention, attempts) == (AtomState.RUNNING, Intention.EXECUTE, 1)
    assert peek.seen["first"] == (AtomState.SUCCESS, {"made_by": "first"})
    assert uuid == engine.storage.get_atom_uuid("peek") == peek.seen["context_uuid"]
    saved = saved_flow(backend, fd.uuid)
    assert saved.state is FlowState.SUCCESS
    assert {ad.name: ad.state for ad in saved} == {"first": AtomState.SUCCESS, "peek": AtomState.SUCCESS}
    assert all(ad.duration is not None and ad.duration >= 0 for ad in saved)
    assert fd.state is FlowState.SUCCESS and {ad.name for ad in fd} == {"first", "peek"}  # the object too


def test_a_new_flow_detail_and_logbook_are_made_when_none_is_given(backend: Backend) -> None:
    engine = engines.load(LinearFlow("solo").add(Record("a", [])), backend=backend)
    engine.run()
    with backend.get_connection() as conn:
        [book] = conn.get_logbooks()
    [fd] = list(book)
    assert (book.name, fd.name, fd.uuid, fd.state) == (
        "solo",
        "solo",
        engine.storage.flow_uuid,
        FlowState.SUCCESS,
    )


def test_a_flow_detail_in_a_given_logbook(backend: Backend) -> None:
    book = LogBook("mine")
    fd = FlowDetail("f")
    engines.load(LinearFlow("f").add(Record("a", [])), backend=backend, book=book, flow_detail=fd).run()
    assert book.find(fd.uuid) is fd
    with backend.get_connection() as conn:
        assert conn.get_logbook(book.uuid).find(fd.uuid) is not None


def test_resume_after_suspend_does_not_run_finished_atoms_again(backend: Backend) -> None:
    runs: list[str] = []
    fd = FlowDetail("suspended")

    def flow() -> LinearFlow:
        return LinearFlow("suspended").add(*(Record(n, runs, provides=f"{n}_out") for n in "abcd"))

    engine = engines.load(flow(), backend=backend, flow_detail=fd, store={"region": "eu"})

    def suspend_after_b(state: AtomState, details: dict[str, Any]) -> None:
        if details["atom_name"] == "b":
            engine.suspend()

    engine.atom_notifier.register(AtomState.SUCCESS, suspend_after_b)
    engine.run()
    assert runs == ["a", "b"]
    assert saved_flow(backend, fd.uuid).state is FlowState.SUSPENDED
    uuids = {name: engine.storage.get_atom_uuid(name) for name in "abcd"}

    with backend.get_connection() as conn:
        loaded = conn.get_flow_detail(fd.uuid)
    resumed = engines.load(flow(), backend=backend, flow_detail=loaded)  # no store: the saved one
    resumed.run()
    assert runs == ["a", "b", "c", "d"]
    assert resumed.storage.fetch("region") == "eu" and resumed.storage.fetch("a_out") == {"made_by": "a"}
    assert {name: resumed.storage.get_atom_uuid(name) for name in "abcd"} == uuids
    assert saved_states(backend, fd.uuid) == dict.fromkeys("abcd", "SUCCESS")


def test_a_revert_is_saved_with_the_failures_that_caused_it(backend: Backend) -> None:
    fd = FlowDetail("reverting")
    flow = LinearFlow("reverting").add(Undo("a"), Undo("b"), Fail("c"))
    with pytest.raises(Boom):
        engines.load(flow, backend=backend, flow_detail=fd).run()
    saved = saved_flow(backend, fd.uuid)
    assert saved.state is FlowState.REVERTED
    assert list(saved.failures) == ["c"] and saved.failures["c"].check(Boom)
    a, c = saved.find_by_name("a"), saved.find_by_name("c")
    assert a is not None and c is not None
    assert (a.state, a.intention, a.results, a.revert_results) == (
        AtomState.REVERTED,
        Intention.REVERT,
        "a-made",
        "undid a-made",
    )
    assert c.state is AtomState.REVERTED and c.failure is not None and c.failure.exception_str == "planned"


def test_retry_history_is_saved(backend: Backend) -> None:
    attempts: list[int] = []

    class Flaky(Task):
        def execute(self, attempt: int) -> int:
            attempts.append(attempt)
            if attempt < 3:
                raise Boom(f"attempt {attempt}")
            return attempt

    fd = FlowDetail("flaky")
    flow = LinearFlow("flaky", retry=retry.Times(attempts=3, name="again", provides="attempt")).add(
        Flaky("f")
    )
    engines.load(flow, backend=backend, flow_detail=fd).run()
    assert attempts == [1, 2, 3]
    again = saved_flow(backend, fd.uuid).find_by_name("again")
    assert isinstance(again, RetryDetail) and again.state is AtomState.SUCCESS
    assert list(again.history.provides_iter()) == [1, 2, 3]
    assert [sorted(fs) for _, fs in again.history] == [["f"], ["f"], []]
    assert again.history[0][1]["f"].exception_str == "attempt 1"
    f = saved_flow(backend, fd.uuid).find_by_name("f")
    assert f is not None and f.attempts == 3 and f.results == 3


def test_a_result_that_cannot_be_saved_is_an_error_naming_the_atom(backend: Backend) -> None:
    class Opaque(Task):
        def execute(self) -> object:
            return object()

    fd = FlowDetail("opaque")
    with pytest.raises(NotSerializableError, match="'opaque-task'"):
        engines.load(LinearFlow("opaque").add(Opaque("opaque-task")), backend=backend, flow_detail=fd).run()
    assert saved_states(backend, fd.uuid) == {"opaque-task": "RUNNING"}  # runs again on resume


def test_a_store_that_cannot_be_saved_is_refused(backend: Backend) -> None:
    with pytest.raises(NotSerializableError, match="store"):
        engines.load(
            LinearFlow("s").add(Record("a", [])), backend=backend, store={"client": object()}
        ).prepare()


def test_the_parallel_engine_saves_too(backend: Backend) -> None:
    runs: list[str] = []
    fd = FlowDetail("wide")
    flow = UnorderedFlow("wide").add(*(Record(f"t{i}", runs) for i in range(8)))
    engines.load(flow, backend=backend, flow_detail=fd, engine="parallel", max_workers=4).run()
    assert sorted(runs) == sorted(f"t{i}" for i in range(8))
    assert saved_states(backend, fd.uuid) == {f"t{i}": "SUCCESS" for i in range(8)}


def test_book_or_flow_detail_without_backend_is_an_error() -> None:
    with pytest.raises(InvalidFlowError, match="need backend"):
        engines.load(LinearFlow("x").add(Record("a", [])), flow_detail=FlowDetail("x"))


def test_a_database_without_the_schema_is_a_clear_error(tmp_path: Path) -> None:
    backend = backends.fetch(f"sqlite:///{tmp_path}/empty.db")
    with pytest.raises(SchemaError, match="flowkit db upgrade"):
        engines.load(LinearFlow("x").add(Record("a", [])), backend=backend).prepare()
    backend.close()


def test_a_url_works_as_the_backend(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/by-url.db"
    fresh_backend(url).close()
    engine = engines.load(LinearFlow("x").add(Record("a", [])), backend=url)
    engine.run()
    assert engines.load(LinearFlow("x").add(Record("a", [])), backend=url).storage  # same pool, no error


def test_one_statement_per_atom_transition_and_one_commit_per_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Serial pairing: each task's SUCCESS is committed together with the next task's RUNNING (one
    transaction on the recorder's connection, before that task's execute), the last one with the
    flow's SUCCESS, and the flow's RUNNING with the first task's; the flow's end is a durable point,
    its start on SQLite is not (Backend.start_is_durable: a crash that loses it loses the engine too)."""
    from flowkit.persistence.backends import _sql_durability

    backend = fresh_backend(f"sqlite:///{tmp_path}/count.db")
    n = 50
    flow = LinearFlow("count").add(*(Record(f"t{i}", []) for i in range(n)))
    engine = engines.load(flow, backend=backend)
    engine.prepare()
    uuids = {engine.storage.get_atom_uuid(f"t{i}"): i for i in range(n)}
    seen: list[tuple[str, Any]] = []  # (statement, its parameters)
    sa_engine = backend.engine  # type: ignore[attr-defined]

    def statement(conn: sa.Connection, cursor: Any, text: str, params: Any, *args: Any) -> None:
        assert conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT"  # the recorder's
        seen.append((text, params))

    flushed = _sql_durability.FLUSH

    def flush(fd: int) -> None:  # the durable point's flush of the WAL file, in order with the SQL
        seen.append((f"flush {os.readlink(f'/proc/self/fd/{fd}')}", None))
        flushed(fd)

    monkeypatch.setattr(_sql_durability, "FLUSH", flush)
    sa.event.listen(sa_engine, "before_cursor_execute", statement)
    engine.run()
    texts = [text for text, _ in seen]
    # by commit (a transaction, or a statement outside one): what it wrote, and whether the WAL file
    # was flushed right after it
    commits: list[tuple[list[tuple[str, Any]], bool]] = []
    open_: list[tuple[str, Any]] | None = None
    for text, params in seen:
        if text == "BEGIN IMMEDIATE":
            open_ = []
        elif text == "COMMIT":
            assert open_ is not None
            commits.append((open_, False))
            open_ = None
        elif text.startswith("flush "):
            assert text == f"flush {tmp_path}/count.db-wal"
            commits[-1] = (commits[-1][0], True)
        else:
            if text.startswith("UPDATE flowkit_atomdetails"):
                write = (params[0], uuids[params[-1]])  # (state, task)
            else:
                assert text.startswith("UPDATE flowkit_flowdetails"), text
                write = (params[0], "flow")
            if open_ is None:
                commits.append(([write], False))
            else:
                open_.append(write)
    # the flow's SUCCESS with the last task's is a durable point: a transaction whose COMMIT is
    # followed by a flush of the WAL file, on disk with every write before it, the set-up and the
    # flow's RUNNING included (the connection stays at synchronous=NORMAL: a PRAGMA synchronous would
    # expire its statements)
    expected = [([("RUNNING", "flow"), ("RUNNING", 0)], False)]  # the start goes with the first RUNNING
    expected += [([("SUCCESS", k), ("RUNNING", k + 1)], False) for k in range(n - 1)]
    expected += [([("SUCCESS", n - 1), ("SUCCESS", "flow")], True)]
    assert commits == expected
    # the run ends with its connection kept, relaxed, for the next run (no PRAGMA: its statements stay
    # prepared); it goes back to the pool, made durable, when the backend is closed
    assert not [text for text in texts if text.startswith("PRAGMA")]
    assert len(seen) <= 4 * n + 10  # and nothing per atom besides: 4 per flow write
    backend.close()
    assert [text for text, _ in seen[len(texts) :]] == ["PRAGMA synchronous=FULL"]


def test_on_postgresql_an_unfenced_flows_start_is_still_a_durable_point(postgres_url: str) -> None:
    """Where the database is a server, its crash alone would take a set-up that was never flushed while
    the engine goes on writing to its rows: there the flow's RUNNING is sent with the statement that
    makes its commit durable, and its end too (SQLite's start is none: the test above)."""
    backend = fresh_backend(postgres_url)
    assert backend.start_is_durable
    flow = LinearFlow("start").add(*(Record(f"t{i}", []) for i in range(3)))
    engine = engines.load(flow, backend=backend)
    engine.prepare()
    seen: list[str] = []
    sa.event.listen(backend.engine, "before_cursor_execute", lambda c, cur, text, *a: seen.append(text))  # type: ignore[attr-defined]
    try:
        engine.run()
    finally:
        backend.close()
    durable = [k for k, text in enumerate(seen) if "SET LOCAL synchronous_commit TO on" in text]
    # the flow's RUNNING (the run's first message: its PREPARE, then the durable EXECUTE) and its
    # SUCCESS with the last task's (the last message before the connection goes back to the pool)
    assert durable == [0, len(seen) - 2], seen
    assert "UPDATE flowkit_flowdetails" in seen[0]


def test_a_long_flow_gets_a_durable_point_every_keep_max_atoms(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The recorder keeps the atom rows it wrote since the last flush (to write them again after a
    lost connection); past KEEP_MAX of them it flushes, so a long flow does not keep them all."""
    from flowkit.persistence import recorder
    from flowkit.persistence.backends import _sql_durability

    monkeypatch.setattr(recorder, "KEEP_MAX", 4)
    flushes: list[int] = []
    flushed = _sql_durability.FLUSH
    monkeypatch.setattr(_sql_durability, "FLUSH", lambda fd: (flushes.append(fd), flushed(fd)))
    backend = fresh_backend(f"sqlite:///{tmp_path}/keep.db")
    flow = LinearFlow("keep").add(*(Record(f"t{i}", []) for i in range(10)))
    engine = engines.load(flow, backend=backend)
    engine.prepare()
    seen: list[str] = []
    sa_engine = backend.engine  # type: ignore[attr-defined]
    sa.event.listen(sa_engine, "before_cursor_execute", lambda c, cur, text, *a: seen.append(text))
    sizes: list[int] = []
    engine.atom_notifier.register(
        AtomState.SUCCESS,
        lambda state, details: sizes.append(len(engine._recorder._kept)),  # type: ignore[attr-defined]
    )
    engine.run()
    assert max(sizes) < 4
    # the flow's SUCCESS, and a flush at the RUNNING of t3, t6 and t9 (4 atoms kept each)
    assert len(flushes) == 1 + 3
    assert not [text for text in seen if text.startswith("PRAGMA")]  # flushes: fsync; kept relaxed after
    backend.close()


def test_a_sqlite_run_takes_the_last_runs_relaxed_connection_as_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The next run (set-up and writes) is on the database connection the last one gave back, with no
    PRAGMA (one would expire its prepared statements); a process that inherited it by a fork never
    takes it (the backend's close making it durable again: test_one_statement_and_one_commit...)."""
    backend = fresh_backend(f"sqlite:///{tmp_path}/again.db")
    seen: list[tuple[str, int]] = []
    sa.event.listen(
        backend.engine,  # type: ignore[attr-defined]
        "before_cursor_execute",
        lambda conn, cursor, text, *a: seen.append((text, id(conn.connection.dbapi_connection))),
    )

    def run() -> list[tuple[str, int]]:
        del seen[:]
        engine = engines.load(LinearFlow("again").add(Record("t", [])), backend=backend)
        engine.run()
        ran = list(seen)
        assert saved_states(backend, engine._recorder.flow_detail.uuid) == {"t": "SUCCESS"}
        return ran

    first = run()
    assert [text for text, _ in first if text.startswith("PRAGMA")] == ["PRAGMA synchronous=NORMAL"]
    second = run()
    assert not [text for text, _ in second if text.startswith("PRAGMA")]
    assert {conn for _, conn in second} == {first[-1][1]}  # set-up and writes: the one connection
    parked = list(backend._parking.kept)  # type: ignore[attr-defined]
    assert len(parked) == 1
    monkeypatch.setattr(os, "getpid", lambda: -1)  # as in a forked child
    assert backend.unpark() is None  # type: ignore[attr-defined]  # never the parent's connection
    monkeypatch.undo()
    parked[0][2].close()
    backend.close()


@pytest.mark.parametrize("durability", ["flow", "atom"])
def test_durability_of_atom_transitions_on_sqlite(tmp_path: Path, durability: str) -> None:
    backend = fresh_backend(f"sqlite:///{tmp_path}/d.db?durability={durability}")
    seen: list[int] = []

    class Look(Task):
        def execute(self) -> None:  # what the recorder's connection commits with, while it runs
            conn = engine._recorder._conn  # type: ignore[attr-defined]
            seen.append(conn._conn.exec_driver_sql("PRAGMA synchronous").scalar())

    engine = engines.load(LinearFlow("d").add(Look("look")), backend=backend)
    engine.run()
    assert seen == [1 if durability == "flow" else 2]  # NORMAL, flushed with the flow; or FULL
    with backend.engine.connect() as conn:  # type: ignore[attr-defined]
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # pooled connections: FULL
    backend.close()


def test_many_flows_at_once_on_one_backend(backend: Backend) -> None:
    """Threads running persisted flows side by side (a conductor): each keeps one connection."""
    errors: list[BaseException] = []
    details = [FlowDetail(f"f{k}") for k in range(12)]

    def one(fd: FlowDetail) -> None:
        try:
            engines.load(
                LinearFlow(fd.name).add(*(Record(f"t{i}", []) for i in range(20))),
                backend=backend,
                flow_detail=fd,
            ).run()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(fd,)) for fd in details]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for fd in details:
        assert saved_flow(backend, fd.uuid).state is FlowState.SUCCESS
