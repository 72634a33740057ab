"""Row updates on prepared statements through the DB-API cursor (flowkit.persistence.backends._prepared).

What must hold besides speed: the values read back are the ones SQLAlchemy would have stored (timestamps
in UTC, microseconds kept), SQLAlchemy's statement listeners still see every statement, PostgreSQL
prepares each statement shape once per connection in the same round trip as its first use, and a
server that lost its prepared statements costs a reconnect, not the run.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import pytest
import sqlalchemy as sa

from flowkit import LinearFlow, Task, engines
from flowkit.persistence.backends import Backend
from flowkit.persistence.models import FlowDetail, Intention, LogBook, TaskDetail
from flowkit.persistence.rows import ATOMS
from flowkit.states import AtomState
from tests.support.persistence import (
    SQL_BACKEND_KINDS,
    fresh_backend,
    recorded_statements,
    saved_flow,
    saved_states,
)


@pytest.fixture(params=SQL_BACKEND_KINDS)
def backend_kind(request: pytest.FixtureRequest) -> str:
    """Prepared statements are the SQL backends' own: those alone (``backend`` is conftest's)."""
    return str(request.param)


class Noop(Task):
    def execute(self) -> int:
        return 7


def _saved_task(backend: Backend) -> tuple[FlowDetail, TaskDetail]:
    book, fd, td = LogBook("b"), FlowDetail("f"), TaskDetail("t")
    book.add(fd)
    fd.add(td)
    with backend.get_connection() as conn:
        conn.save_logbook(book)
    return fd, td


def test_values_read_back_as_written(backend: Backend) -> None:
    fd, td = _saved_task(backend)
    plus_two = dt.timezone(dt.timedelta(hours=2))
    started = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=plus_two)  # no microseconds, not UTC
    finished = dt.datetime(2026, 1, 2, 1, 4, 6, 250, tzinfo=dt.UTC)
    with backend.get_connection() as conn:
        values = {"state": "SUCCESS", "results": '{"a":1}', "attempts": 3, "started_at": started}
        assert conn.run(lambda: conn.update_row(ATOMS, td.uuid, values))
        assert conn.run(lambda: conn.update_row(ATOMS, td.uuid, {"finished_at": finished, "failure": None}))
        assert not conn.run(lambda: conn.update_row(ATOMS, "no-such-uuid", {"state": "FAILURE"}))
        assert not conn.run(lambda: conn.update_row(ATOMS, td.uuid, {"state": "FAILURE"}, fence=5))
    got = saved_flow(backend, fd.uuid).find(td.uuid)
    assert got is not None
    assert (got.state, got.results, got.attempts) == (AtomState.SUCCESS, {"a": 1}, 3)
    assert got.started_at == dt.datetime(2026, 1, 2, 1, 4, 5, tzinfo=dt.UTC)
    assert got.finished_at == finished and got.finished_at.tzinfo is not None


def test_listeners_see_every_statement_and_postgresql_prepares_each_shape_once(backend: Backend) -> None:
    n = 20
    with recorded_statements(backend) as seen:
        engine = engines.load(LinearFlow("count").add(*(Noop(f"t{i}") for i in range(n))), backend=backend)
        engine.run()
    assert saved_states(backend, engine._recorder.flow_detail.uuid) == {f"t{i}": "SUCCESS" for i in range(n)}
    writes = [
        t
        for t in seen
        if t.startswith(
            ("UPDATE flowkit_atomdetails", "UPDATE flowkit_flowdetails", "EXECUTE", "PREPARE", "SET LOCAL")
        )
        and "flowkit_insert_" not in t  # (the set-up's rows)
        and "flowkit_probe_" not in t  # (the set-up's question: are the flow detail and logbook saved?)
    ]
    prepares = [text for text in seen if text.startswith("PREPARE")]
    if backend.engine.dialect.name == "sqlite":  # type: ignore[attr-defined]
        assert len(writes) == 2 * n + 2  # RUNNING and SUCCESS of each atom, of the flow: one statement each
        assert not prepares  # sqlite3 caches the compiled statement of each SQL text itself
    else:
        # a task's SUCCESS and the next one's RUNNING are one statement: the flow's RUNNING, the first
        # task's RUNNING, n - 1 pairs, the last SUCCESS with the flow's (one durable message each)
        assert len(writes) == n + 2
        names = [text.split()[1] for text in prepares if "flowkit_update_" in text.split()[1]]
        # flow RUNNING, atom RUNNING, the pair, the last atom SUCCESS with the flow's SUCCESS
        assert len(names) == len(set(names)) <= 4
        assert all(
            t.split(" AS ")[1].startswith(("UPDATE ", "WITH ", "INSERT ", "SELECT EXISTS ")) for t in prepares
        )
        assert all("; EXECUTE " in text for text in prepares)  # prepared in its first use's round trip


def test_an_after_listener_alone_and_a_listener_of_one_connection_hear_the_updates(backend: Backend) -> None:
    """The updates skip SQLAlchemy's event calls when nothing listens: a listener of the other event
    only, or of one connection rather than its engine, must still count as listening."""
    fd, td = _saved_task(backend)
    own: list[str] = []
    with recorded_statements(backend, "after_cursor_execute") as after, backend.get_connection() as conn:
        assert conn.run(lambda: conn.update_row(ATOMS, td.uuid, {"state": "RUNNING"}))
    assert [t for t in after if "flowkit_atomdetails" in t or t.startswith(("PREPARE", "EXECUTE"))]

    with backend.get_connection(autocommit=True) as conn:
        sa_conn = conn._checkout()  # type: ignore[attr-defined]
        sa.event.listen(sa_conn, "before_cursor_execute", lambda c, cur, text, *a: own.append(text))
        assert conn.write_row(ATOMS, td.uuid, {"state": "SUCCESS"})
    assert [t for t in own if "flowkit_atomdetails" in t or t.startswith(("PREPARE", "EXECUTE"))]
    got = saved_flow(backend, fd.uuid).find(td.uuid)
    assert got is not None and got.state is AtomState.SUCCESS


@pytest.mark.postgres
def test_prepared_statements_lost_on_the_server_cost_a_reconnect(postgres_url: str) -> None:
    """``DEALLOCATE ALL`` (as a pooler's reset does) under the recorder: its next write reconnects,
    prepares again and the run goes on; every atom is saved."""
    backend = fresh_backend(postgres_url)

    class Discard(Task):
        def execute(self) -> int:
            conn = engine._recorder._conn  # type: ignore[attr-defined]
            conn._conn.exec_driver_sql("DEALLOCATE ALL")
            return 7  # a result as a's: its SUCCESS and b's RUNNING are the statement a's and d's were

    engine = engines.load(LinearFlow("lost").add(Noop("a"), Discard("d"), Noop("b")), backend=backend)
    session = []
    engine.atom_notifier.register(
        AtomState.RUNNING,
        lambda state, details: session.append(engine._recorder._conn.session),  # type: ignore[attr-defined]
    )
    engine.run()
    assert saved_states(backend, engine._recorder.flow_detail.uuid) == {
        "a": "SUCCESS",
        "d": "SUCCESS",
        "b": "SUCCESS",
    }
    assert session[0] == session[1] != session[2]  # the write after the DEALLOCATE was made on a new session
    backend.close()


def test_sqlite_timestamps_are_the_text_sqlalchemy_stores() -> None:
    """The fast SQLite timestamp processor writes what SQLAlchemy's UtcDateTime would (text compares
    and orders the same in queries)."""
    from sqlalchemy.dialects import sqlite

    from flowkit.persistence.backends._prepared import _sqlite_utc
    from flowkit.persistence.backends._tables import UtcDateTime

    dialect = sqlite.dialect()
    reference = UtcDateTime().dialect_impl(dialect).bind_processor(dialect)
    assert reference is not None
    moments = [
        dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        dt.datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=dt.timezone(dt.timedelta(hours=-7, minutes=-30))),
        dt.datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=dt.timezone(dt.timedelta(hours=5))),
        dt.datetime(2026, 6, 1, 12, 0, 0, 7),  # naive: taken as UTC
        None,
    ]
    rng = random.Random(5)
    start = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    moments += [start + dt.timedelta(microseconds=rng.randrange(10**8)) for _ in range(2000)]
    moments += [start.replace(microsecond=k) for k in (0, 1, 999, 1000, 1001, 999000, 999999)]
    for moment in moments:
        assert _sqlite_utc(moment) == reference(moment), moment


def test_upserted_rows_with_null_columns_read_back_as_written(backend: Backend) -> None:
    """SQLite sends a column NULL in every row as a NULL in the statement's text: a row's value there
    (and a NULL over a value, on conflict) must still be what is read back."""
    book, fd = LogBook("b"), FlowDetail("f")
    book.add(fd)
    done = dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC)
    fd.add(TaskDetail("a", results=1, finished_at=done))
    fd.add(TaskDetail("b"))  # results and finished_at NULL here, set in the other row
    with backend.get_connection() as conn:
        conn.save_logbook(book)
    got = saved_flow(backend, fd.uuid)
    assert [(ad.name, ad.results, ad.finished_at) for ad in got] == [("a", 1, done), ("b", None, None)]
    for ad in fd:  # every row NULL in both columns now, over the values saved
        ad.results, ad.finished_at = None, None
    with backend.get_connection() as conn:
        conn.update_flow_details(fd)
    got = saved_flow(backend, fd.uuid)
    assert [(ad.name, ad.results, ad.finished_at) for ad in got] == [("a", None, None), ("b", None, None)]


@pytest.mark.parametrize("n", [1, 2, 3, 64, 65, 200])
def test_many_upserted_rows_with_shared_and_varying_columns_read_back_as_written(
    backend: Backend, n: int
) -> None:
    """SQLite sends a value the same in every row once per statement (``?1``) and chunks the rows into
    multi-row statements: each row must still read back as its own, whatever the chunks (64, then
    powers of two), also when every column varies (fewer rows per statement: at most 999 parameters),
    and an upsert over saved rows must update each one."""
    book, fd = LogBook("b"), FlowDetail("f")
    book.add(fd)
    when = dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC)
    for i in range(n):
        fd.add(TaskDetail(f"t{i}", version="1.0", position=i))  # shared: state, kind, version, meta...
    with backend.get_connection() as conn:
        conn.save_logbook(book)
    got = saved_flow(backend, fd.uuid)
    assert [(ad.name, ad.position, ad.version, ad.state) for ad in got] == [
        (f"t{i}", i, "1.0", AtomState.PENDING) for i in range(n)
    ]
    for i, ad in enumerate(fd):  # every column varies now
        ad.state = AtomState.SUCCESS if i % 2 else AtomState.FAILURE
        ad.results, ad.attempts, ad.seq, ad.version = {"i": i}, i + 1, i, f"v{i}"
        ad.started_at = when + dt.timedelta(seconds=i)
        ad.meta = {"k": i}
    with backend.get_connection() as conn:
        conn.update_flow_details(fd)
    got = saved_flow(backend, fd.uuid)
    assert [
        (ad.name, ad.state, ad.results, ad.attempts, ad.seq, ad.version, ad.started_at, ad.meta) for ad in got
    ] == [
        (
            f"t{i}",
            AtomState.SUCCESS if i % 2 else AtomState.FAILURE,
            {"i": i},
            i + 1,
            i,
            f"v{i}",
            when + dt.timedelta(seconds=i),
            {"k": i},
        )
        for i in range(n)
    ]


def test_a_second_attempt_clears_what_the_first_left(backend: Backend) -> None:
    """RUNNING and SUCCESS leave out a NULL column the row has NULL already: they must still clear
    the finish time and the result a first attempt saved."""
    engine = engines.load(LinearFlow("again").add(Noop("t")), backend=backend)
    engine.prepare()
    storage, recorder = engine.storage, engine._recorder  # type: ignore[attr-defined]
    uuid = recorder.flow_detail.uuid

    def saved() -> tuple[Any, Any, bool]:
        ad = saved_flow(backend, uuid).find(storage.atom_uuids[0])
        assert ad is not None
        return ad.state, ad.results, ad.finished_at is not None

    def intention() -> Intention:
        ad = saved_flow(backend, uuid).find(storage.atom_uuids[0])
        assert ad is not None
        return ad.intention

    recorder.atom_changed(storage, 0, AtomState.RUNNING)
    assert saved() == (AtomState.RUNNING, None, False)
    storage.results[0] = 7
    recorder.atom_changed(storage, 0, AtomState.SUCCESS)
    assert saved() == (AtomState.SUCCESS, 7, True)
    recorder.atom_changed(storage, 0, AtomState.RUNNING)
    assert saved() == (AtomState.RUNNING, 7, False)  # finished_at cleared (the result stays until then)
    storage.results[0] = None
    recorder.atom_changed(storage, 0, AtomState.SUCCESS)
    assert saved() == (AtomState.SUCCESS, None, True)  # the first attempt's result cleared
    # RUNNING leaves out the intention when the row has EXECUTE already: never after a revert's
    recorder.atom_changed(storage, 0, AtomState.REVERTING)
    assert intention() is Intention.REVERT
    recorder.atom_changed(storage, 0, AtomState.RUNNING)
    assert (saved()[0], intention()) == (AtomState.RUNNING, Intention.EXECUTE)
    recorder.close()


@pytest.mark.postgres
def test_a_postgresql_recorders_relaxed_connection_is_kept_for_the_next_flow(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Flows run back to back on one backend (a conductor's jobs) share one relaxed connection: it is
    relaxed once and reset never, not once each per flow; one kept past the pool's ping interval, and
    every one at close(), goes back to the pool durable again."""
    from flowkit.persistence.backends import _sql_durability
    from flowkit.sql import engines as sql_engines

    b = fresh_backend(postgres_url)
    relax, restore = _sql_durability.RELAXED["postgresql"]
    with recorded_statements(b) as seen:
        for _ in range(3):
            engines.run(LinearFlow("f").add(Noop("a")), backend=b)
        assert (seen.count(relax), seen.count(restore)) == (1, 0)
        monkeypatch.setattr(sql_engines, "PING_AFTER", 0.0)  # the kept one is now stale: given back
        engines.run(LinearFlow("f").add(Noop("a")), backend=b)
        # (given back stale twice: the run's set-up and then its writes take the kept connection)
        assert (seen.count(relax), seen.count(restore)) == (3, 2)
        b.close()
        assert seen.count(restore) == 3  # the one kept at close() was made durable too
    assert not b._parking.kept  # type: ignore[attr-defined]  # nothing kept out of the pool


def test_a_fenced_set_up_on_postgresql_is_two_messages(postgres_url: str) -> None:
    """A conductor's set-up of a posted flow (BEGIN, the fenced take, the new atom rows' INSERT,
    COMMIT): the BEGIN goes in the take's message and the INSERT in the COMMIT's, so two round trips,
    and the rows are saved as one transaction."""
    from tests.support.persistence import saved_new_flow

    backend = fresh_backend(postgres_url)
    try:
        _, fd = saved_new_flow(backend, "posted")
        engine = engines.load(
            LinearFlow("posted").add(Noop("a"), Noop("b")), backend=backend, flow_detail=fd, fence=5
        )
        with recorded_statements(backend) as messages:
            engine.prepare()
        setup = [m for m in messages if "flowkit_take" in m or "COMMIT" in m or m.startswith("BEGIN")]
        assert len(setup) == 2, messages
        assert setup[0].startswith("BEGIN; ") and "EXECUTE flowkit_take" in setup[0], setup
        assert "INSERT INTO flowkit_atomdetails" in setup[1] or "EXECUTE flowkit_insert" in setup[1], setup
        assert setup[1].endswith("; COMMIT"), setup
        assert saved_states(backend, fd.uuid) == {"a": "PENDING", "b": "PENDING"}
    finally:
        backend.close()


def test_what_a_unit_of_work_holds_is_sent_before_a_statement_through_sqlalchemy(postgres_url: str) -> None:
    """A held statement (the BEGIN, an INSERT whose result nobody reads) is sent before the next
    statement, also one SQLAlchemy sends, which cannot carry it: the read sees the row, inside the
    transaction, and the row goes when the unit of work fails."""
    from flowkit.persistence.rows import LOGBOOKS

    backend = fresh_backend(postgres_url)
    book = LogBook("held")
    seen: list[list[str]] = []

    def work() -> None:
        conn.upsert_rows(LOGBOOKS, [conn.codec.logbook_row(book)])  # held (no result read)
        seen.append([row["uuid"] for row in conn.select_rows(LOGBOOKS, "uuid", [book.uuid])])
        raise RuntimeError("given up")

    conn = backend.get_connection(autocommit=True)
    try:
        with recorded_statements(backend) as messages, pytest.raises(RuntimeError, match="given up"):
            conn.run_together(work)
        assert seen == [[book.uuid]]  # the insert ran before the read
        assert any(m.startswith("BEGIN; ") and "EXECUTE flowkit_insert" in m for m in messages), messages
        with backend.get_connection() as reader:
            assert reader.run(lambda: reader.select_rows(LOGBOOKS, "uuid", [book.uuid])) == []  # rolled back
    finally:
        conn.close()
        backend.close()


def test_a_logbook_saved_on_a_plain_postgresql_connection_is_one_message(postgres_url: str) -> None:
    """A job's post saves its logbook on a plain connection: BEGIN, the logbook's and the flow's
    upserts and COMMIT go in one message (they were four round trips: the driver's own BEGIN, each
    upsert, SQLAlchemy's COMMIT). Saved as one transaction: another connection reads both rows, and a
    unit of work that fails leaves neither. The database connection goes back to the pool out of
    autocommit mode, as SQLAlchemy's transactions expect it."""
    from flowkit.persistence.rows import FLOWS, LOGBOOKS

    backend = fresh_backend(postgres_url)
    try:
        book = LogBook("posted")
        book.add(FlowDetail("job"))
        with recorded_statements(backend) as messages, backend.get_connection() as conn:
            conn.save_logbook(book)
        [message] = messages
        assert message.startswith("BEGIN; ") and message.endswith("; COMMIT"), message
        assert message.count("EXECUTE flowkit_insert") == 2, message
        engine = backend.engine  # type: ignore[attr-defined]
        with engine.connect() as pooled:  # (the one connection the pool holds: the save's)
            assert pooled.connection.dbapi_connection.autocommit is False
        with backend.get_connection() as reader:
            assert reader.get_logbook(book.uuid).find(next(iter(book)).uuid) is not None
        failing = LogBook("failing")

        def half_then_fail() -> None:
            conn.upsert_rows(LOGBOOKS, [conn.codec.logbook_row(failing)])
            raise RuntimeError("given up")

        with backend.get_connection() as conn, pytest.raises(RuntimeError, match="given up"):
            conn.run_together(half_then_fail)
        with backend.get_connection() as reader:
            assert reader.run(lambda: reader.select_rows(LOGBOOKS, "uuid", [failing.uuid])) == []
            assert reader.run(lambda: len(reader.select_rows(FLOWS, "parent_uuid", [book.uuid]))) == 1
    finally:
        backend.close()


def test_a_logbook_save_in_a_callers_transaction_that_fails_leaves_nothing_held(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """save_logbook_in holds the logbook's upsert for the flow's message: when that one fails before it
    is sent, the held statement is dropped, not left on the pooled connection for its next user, and
    its statement is not taken for prepared there (its PREPARE never went): the next save on that
    connection prepares it and succeeds."""
    from flowkit.persistence.backends._prepared import _HELD  # where a connection keeps what it holds

    backend = fresh_backend(postgres_url)
    updates = backend.updates  # type: ignore[attr-defined]
    upsert = updates.upsert

    def last_fails(conn: Any, cursor: Any, table: str, rows: Any, held: bool = False) -> None:
        if not held:
            raise RuntimeError("the flow's upsert failed")
        upsert(conn, cursor, table, rows, held)

    monkeypatch.setattr(updates, "upsert", last_fails)
    book = LogBook("failing")
    book.add(FlowDetail("job"))
    try:
        with backend.engine.connect() as conn:  # type: ignore[attr-defined]
            with pytest.raises(RuntimeError, match="flow's upsert"):
                backend.save_logbook_in(conn, book)  # type: ignore[attr-defined]
            assert not conn.info.get(_HELD)
            conn.rollback()
            monkeypatch.undo()
            with conn.begin():
                assert backend.save_logbook_in(conn, book)  # type: ignore[attr-defined]
        with backend.get_connection() as reader:
            assert [fd.name for fd in reader.get_logbook(book.uuid)] == ["job"]
    finally:
        backend.close()
