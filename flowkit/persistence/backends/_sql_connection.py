"""The SQL backend's connection: units of work on SQLAlchemy Core, retried, and its row primitives.

See :mod:`flowkit.persistence.backends.sqlalchemy` for the choices (relaxed autocommit writers, durable
flow transitions, kept connections, retried connection errors).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from flowkit.exceptions import SchemaError, StorageError
from flowkit.persistence.backends._sql_durability import sync_file
from flowkit.persistence.backends._sql_errors import retryable, translate
from flowkit.persistence.backends._sql_statements import (
    FENCE,
    IN_CHUNK,
    atom_order,
    select_statement,
)
from flowkit.persistence.backends._sql_take import take
from flowkit.persistence.backends._tables import ORDER, TABLES, events
from flowkit.persistence.backends.base import Connection, WrittenRow
from flowkit.persistence.models import FlowDetail
from flowkit.persistence.rows import ATOMS, FLOWS, LOGBOOKS, Columns, Row
from flowkit.sql import engines

if TYPE_CHECKING:
    from flowkit.persistence.backends.sqlalchemy import SQLAlchemyBackend

T = TypeVar("T")
# (named as the backend module, as it was before the split: log filters keep working)
LOG = logging.getLogger("flowkit.persistence.backends.sqlalchemy")
SESSIONS = itertools.count(1)  # Connection.session: every database connection opened gets the next one


class SQLAlchemyConnection(Connection):
    """See the module docstring. A plain connection checks a database connection out for each unit of
    work (so forgetting ``close()`` leaks nothing); an ``autocommit`` one keeps it until ``close()``."""

    backend: SQLAlchemyBackend

    def __init__(self, backend: SQLAlchemyBackend, autocommit: bool = False) -> None:
        super().__init__(backend)
        self._engine = backend.engine
        self._autocommit = autocommit
        self._conn: sa.Connection | None = None
        self._cursor: Any = None  # the DB-API cursor of _conn that update_row uses, made at first use
        self._in_transaction = False  # inside run_durable's own BEGIN ... COMMIT
        # a relaxed writer: its database connection goes back to the backend's park, not the pool
        self._parks = autocommit and backend.relaxed is not None

    # -- connection handling ------------------------------------------------------------------------

    def _checkout(self) -> sa.Connection:
        """The database connection, for a statement through SQLAlchemy: inside a unit of work on
        PostgreSQL, what is held for the next message (``PreparedUpdates.hold``) is sent first, since it
        cannot go in SQLAlchemy's."""
        conn = self._conn if self._conn is not None else self._connect()
        if self._in_transaction:
            self.backend.updates.flush_held(conn, self._raw_cursor(conn))
        return conn

    def _writer(self) -> sa.Connection:
        """The database connection, for a statement through ``PreparedUpdates``, which sends what is held
        in the same message as its own."""
        return self._conn if self._conn is not None else self._connect()

    def _connect(self) -> sa.Connection:
        """The database connection held, checked out first (a relaxed writer's parked one, if any)."""
        if self._conn is None:
            if self._parks:
                parked = self.backend.unpark()
                if parked is not None:
                    self.session = next(SESSIONS)  # (kept writes never span runs: a new one is safe)
                    self._conn = parked
                    return parked
            conn = self._engine.connect()
            self.session = next(SESSIONS)
            if self._autocommit:
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                if self.backend.relaxed:
                    try:
                        conn.exec_driver_sql(self.backend.relaxed[0])
                    except BaseException:
                        conn.invalidate()
                        conn.close()
                        raise
            self._conn = conn
        return self._conn

    def _release(self, invalidate: bool = False) -> None:
        conn, self._conn, self._cursor = self._conn, None, None
        # closed from inside run_durable: never give the pool a half-done transaction
        invalidate, self._in_transaction = invalidate or self._in_transaction, False
        if conn is None:
            return
        if not invalidate and self._parks and self.backend.park(conn):
            return
        try:
            if not invalidate and self._autocommit and self.backend.relaxed:
                conn.exec_driver_sql(self.backend.relaxed[1])  # the pool's other users expect durability
        except sa_exc.SQLAlchemyError:
            invalidate = True
        try:
            if invalidate:
                conn.invalidate()
            conn.close()
        except sa_exc.SQLAlchemyError:  # a dead connection may fail to close; the pool drops it
            pass

    def close(self) -> None:
        self._release()

    @property
    def durable(self) -> bool:
        return not (self._autocommit and self.backend.relaxed)

    def _retrying(self, fn: Callable[[], T], delays: Iterator[float] | None = None) -> T:
        """Call ``fn``; on a connection error drop the connection, wait, and call it again."""
        while True:
            try:
                return fn()
            except sa_exc.SQLAlchemyError as exc:
                delays = self._recover(exc, delays)

    def _recover(self, exc: sa_exc.SQLAlchemyError, delays: Iterator[float] | None) -> Iterator[float]:
        """After ``exc``: drop the connection, and wait before the next attempt (returning the
        delays left), or raise the StorageError the caller gets when there is none."""
        retry = retryable(exc)
        self._release(invalidate=retry)
        if not retry:
            raise translate(exc, self.backend.display_url) from exc
        reason = getattr(exc, "orig", None) or exc
        delays = delays or self.backend.backoff.delays()
        delay = next(delays, None)
        if delay is None:
            raise StorageError(
                f"{self.backend.display_url} is unreachable; gave up after "
                f"{self.backend.backoff.timeout:g} s of retrying: {reason}"
            ) from exc
        LOG.warning("database %s: %s; retrying in %.2f s", self.backend.display_url, reason, delay)
        self.backend.backoff.sleep(delay)  # wakes early when the process stops
        return delays

    def run(self, fn: Callable[[], T]) -> T:
        if self._autocommit:
            return self._retrying(lambda: (self._checkout(), fn())[1])

        def attempt() -> T:
            with self._checkout().begin():
                return fn()

        try:
            return self._retrying(attempt)
        finally:
            self._release()

    def read(self, *statements: sa.Executable) -> list[list[sa.Row[Any]]]:
        """The rows of each read-only statement, all in one unit of work (retried like any other).

        For queries the row primitives do not cover (:mod:`flowkit.persistence.queries`).
        """
        return self.run(lambda: [list(self._checkout().execute(s).all()) for s in statements])

    def run_setup(self, fn: Callable[[], T], fenced: bool = False) -> T:
        """SQLite at ``durability="flow"``: the transaction commits at ``synchronous=NORMAL`` (no fsync;
        the flow's first transition, a durable commit, syncs the WAL with it). On a plain connection
        that level is set and reset on the driver's connection around it (a safety level cannot change
        inside a transaction); the recorder's autocommit connection (its set-up runs there: no second
        connection per run, see ``setup_on_writer``) is at that level already.
        PostgreSQL at ``durability="flow"``, ``fenced``: the transaction commits with
        ``synchronous_commit`` off (on the recorder's autocommit connection, whose session has it off;
        on a plain one, ``SET LOCAL``: this transaction only); the flow's next durable commit flushes
        the WAL up to its own record, past this one. Why: a conductor's set-up is on the path from
        claim to first task, and each durable commit there is a disk flush (several ms on a busy
        disk). Elsewhere the transaction is durable."""
        postgresql = self.backend.relaxed is not None and self.backend.relaxed_setup is None
        if fenced and postgresql and not self._autocommit:
            return self.run(lambda: (self._checkout().exec_driver_sql(engines.RELAXED_TRANSACTION), fn())[1])
        pragmas = self.backend.relaxed_setup
        if self._autocommit:
            if pragmas is None and fenced and postgresql:
                return self._own_transaction(fn, ("BEGIN",), ("COMMIT",))
            if pragmas is None:
                return self.run_durable(fn)
            return self._own_transaction(fn, ("BEGIN IMMEDIATE",), ("COMMIT",))
        if pragmas is None:
            return self.run(fn)
        relax, restore = pragmas

        def attempt() -> T:
            conn = self._checkout()
            driver = conn.connection.dbapi_connection
            assert driver is not None
            try:
                driver.execute(relax)
                with conn.begin():
                    return fn()
            finally:
                try:
                    driver.execute(restore)  # the pool's other users expect durable commits
                except Exception:
                    self._release(invalidate=True)

        try:
            return self._retrying(attempt)
        finally:
            self._release()

    def run_durable(self, fn: Callable[[], T]) -> T:
        if not self._autocommit:
            return self.run(fn)  # a plain connection's commits are durable
        if self.backend.relaxed_setup is not None:  # SQLite, relaxed: sync the WAL after the commit
            wal = self.backend.wal_file(self._checkout())
            if wal is not None:
                return self._own_transaction(fn, ("BEGIN IMMEDIATE",), ("COMMIT",), wal)
        return self._own_transaction(fn, *self.backend.durable_transaction)

    def run_together(self, fn: Callable[[], T]) -> T:
        if not self._autocommit:
            if not self.backend.updates.server_side:
                return self.run(fn)
            return self._plain_together(fn)
        sqlite = self.backend.engine.dialect.name == "sqlite"
        return self._own_transaction(fn, ("BEGIN IMMEDIATE" if sqlite else "BEGIN",), ("COMMIT",))

    def _plain_together(self, fn: Callable[[], T]) -> T:
        """:meth:`run_together` on a plain PostgreSQL connection: ``BEGIN``, what ``fn`` sends through
        ``PreparedUpdates`` (held) and ``COMMIT`` in one message, with the driver in autocommit mode for
        it (psycopg2 would otherwise send a ``BEGIN`` of its own first, and SQLAlchemy a ``COMMIT``:
        a logbook saved by a job's post was four round trips, BEGIN, two upserts and COMMIT).
        Durable as any commit of a plain connection (its session commits synchronously); the database
        connection goes back to the pool as it came, not in autocommit mode."""

        def autocommit(on: bool) -> None:
            conn = self._conn
            driver = None if conn is None or conn.invalidated else conn.connection.dbapi_connection
            if driver is not None:
                if on:
                    driver.rollback()  # (no round trip unless a transaction is open: none should be)
                driver.autocommit = on  # psycopg2: a client-side switch (no round trip)

        def together() -> T:
            autocommit(True)
            return fn()

        try:
            return self._own_transaction(together, ("BEGIN",), ("COMMIT",))
        finally:
            autocommit(False)
            self._release()

    def _own_transaction(
        self, fn: Callable[[], T], begin: Sequence[str], end: Sequence[str], sync: str | None = None
    ) -> T:
        """``fn`` between ``begin`` and ``end`` on the autocommit connection, retried as a whole; then
        the file ``sync`` (a SQLite WAL file) flushed to disk."""

        updates = self.backend.updates

        def attempt() -> T:
            conn = self._checkout()
            try:
                self._in_transaction = True
                # on the DB-API cursor, as the row updates are: SQLAlchemy's execute path costs more
                # than the statement (a few per flow transition); its listeners still see them. On
                # PostgreSQL the BEGIN goes in the first statement's message, and what fn left held
                # (the new rows' INSERT) in the COMMIT's: each message is a round trip
                for statement in begin:
                    updates.hold(conn, self._raw_cursor(conn), statement)
                out = fn()
                for statement in end:
                    updates.send(conn, self._raw_cursor(conn), statement)
                self._in_transaction = False
                if sync is not None:
                    sync_file(sync, self.backend.display_url)
            except BaseException:
                # the transaction is half done: drop the session (its server side rolls back) rather
                # than give the pool a connection in an unknown state
                with contextlib.suppress(sa_exc.SQLAlchemyError):
                    updates.drop_held(conn)
                self._release(invalidate=True)
                raise
            return out

        return self._retrying(attempt)

    # -- schema -------------------------------------------------------------------------------------

    def upgrade(self) -> None:
        from flowkit.persistence import migrations

        self._retrying(lambda: migrations.upgrade_engine(self._engine))
        self.backend.schema_checked = True

    def validate(self) -> None:
        if self.backend.schema_checked:
            return
        from flowkit.persistence import migrations

        found = self.run(lambda: migrations.current(self._checkout()))
        if found != migrations.head():
            where = "no flowkit schema" if found is None else f"schema revision {found!r}"
            raise SchemaError(
                f"{self.backend.display_url} has {where}; this flowkit needs revision "
                f"{migrations.head()!r}: run `flowkit db upgrade URL`"
            )
        self.backend.schema_checked = True

    # -- rows ---------------------------------------------------------------------------------------

    def select_rows(self, table: str, column: str | None = None, values: Collection[str] = ()) -> list[Row]:
        conn = self._checkout()
        query = select_statement(table, column)
        if column is None:
            return [dict(r._mapping) for r in conn.execute(query)]
        wanted = list(values)
        out: list[Row] = []
        for start in range(0, len(wanted), IN_CHUNK):
            chunk = wanted[start : start + IN_CHUNK]
            out.extend(dict(r._mapping) for r in conn.execute(query, {"values": chunk}))
        if len(wanted) > IN_CHUNK:  # chunks are ordered one by one; order the whole
            keys = [c.name for c in ORDER[table]]
            out.sort(key=lambda r: tuple(r[k] for k in keys))
        return out

    def have_rows(self, keys: Sequence[tuple[str, str]]) -> list[bool]:
        conn = self._writer()
        return self.backend.updates.have_rows(conn, self._raw_cursor(conn), keys)

    def upsert_rows(self, table: str, rows: Sequence[Row]) -> None:
        if not rows:
            return
        conn, updates = self._writer(), self.backend.updates
        # prepared multi-row statements on the DB-API cursor; on PostgreSQL one per call, a column's
        # values one array (see PreparedUpdates.upsert_columns): one round trip, no SQLAlchemy compile;
        # inside a unit of work, held for the next message (no result is read)
        updates.upsert(conn, self._raw_cursor(conn), table, rows, held=self._in_transaction)

    def upsert_columns(self, table: str, columns: Columns) -> None:
        by_column = list(columns.values())
        if not by_column or not by_column[0]:
            return
        conn, updates = self._writer(), self.backend.updates
        updates.upsert_columns(  # (held as upsert_rows' are)
            conn, self._raw_cursor(conn), table, tuple(columns), by_column, held=self._in_transaction
        )

    def _raw_cursor(self, conn: sa.Connection) -> Any:
        """The DB-API cursor of ``conn`` (the checked-out connection) the prepared statements run on."""
        cursor = self._cursor
        if cursor is None:
            cursor = self._cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        return cursor

    def write_row(self, table: str, uuid: str, values: Row, fence: int | None = None) -> bool:
        """The recorder's atom transition: on the kept autocommit connection, the prepared ``UPDATE``
        straight away (no unit-of-work closure around it); the first error is handled as ``run``
        handles one, and the write is retried as a unit of work like any other."""
        conn = self._conn
        if conn is None or not self._autocommit:
            return self.run(lambda: self.update_row(table, uuid, values, fence))
        try:
            return self.backend.updates.update(
                conn, self._cursor or self._raw_cursor(conn), table, uuid, values, fence
            )
        except sa_exc.SQLAlchemyError as exc:
            delays = self._recover(exc, None)

        def again() -> bool:
            self._checkout()
            return self.update_row(table, uuid, values, fence)

        return self._retrying(again, delays)

    def write_rows(self, rows: Sequence[WrittenRow], fence: int | None = None, durable: bool = False) -> bool:
        """On PostgreSQL, on the kept autocommit connection: one prepared statement for all the rows (one
        round trip, one commit; ``durable``, with the statement that makes its commit durable in the same
        message); retried as :meth:`write_row` is. SQLite (in process: its statements cost no round
        trip) runs them in one transaction on the DB-API cursor, as the base class does."""
        if self._in_transaction:  # inside one of this connection's units of work: part of it
            return self.update_in_order(rows, fence)
        conn, updates = self._conn, self.backend.updates
        if conn is None and self._autocommit:  # (given back since its last write: taken again)
            try:
                conn = self._checkout()
            except sa_exc.SQLAlchemyError:
                conn = None  # the general way waits and retries
        if conn is None or not self._autocommit:
            return super().write_rows(rows, fence, durable)
        if not updates.server_side:
            return self._write_rows_sqlite(conn, rows, fence, durable)
        prefix = self.backend.durable_prefix if durable else ""
        try:
            return updates.update_rows(conn, self._cursor or self._raw_cursor(conn), rows, fence, prefix)
        except sa_exc.SQLAlchemyError as exc:
            delays = self._recover(exc, None)

        def again() -> bool:
            conn = self._checkout()
            return updates.update_rows(conn, self._raw_cursor(conn), rows, fence, prefix)

        return self._retrying(again, delays)

    def write_durable(self, rows: Sequence[WrittenRow], fence: int | None, session: int) -> bool | None:
        """On PostgreSQL, on the kept connection still on ``session``: one message, as :meth:`write_rows`
        sends it, not retried (an error drops the connection, and with it the session: None)."""
        if self._in_transaction:  # inside one of this connection's units of work: part of it
            return self.update_in_order(rows, fence) if self.session == session else None
        conn, updates = self._conn, self.backend.updates
        if conn is None or not self._autocommit or not updates.server_side:
            return super().write_durable(rows, fence, session)
        if self.session != session:
            return None
        prefix = self.backend.durable_prefix
        try:
            return updates.update_rows(conn, self._cursor or self._raw_cursor(conn), rows, fence, prefix)
        except sa_exc.SQLAlchemyError as exc:
            self._recover(exc, None)  # (raises what is not worth retrying; else waited, connection dropped)
            return None

    def _write_rows_sqlite(
        self, conn: sa.Connection, rows: Sequence[WrittenRow], fence: int | None, durable: bool
    ) -> bool:
        """:meth:`write_rows` on SQLite: ``BEGIN IMMEDIATE``, the updates and ``COMMIT`` straight on the
        kept connection's cursor (run_together's unit of work, without its closures: this is every
        task's write in a serial flow). An error is handled as ``run`` handles one; then it is all
        made again the general way. ``durable``: the general way (a durable point is once per run)."""
        if durable:
            return super().write_rows(rows, fence, durable)
        updates = self.backend.updates
        cursor = self._cursor or self._raw_cursor(conn)
        try:
            self._in_transaction = True  # an error from here on drops the connection: see _release
            found = updates.update_together(conn, cursor, rows, fence)
            self._in_transaction = False
            return found
        except sa_exc.SQLAlchemyError as exc:
            delays = self._recover(exc, None)
        return self._retrying(lambda: super(SQLAlchemyConnection, self).write_rows(rows, fence), delays)

    def update_row(self, table: str, uuid: str, values: Row, fence: int | None = None) -> bool:
        # One statement; fenced, PostgreSQL re-checks the WHERE on the newest version of a row it waited
        # for (READ COMMITTED), so a fence raised meanwhile refuses this write; SQLite has one writer.
        conn = self._conn
        if conn is None:
            conn = self._checkout()
        cursor = self._cursor
        if cursor is None:
            cursor = self._raw_cursor(conn)
        return self.backend.updates.update(conn, cursor, table, uuid, values, fence)

    def raise_fence(self, flow_uuid: str, token: int) -> int | None:
        conn = self._checkout()
        raise_flow, raise_atoms, read = FENCE
        raised = conn.execute(raise_flow, {"b_uuid": flow_uuid, "b_token": token}).rowcount
        if raised == 1:  # the flow row is locked now: the atoms' fence changes with it
            conn.execute(raise_atoms, {"b_uuid": flow_uuid, "b_token": token})
            return token
        found = conn.execute(read, {"b_uuid": flow_uuid}).scalar()
        return None if found is None else int(found)

    def take_flow_detail(self, flow_uuid: str, token: int) -> tuple[int | None, FlowDetail | None]:
        conn = self._writer()  # (its BEGIN, held, goes in the take's message)
        if conn.dialect.name != "postgresql":
            return super().take_flow_detail(flow_uuid, token)
        fence, flow, atoms = take(self.backend.updates, conn, self._raw_cursor(conn), flow_uuid, token)
        if flow is None:  # refused, or no such flow detail
            return fence, None
        fd = self.codec.flow_from(flow)
        atoms.sort(key=atom_order)
        for row in atoms:
            fd.add(self.codec.atom_from(row))
        return token, fd

    def delete_row(self, table: str, uuid: str) -> bool:
        t = TABLES[table]
        return self._checkout().execute(sa.delete(t).where(t.c.uuid == uuid)).rowcount == 1

    def delete_all(self) -> None:
        conn = self._checkout()
        for name in (ATOMS, FLOWS, LOGBOOKS):
            conn.execute(sa.delete(TABLES[name]))
        conn.execute(sa.delete(events))
