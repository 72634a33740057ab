"""A real PostgreSQL server crash in the middle of a flow: what the database says after ``run()``.

The flow runs in this process against its own server (``tests/pg_server.py``), with the default
durability (atom transitions committed asynchronously, flushed with the flow's transitions). At a
chosen point the server is stopped with ``pg_ctl stop -m immediate`` (WAL still in the server's
memory is lost, as in a crash) and started again a few seconds later; the engine's writes wait for it
(backoff) and the flow goes on. When ``run()`` returns the saved flow must be one the engine could
have been in: flow SUCCESS with every atom SUCCESS and its result, or flow REVERTED with every atom
REVERTED. The server's WAL writer is slowed down so that the crash always catches unflushed commits.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import closing
from typing import Any

import psycopg2
import pytest
import sqlalchemy as sa

from flowkit import LinearFlow, engines
from flowkit.exceptions import ClaimLost
from flowkit.persistence import backends
from flowkit.persistence.backends import Backend
from flowkit.persistence.backends._tables import TABLES
from flowkit.persistence.backoff import Backoff
from flowkit.persistence.models import FlowDetail, LogBook
from flowkit.persistence.rows import ATOMS, FLOWS
from flowkit.states import AtomState, FlowState
from tests.pg_server import PgServer, require_pg_binaries
from tests.support.crash_steps import Boom, Step, once
from tests.support.persistence import fresh_backend, saved_flow

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

N = 100
CRASH_AT = 40
DOWN_S = 3.0
# Async commits normally reach the WAL files within ~3 x 200 ms; a slower WAL writer makes every crash
# catch some (the defect showed with the defaults too, just not on every run).
SETTINGS = {"wal_writer_delay": "2s"}


@pytest.fixture(scope="module")
def pg() -> Iterator[PgServer]:
    require_pg_binaries()
    with PgServer(SETTINGS) as server:
        yield server


@pytest.fixture
def direct(pg: PgServer) -> Iterator[Backend]:
    b = fresh_backend(pg.url)
    yield b
    b.close()


def _run(pg: PgServer, flow: LinearFlow, fd: FlowDetail, listen: Callable[[Any], None] | None = None) -> None:
    backend = backends.fetch(pg.url, backoff=Backoff(timeout=60))
    try:
        engine = engines.load(flow, backend=backend, flow_detail=fd)
        if listen is not None:
            listen(engine)
        started = time.monotonic()
        try:
            engine.run()
        finally:
            pg.wait_restarted()
        assert time.monotonic() - started >= DOWN_S  # the crash did happen while the flow ran
    finally:
        backend.close()


def _idle_in_transaction(pg: PgServer) -> int:
    """Sessions of the server holding a transaction open between statements."""
    with closing(psycopg2.connect(pg.url)) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%%'")
        row = cur.fetchone()
        return int(row[0]) if row else 0


def _wrong(direct: Backend, fd: FlowDetail, state: AtomState, results: bool) -> dict[str, str]:
    """Atoms whose saved state (or result) is not what the finished engine has: lost writes."""
    saved = saved_flow(direct, fd.uuid)
    wrong = {}
    for ad in saved:
        want = f"result of {ad.name}" if results else None
        if ad.state is not state or (results and ad.results != want):
            wrong[ad.name] = f"{ad.state.value} {ad.results!r}"
    return wrong


def test_a_server_crash_mid_flow_loses_no_atom_state(pg: PgServer, direct: Backend) -> None:
    crash = once(lambda: pg.crash_for(DOWN_S))
    flow = LinearFlow("crashing").add(
        *(Step(f"t{i:02d}", on_execute=crash if i == CRASH_AT else None) for i in range(N))
    )
    fd = FlowDetail("crashing")
    _run(pg, flow, fd)
    saved = saved_flow(direct, fd.uuid)
    assert len(list(saved)) == N
    assert saved.state is FlowState.SUCCESS
    assert _wrong(direct, fd, AtomState.SUCCESS, results=True) == {}


def test_a_server_crash_just_before_the_flow_ends_loses_no_atom_state(pg: PgServer, direct: Backend) -> None:
    """The crash comes after the last atom's SUCCESS is saved: the flow's own write meets it first."""
    crash = once(lambda: pg.crash_for(DOWN_S))
    flow = LinearFlow("crashing").add(*(Step(f"t{i:02d}") for i in range(N)))
    fd = FlowDetail("crashing")

    def listen(engine: Any) -> None:
        last = f"t{N - 1:02d}"
        engine.atom_notifier.register(
            AtomState.SUCCESS, lambda state, details: crash() if details["atom_name"] == last else None
        )

    _run(pg, flow, fd, listen)
    saved = saved_flow(direct, fd.uuid)
    assert saved.state is FlowState.SUCCESS
    assert _wrong(direct, fd, AtomState.SUCCESS, results=True) == {}


def test_a_server_crash_mid_revert_loses_no_atom_state(pg: PgServer, direct: Backend) -> None:
    crash = once(lambda: pg.crash_for(DOWN_S))
    reverted_at = N - 1 - CRASH_AT  # reverts go last to first: the 40th revert
    flow = LinearFlow("reverting").add(
        *(Step(f"t{i:02d}", on_revert=crash if i == reverted_at else None, fail=i == N - 1) for i in range(N))
    )
    fd = FlowDetail("reverting")
    with pytest.raises(Boom):
        _run(pg, flow, fd)
    saved = saved_flow(direct, fd.uuid)
    assert saved.state is FlowState.REVERTED
    assert _wrong(direct, fd, AtomState.REVERTED, results=False) == {}


def test_a_durable_point_inside_a_long_flow_is_durable(
    pg: PgServer, direct: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past KEEP_MAX kept atom rows the recorder flushes and forgets them: that flush must be on disk.

    The crash comes right after such a flush (at the RUNNING of the KEEP_MAX-th atom), so nothing
    written before it is written again: it all has to be there already.
    """
    from flowkit.persistence import recorder

    keep = 10
    monkeypatch.setattr(recorder, "KEEP_MAX", keep)
    crash = once(lambda: pg.crash_for(DOWN_S))
    n = 3 * keep
    flow = LinearFlow("crashing").add(
        *(Step(f"t{i:02d}", on_execute=crash if i == keep - 1 else None) for i in range(n))
    )
    fd = FlowDetail("crashing")
    _run(pg, flow, fd)
    saved = saved_flow(direct, fd.uuid)
    assert saved.state is FlowState.SUCCESS
    assert {ad.name: ad.state.value for ad in saved if ad.state is not AtomState.SUCCESS} == {}


def test_a_rewrite_after_a_crash_is_fenced_and_leaves_no_open_transaction(
    pg: PgServer, direct: Backend
) -> None:
    """The atom rows written again after a crash carry the claim's fence like every write: a newer
    claim that took the flow over while the server was down refuses them, the flow's final state is
    not written, and the refused durable transaction is rolled back, not left open in the pool."""
    flow = LinearFlow("fenced").add(*(Step(f"t{i:02d}") for i in range(N)))
    book, fd = LogBook("fenced"), FlowDetail("fenced")
    book.add(fd)
    with direct.get_connection() as conn:
        conn.save_logbook(book)

    def takeover() -> None:  # the server crashes; once it is back a newer claim raises the fence
        pg.crash_for(DOWN_S)
        pg.wait_restarted()
        with direct.get_connection() as conn:
            assert conn.run(lambda: conn.raise_fence(fd.uuid, 2)) == 2

    crash = once(takeover)
    # (the last atom's SUCCESS is saved with the flow's, in one durable transaction: the crash comes
    # after the one before it, told once saved with the last one's RUNNING)
    last = f"t{N - 2:02d}"
    backend = backends.fetch(pg.url, backoff=Backoff(timeout=60))
    try:
        engine = engines.load(flow, backend=backend, flow_detail=fd, fence=1)
        engine.atom_notifier.register(
            AtomState.SUCCESS, lambda state, details: crash() if details["atom_name"] == last else None
        )
        with pytest.raises(ClaimLost):
            engine.run()
        assert _idle_in_transaction(pg) == 0
    finally:
        backend.close()
    assert saved_flow(direct, fd.uuid).state is FlowState.RUNNING  # the old claim's SUCCESS was refused


def test_a_fenced_set_up_lost_in_a_crash_is_reported_not_taken_for_a_newer_claim(
    pg: PgServer, direct: Backend
) -> None:
    """A fenced flow's set-up (its fence raise, its new atom rows) and its RUNNING are committed without
    a disk flush of their own: the run's end flushes them. A crash before that loses them, and the next
    write, refused by the older fence left in the row, must say so as a StorageError (the conductor
    gives the job back), not as ClaimLost (it would drop a job nobody else holds)."""
    from flowkit.exceptions import StorageError

    flow = LinearFlow("fenced").add(*(Step(f"t{i:02d}") for i in range(3)))
    book, fd = LogBook("fenced"), FlowDetail("fenced")
    book.add(fd)
    with direct.get_connection() as conn:
        conn.save_logbook(book)
    flows, atoms = TABLES[FLOWS], TABLES[ATOMS]
    with direct.engine.connect() as conn:  # type: ignore[attr-defined]
        saved_row = conn.execute(sa.select(flows).where(flows.c.uuid == fd.uuid)).one()._asdict()

    def lose_the_set_up() -> None:
        """Whether the crash takes the relaxed commits with it is up to PostgreSQL's WAL writer (it
        flushes completed WAL pages at any time, and full-page images after a restart's checkpoint fill
        pages fast): when they survived, make the database what a crash that took them leaves, the flow
        row as saved before the run and no atom rows, so the case is the same on every run."""
        with direct.engine.begin() as conn:  # type: ignore[attr-defined]
            conn.execute(sa.delete(atoms).where(atoms.c.parent_uuid == fd.uuid))
            conn.execute(sa.update(flows).where(flows.c.uuid == fd.uuid).values(**saved_row))

    crash = once(lambda: (pg.crash_for(DOWN_S), pg.wait_restarted(), lose_the_set_up()))
    backend = backends.fetch(pg.url, backoff=Backoff(timeout=60))
    try:
        engine = engines.load(flow, backend=backend, flow_detail=fd, fence=7)
        engine.atom_notifier.register(
            AtomState.RUNNING, lambda state, details: crash() if details["atom_name"] == "t00" else None
        )
        with pytest.raises(StorageError) as raised:
            engine.run()
        assert not isinstance(raised.value, ClaimLost)
        assert "lost the flow's set-up" in str(raised.value)
        assert _idle_in_transaction(pg) == 0
    finally:
        backend.close()
    saved = saved_flow(direct, fd.uuid)
    assert saved.state is None or saved.state is FlowState.PENDING
    assert list(saved) == []  # the atom rows went with the set-up
    # a later claim takes the flow over and runs it from the start
    backend = backends.fetch(pg.url, backoff=Backoff(timeout=60))
    try:
        engines.load(flow, backend=backend, flow_detail=FlowDetail("fenced", uuid=fd.uuid), fence=8).run()
    finally:
        backend.close()
    assert saved_flow(direct, fd.uuid).state is FlowState.SUCCESS
