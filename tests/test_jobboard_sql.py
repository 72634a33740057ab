"""What only the SQL board does: leases that run out, renewal trouble, and SKIP LOCKED on PostgreSQL."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import psycopg2
import pytest

from flowkit.jobboard import ClaimEvent, Job, JobState
from flowkit.jobboard.backends.sql import SQLJobBoard
from tests.support.wait import wait_until
from tests.tcp_proxy import TcpProxy


@dataclass
class HeldClaim:
    """A job a board claimed, and the claim events the board sent from then on, each with when it came
    (``time.monotonic()``): the lease tests judge what the board said and how soon."""

    job: Job
    timed: list[tuple[ClaimEvent, float]] = field(default_factory=list)

    def heard(self, event: ClaimEvent, uuids: frozenset[str]) -> None:
        self.timed.append((event, time.monotonic()))  # one append: a reader never sees half an event

    @property
    def events(self) -> list[ClaimEvent]:
        return [event for event, _ in self.timed]


@contextlib.contextmanager
def held_claim(board: SQLJobBoard, owner: str) -> Iterator[HeldClaim]:
    """Connect ``board``, listen to its claim events, post job "j" and claim it as ``owner``; the board is
    closed when the block ends. Every lease test starts from here and differs in what breaks next."""
    board.connect()
    try:
        held = HeldClaim(board.post("j"))
        board.add_claim_listener(held.heard)
        board.claim(held.job, owner)
        yield held
    finally:
        board.close()


@contextlib.contextmanager
def main_thread_statements(engine: Any) -> Iterator[list[str]]:
    """The SQL this (main) thread sends on ``engine`` inside the block: the board's lease and cancel
    threads share the engine and are not counted."""
    import threading

    from sqlalchemy import event

    sent: list[str] = []

    def statement(conn: object, cursor: object, text: str, *args: object) -> None:
        if threading.current_thread() is threading.main_thread():
            sent.append(text)

    event.listen(engine, "before_cursor_execute", statement)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", statement)


def test_a_dead_claimants_lease_runs_out(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/board.db"
    dead, alive = SQLJobBoard("b", url, lease=0.6), SQLJobBoard("b", url, lease=0.6)
    alive.connect()
    try:
        with held_claim(dead, "dead") as held:
            dead._leases.stop()  # the heartbeat stops, as when the process dies
            time.sleep(0.3)
            assert dead.find_owner(held.job) == "dead"  # renewed at claim time, still valid
            [again] = alive.wait(5)
            assert held.job.state is JobState.UNCLAIMED
            alive.claim(again, "alive")
            dead._leases.renew()  # what its heartbeat would find if it woke up
            assert held.events == [ClaimEvent.LOST]
            alive.consume(again, "alive")
    finally:
        alive.close()


@pytest.mark.postgres
def test_renewal_trouble_is_in_doubt_then_confirmed(postgres_url: str) -> None:
    parts = urlsplit(postgres_url)
    proxy = TcpProxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    url = postgres_url.replace(f":{parts.port}/", f":{proxy.port}/")
    board = SQLJobBoard("renewals", url, lease=1.5)
    try:
        with held_claim(board, "a") as held:
            proxy.cut()
            wait_until(lambda: ClaimEvent.IN_DOUBT in held.events, 3, "IN_DOUBT")
            proxy.restore()
            wait_until(lambda: ClaimEvent.CONFIRMED in held.events, 3, "CONFIRMED")
            assert ClaimEvent.LOST not in held.events
            board.consume(held.job, "a")
    finally:
        proxy.close()


@pytest.mark.postgres
def test_claim_next_skips_rows_locked_by_others(postgres_url: str) -> None:
    board = SQLJobBoard("skip-locked", postgres_url)
    board.connect()
    locker = psycopg2.connect(postgres_url)
    try:
        first, second = board.post("first"), board.post("second")
        with locker.cursor() as cur:  # another claimant in the middle of taking `first`
            cur.execute("SELECT id FROM flowkit_jobs WHERE uuid = %s FOR UPDATE", (first.uuid,))
            started = time.monotonic()
            got = board.claim_next("c")
            assert got is not None and got.uuid == second.uuid
            assert time.monotonic() - started < 1.0
        locker.rollback()
        got = board.claim_next("c")
        assert got is not None and got.uuid == first.uuid
    finally:
        locker.close()
        board.close()


def _claim_scans(engine: Any, board: str, plan: str) -> list[tuple[str, int]]:
    """The claim statement of ``board`` as the board sends it (a named server-side statement), explained
    under PostgreSQL's ``plan`` (``generic``: the plan a prepared statement keeps after its fifth run,
    made without the parameters' values; ``custom``: made for them), in a transaction rolled back
    (nothing is claimed): each scan of the jobs table, (its node type, the rows it read)."""
    from flowkit.jobboard.backends import _sql_claims as claims
    from flowkit.jobboard.backends._sql_prepared import Prepared

    prepared = Prepared(
        claims.claim_next_statement(board, "postgresql"), ("who", "token", "now", "lease_expires")
    )
    params = prepared.params(claims.claim_params("c", "token", time.time(), 10.0))
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute(f"SET plan_cache_mode = force_{plan}_plan")
        cur.execute(prepared.prepare.replace("%%", "%").removesuffix("; "))
        marks = ", ".join(["%s"] * len(params))
        cur.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE {prepared.name}({marks})", params)
        [[plan_json]] = cur.fetchall()
        raw.rollback()
    finally:
        raw.close()
    return _jobs_table_reads(plan_json[0]["Plan"])


def _jobs_table_reads(node: dict[str, Any]) -> list[tuple[str, int]]:
    """Each scan of the jobs table in an explained plan (``EXPLAIN (ANALYZE, FORMAT JSON)``), as (its
    node type, the rows it read: returned, or passed over by its filter); the write node is no read."""
    found = []
    if node.get("Relation Name") == "flowkit_jobs" and node["Node Type"] != "ModifyTable":
        rows = (node["Actual Rows"] + node.get("Rows Removed by Filter", 0)) * node["Actual Loops"]
        found.append((node["Node Type"], rows))
    for child in node.get("Plans", []):
        found += _jobs_table_reads(child)
    return found


@pytest.mark.postgres
@pytest.mark.parametrize("plan", ["generic", "custom"])
def test_a_claim_reads_a_few_index_entries_however_many_jobs_wait_or_are_parked(
    postgres_url: str, plan: str
) -> None:
    """With 300 jobs waiting and 400 parked an hour ahead, each scan of the jobs table in the claim
    statement returns a row or few: its searches read an index in their order and stop at their first
    row, so neither the waiting jobs are read and sorted at each claim nor the parked ones read one by
    one in search of a due one. Measured by PostgreSQL itself, under both plans it may run the board's
    prepared statement with. Then the claims take the best job first, and a due parked job in its turn."""
    import sqlalchemy as sa

    board = SQLJobBoard("backlog", postgres_url)
    board.connect()
    engine = board.engine
    assert engine is not None
    try:
        for i in range(300):
            board.post(f"j{i}", priority=i % 3)
        for i in range(401):
            board.post(f"p{i}", priority=2)
        now = time.time()
        with engine.begin() as conn:  # parked as a conductor's park leaves them (only the row matters here)
            # the due one last in the claim order: the pick index alone leads to it through all the others
            for name, wake_at in (*((f"p{i}", now + 3600) for i in range(400)), ("p400", now - 1)):
                conn.execute(
                    sa.text(
                        "UPDATE flowkit_jobs SET state = 'WAITING', wake_at = :w"
                        " WHERE board = 'backlog' AND name = :n"
                    ),
                    {"w": wake_at, "n": name},
                )
            conn.exec_driver_sql("ANALYZE flowkit_jobs")

        read = _claim_scans(engine, "backlog", plan)
        assert read and all(rows <= 3 for _, rows in read), read
        assert "Seq Scan" not in {kind for kind, _ in read}, read
        # the best job first: every unclaimed job of priority 2, oldest first, then the due parked one
        # (priority 2, posted after them), and none of those parked ahead
        names: list[str] = []
        while (job := board.claim_next("c")) is not None and job.name != "p400" and len(names) <= 100:
            names.append(job.name)
        assert names == [f"j{i}" for i in range(2, 300, 3)]
        assert job is not None and job.name == "p400"
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM flowkit_jobs WHERE board = 'backlog'"))
        board.close()


def test_a_hung_renewal_is_in_doubt_then_lost_on_time(tmp_path) -> None:
    """The watchdog judges leases by the last good renewal, not by a renewal call that hangs."""
    import sqlite3

    path = tmp_path / "board.db"
    lease = 1.5
    board = SQLJobBoard("hung", f"sqlite:///{path}", lease=lease)
    with held_claim(board, "a") as held:
        locker = sqlite3.connect(path, isolation_level=None, timeout=5)
        try:
            locker.execute("BEGIN IMMEDIATE")  # the renewal now waits for the write lock
            locked = time.monotonic()
            wait_until(lambda: ClaimEvent.LOST in held.events, lease * 2, "LOST")
            seen = {event: at - locked for event, at in held.timed}
            assert seen[ClaimEvent.IN_DOUBT] < lease / 3 + 0.35, seen
            assert seen[ClaimEvent.LOST] < lease * 0.9 + 0.35, seen
            assert held.events == [ClaimEvent.IN_DOUBT, ClaimEvent.LOST]
        finally:
            locker.rollback()
            locker.close()


def test_a_late_renewal_cannot_resurrect_an_expired_lease(tmp_path) -> None:
    board = SQLJobBoard("late", f"sqlite:///{tmp_path}/board.db", lease=0.6)
    with held_claim(board, "a") as held:
        board._leases.stop()
        time.sleep(0.8)  # the lease ran out; nobody else claimed the job
        board._leases.renew()  # a renewal that comes too late
        assert held.events == [ClaimEvent.LOST]
        assert board.find_owner(held.job) is None and held.job.state is JobState.UNCLAIMED


@pytest.mark.postgres
def test_post_flow_on_the_persistence_database_is_one_commit(postgres_url: str) -> None:
    """The logbook and the job in one transaction: one commit (a disk flush) per post, not two."""
    import sqlalchemy as sa
    from sqlalchemy import event

    from flowkit.persistence.backends import fetch as fetch_persistence

    board = SQLJobBoard("one-commit", postgres_url, persistence=postgres_url)
    board.connect()
    board.post_flow("tests.job_flows:steps", name="first")  # persistence's schema checked once
    commits: list[object] = []

    def count(conn: object) -> None:
        commits.append(conn)

    event.listen(sa.engine.Engine, "commit", count)
    try:
        job = board.post_flow("tests.job_flows:steps", store={"n": 1}, name="once")
        assert len(commits) == 1
        assert board.get_job(job.uuid).flow_uuid == job.flow_uuid
        with fetch_persistence(postgres_url).get_connection() as conn:
            assert conn.get_flow_detail(job.flow_uuid or "").meta["store"] == {"n": 1}
    finally:
        event.remove(sa.engine.Engine, "commit", count)
        board.close()


@pytest.mark.postgres
def test_post_flow_on_postgresql_is_two_statements(postgres_url: str) -> None:
    """The logbook's and the flow's rows go in one message (the first upsert held for the second's),
    then the job's INSERT with its NOTIFY: two statements and the commit, and the rows are all there."""
    from flowkit.persistence.backends import fetch as fetch_persistence

    board = SQLJobBoard("two-statements", postgres_url, persistence=postgres_url)
    board.connect()
    try:
        board.post_flow("tests.job_flows:steps", name="first")  # the schema is checked once
        with main_thread_statements(board.engine) as sent:
            job = board.post_flow("tests.job_flows:steps", store={"n": 2}, name="second")
        [rows, insert] = sent
        assert rows.count("EXECUTE flowkit_insert") == 2, rows
        assert insert.startswith("INSERT INTO") and "pg_notify" in insert, insert
        with fetch_persistence(postgres_url).get_connection() as conn:
            book = conn.get_logbook(job.book_uuid or "")
            assert [fd.uuid for fd in book] == [job.flow_uuid]
            assert conn.get_flow_detail(job.flow_uuid or "").meta["store"] == {"n": 2}
    finally:
        board.close()


@pytest.mark.postgres
def test_a_post_notifies_in_its_insert_and_wakes_another_board(postgres_url: str) -> None:
    """On PostgreSQL a post is one statement (the INSERT, whose RETURNING queues the NOTIFY) and its
    commit; the NOTIFY still wakes another board waiting on the same board name at once, long before
    its poll would (no post of its own wakes it: it is another object)."""
    import threading

    poster = SQLJobBoard("notified", postgres_url)
    poster.connect()
    woken: list[float] = []
    waiter = SQLJobBoard("notified", postgres_url, poll=60.0)

    def wait() -> None:
        waiter.wait_claimable(timeout=15.0)
        woken.append(time.monotonic())

    try:
        poster.post("warm-up")  # the statement is built and the schema checked once
        assert poster.claim_next("c") is not None
        # Connected only now: its LISTEN starts after the warm-up's commit, so the warm-up's NOTIFY
        # can never reach it, and the one wake it may get is the post's below.
        waiter.connect()
        waiting = threading.Thread(target=wait, daemon=True)
        waiting.start()
        time.sleep(0.5)  # (it reads the board, finds nothing claimable, and sleeps on its poll)
        assert not woken
        with main_thread_statements(poster.engine) as sent:
            posted = time.monotonic()
            job = poster.post("j")
        [insert] = sent
        assert insert.startswith("INSERT INTO") and "pg_notify" in insert
        waiting.join(timeout=20.0)
        assert woken and woken[0] - posted < 5.0, "the waiting board was not woken by the post's NOTIFY"
        assert [j.uuid for j in waiter.iterjobs(only_unclaimed=True)] == [job.uuid]
    finally:
        waiter.close()
        poster.close()


@pytest.mark.postgres
def test_claim_and_consume_are_one_round_trip_each_on_postgresql(postgres_url: str) -> None:
    """A claim is one message, committed durably; a consume one message that commits relaxed: no
    BEGIN or COMMIT of their own (they were three and four round trips through SQLAlchemy). Only this
    thread's statements count (the board's lease and cancel threads share the engine)."""
    import threading

    from sqlalchemy import event

    board = SQLJobBoard("one-trip", postgres_url)
    board.connect()
    engine = board.engine
    assert engine is not None
    sent: list[str] = []

    def statement(conn: object, cursor: object, text: str, *args: object) -> None:
        if threading.current_thread() is threading.main_thread():
            sent.append(text)

    def transaction(conn: object) -> None:
        if threading.current_thread() is threading.main_thread():
            sent.append("<begin or commit>")

    hooks = [("before_cursor_execute", statement), ("begin", transaction), ("commit", transaction)]
    try:
        posted = [board.post(f"j{i}") for i in range(4)]
        first = board.claim_next("c")  # (its consume also purges the board's history, once a minute)
        assert first is not None
        board.consume(first, "c")
        for name, hook in hooks:
            event.listen(engine, name, hook)
        for _ in posted[1:]:
            sent.clear()
            job = board.claim_next("c")
            assert job is not None and job.fence is not None
            [claim] = sent
            assert claim.startswith(("EXECUTE flowkit_board_", "PREPARE flowkit_board_"))
            assert "synchronous_commit" not in claim
            sent.clear()
            board.consume(job, "c")
            [consume] = sent
            assert "SET LOCAL synchronous_commit TO off; EXECUTE flowkit_board_" in consume
        sent.clear()
        assert board.claim_next("c") is None and len(sent) == 1
        assert board.job_count() == 0 and board.state_of(posted[0]) is JobState.COMPLETE
    finally:
        for name, hook in hooks:
            event.remove(engine, name, hook)
        board.close()


@pytest.mark.postgres
def test_a_prepared_board_statement_the_server_lost_is_prepared_again(postgres_url: str) -> None:
    """Behind a pooler that runs DISCARD ALL, a connection loses the statements prepared on it."""
    import sqlalchemy as sa

    from flowkit.jobboard.backends import _sql_prepared as prepared
    from flowkit.jobboard.backends._sql_schema import jobs

    board = SQLJobBoard("discarded", postgres_url)
    board.connect()
    engine = board.engine
    assert engine is not None
    count = sa.select(sa.func.count()).select_from(jobs).where(jobs.c.board == sa.bindparam("board"))
    counting = prepared.Prepared(count, ["board"])
    try:
        board.post("j")
        kept = prepared.Kept(engine)
        with kept.cursor() as (conn, cursor):
            assert counting.run(conn, cursor, {"board": "discarded"}).fetchone() == (1,)
            cursor.execute("DEALLOCATE ALL")
            assert counting.run(conn, cursor, {"board": "discarded"}).fetchone() == (1,)
            assert counting.run(conn, cursor, {"board": "other"}).fetchone() == (0,)
        kept.close()
    finally:
        board.close()


@pytest.mark.postgres
def test_a_kept_connection_that_died_while_idle_is_replaced(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The board keeps one connection for its claims and consumes; one that sat idle is pinged first, as
    the pool pings its own, so a server that dropped it meanwhile costs no failed claim."""
    from flowkit.jobboard.backends import _sql_prepared as prepared

    monkeypatch.setattr(prepared, "PING_AFTER", 0.05)
    board = SQLJobBoard("kept", postgres_url)
    board.connect()
    admin = psycopg2.connect(postgres_url)
    admin.autocommit = True
    try:
        board.post("first"), board.post("second")
        first = board.claim_next("c")
        assert first is not None
        kept = board._kept._kept if board._kept is not None else None
        assert kept is not None, "the claim's connection is kept for the next statement"
        pid = kept[0].connection.dbapi_connection.get_backend_pid()  # type: ignore[union-attr]
        with admin.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
        time.sleep(0.1)
        second = board.claim_next("c")
        assert second is not None and second.uuid != first.uuid
        board.consume(first, "c")
        board.consume(second, "c")
        assert board.job_count() == 0
    finally:
        admin.close()
        board.close()


def test_due_parked_jobs_are_resumed_in_the_order_they_came_due(tmp_path) -> None:
    """The claim's search for a due parked job reads the parked jobs by due time (see
    docs/jobboards.md, Parked jobs): of two due ones, the one due first goes first whatever their
    priorities, and one parked ahead is not taken. Each comes due by its event (which sets its
    wake-up time to the event's), so the order is the events' and no clock is raced."""
    url = f"sqlite:///{tmp_path}/board.db"
    board = SQLJobBoard("due", url, persistence=url)  # (events are saved in persistence)
    board.connect()
    try:
        for name, priority in (("low", 0), ("high", 2), ("ahead", 2)):
            board.post(name, priority=priority)
            job = board.claim_next("c")
            assert job is not None and job.name == name
            board.park(job, "c", wake_at=time.time() + 3600, events=[f"{name}-event"])
        assert board.claim_next("c") is None  # none due
        board.send_event("low-event", None)
        time.sleep(0.01)  # (the clock moves on: the second event's time is later)
        board.send_event("high-event", None)
        claimed = [board.claim_next("c") for _ in range(3)]
        assert [job.name if job else None for job in claimed] == ["low", "high", None]
    finally:
        board.close()


@pytest.mark.postgres
def test_a_renewal_reads_the_boards_claims_not_its_history(postgres_url: str) -> None:
    """The heartbeat's renewal of a board's leases, with 3,000 consumed jobs kept (a board's history)
    and another board's claims beside its own: every scan of the jobs table reads the board's claimed
    rows or fewer, and the renewal extends exactly its own leases."""
    import uuid

    import sqlalchemy as sa

    from flowkit.jobboard.backends import _sql_leases as leases

    board = SQLJobBoard("renewing", postgres_url)
    board.connect()
    engine = board.engine
    assert engine is not None
    now = time.time()

    def row(name: str, on: str, state: str, token: str | None) -> dict[str, object]:
        return {
            "board": on,
            "uuid": str(uuid.uuid4()),
            "name": name,
            "state": state,
            "priority": 0,
            "owner": "c",
            "lease_token": token,
            "lease_expires": now + 60,
            "attempts": 1,
            "created_on": now,
            "updated_on": now,
            "record": "{}",
        }

    ours = [str(uuid.uuid4()) for _ in range(5)]
    rows = [row(f"done{i}", "renewing", "CONSUMED", str(uuid.uuid4())) for i in range(3000)]
    rows += [row(f"other{i}", "other", "CLAIMED", str(uuid.uuid4())) for i in range(50)]
    rows += [row(f"ours{i}", "renewing", "CLAIMED", token) for i, token in enumerate(ours)]
    try:
        with engine.begin() as conn:
            conn.execute(leases.T.insert(), rows)
            conn.exec_driver_sql("ANALYZE flowkit_jobs")
        stmt = leases.renewal("renewing", [*ours, rows[0]["lease_token"]], time.time(), 10.0)  # type: ignore[list-item]
        compiled = stmt.compile(dialect=engine.dialect, compile_kwargs={"render_postcompile": True})
        with engine.connect() as conn:
            explain = f"EXPLAIN (ANALYZE, FORMAT JSON) {compiled.string}"
            [[plan]] = conn.exec_driver_sql(explain, compiled.construct_params()).all()
            conn.rollback()
            renewed = conn.execute(stmt).all()
            conn.commit()

        read = [rows for _, rows in _jobs_table_reads(plan[0]["Plan"])]
        assert read and all(count <= len(ours) for count in read), read
        assert sorted(uuid for (uuid,) in renewed) == sorted(r["uuid"] for r in rows[-len(ours) :])  # type: ignore[type-var]
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM flowkit_jobs WHERE board IN ('renewing', 'other')"))
        board.close()
