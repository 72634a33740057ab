"""What only the SQL board does: leases that run out, renewal trouble, and SKIP LOCKED on PostgreSQL."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import psycopg2
import pytest

from flowkit.jobboard import ClaimEvent, JobState
from flowkit.jobboard.backends.sql import SQLJobBoard
from tests.support.wait import wait_until
from tests.tcp_proxy import TcpProxy


def test_a_dead_claimants_lease_runs_out(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/board.db"
    dead, alive = SQLJobBoard("b", url, lease=0.6), SQLJobBoard("b", url, lease=0.6)
    dead.connect()
    alive.connect()
    events: list[ClaimEvent] = []
    dead.add_claim_listener(lambda event, uuids: events.append(event))
    try:
        job = dead.post("j")
        dead.claim(job, "dead")
        dead._leases.stop()  # the heartbeat stops, as when the process dies
        time.sleep(0.3)
        assert dead.find_owner(job) == "dead"  # renewed at claim time, still valid
        [again] = alive.wait(5)
        assert job.state is JobState.UNCLAIMED
        alive.claim(again, "alive")
        dead._leases.renew()  # what its heartbeat would find if it woke up
        assert events == [ClaimEvent.LOST]
        alive.consume(again, "alive")
    finally:
        dead.close()
        alive.close()


@pytest.mark.postgres
def test_renewal_trouble_is_in_doubt_then_confirmed(postgres_url: str) -> None:
    parts = urlsplit(postgres_url)
    proxy = TcpProxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    url = postgres_url.replace(f":{parts.port}/", f":{proxy.port}/")
    board = SQLJobBoard("renewals", url, lease=1.5)
    board.connect()
    events: list[ClaimEvent] = []
    board.add_claim_listener(lambda event, uuids: events.append(event))
    try:
        job = board.post("j")
        board.claim(job, "a")
        proxy.cut()
        wait_until(lambda: ClaimEvent.IN_DOUBT in events, 3, "IN_DOUBT")
        proxy.restore()
        wait_until(lambda: ClaimEvent.CONFIRMED in events, 3, "CONFIRMED")
        assert ClaimEvent.LOST not in events
        board.consume(job, "a")
    finally:
        board.close()
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


def test_a_hung_renewal_is_in_doubt_then_lost_on_time(tmp_path) -> None:
    """The watchdog judges leases by the last good renewal, not by a renewal call that hangs."""
    import sqlite3

    path = tmp_path / "board.db"
    lease = 1.5
    board = SQLJobBoard("hung", f"sqlite:///{path}", lease=lease)
    board.connect()
    events: list[tuple[ClaimEvent, float]] = []
    board.add_claim_listener(lambda event, uuids: events.append((event, time.monotonic())))
    locker = sqlite3.connect(path, isolation_level=None, timeout=5)
    try:
        job = board.post("j")
        board.claim(job, "a")
        locker.execute("BEGIN IMMEDIATE")  # the renewal now waits for the write lock
        locked = time.monotonic()
        wait_until(lambda: ClaimEvent.LOST in [e for e, _ in events], lease * 2, "LOST")
        seen = {event: at - locked for event, at in events}
        assert seen[ClaimEvent.IN_DOUBT] < lease / 3 + 0.35, seen
        assert seen[ClaimEvent.LOST] < lease * 0.9 + 0.35, seen
        assert [e for e, _ in events] == [ClaimEvent.IN_DOUBT, ClaimEvent.LOST]
    finally:
        locker.rollback()
        locker.close()
        board.close()


def test_a_late_renewal_cannot_resurrect_an_expired_lease(tmp_path) -> None:
    board = SQLJobBoard("late", f"sqlite:///{tmp_path}/board.db", lease=0.6)
    board.connect()
    events: list[ClaimEvent] = []
    board.add_claim_listener(lambda event, uuids: events.append(event))
    try:
        job = board.post("j")
        board.claim(job, "a")
        board._leases.stop()
        time.sleep(0.8)  # the lease ran out; nobody else claimed the job
        board._leases.renew()  # a renewal that comes too late
        assert events == [ClaimEvent.LOST]
        assert board.find_owner(job) is None and job.state is JobState.UNCLAIMED
    finally:
        board.close()


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
