"""``sqlite:///path`` and ``postgresql://...``: SQLAlchemy Core on one pooled engine per backend.

Choices, and why:

- The URL is parsed (:class:`SQLOptions`, through :mod:`flowkit.sql.urls`) and the engine made
  (:mod:`flowkit.sql.engines`) by the same code as the SQL job board's: the same schemes, the same
  SQLite settings (WAL, ``synchronous=FULL``, busy timeout, foreign keys, flowkit's own ``BEGIN``), and
  one engine for both when they use the same database.
- The engine's recorder writes each atom transition as ONE ``UPDATE`` on an autocommit connection that
  it keeps for the run: one round trip and one commit per transition. With ``durability="flow"`` (the
  default) that connection's commits are flushed to disk with the next flow transition instead of
  each on its own (see :class:`SQLAlchemyBackend`), which is what makes a transition cost tens of
  microseconds instead of an fsync. The flow transition is a durable transaction on the same
  connection (:meth:`SQLAlchemyConnection.run_durable`): a flush covers its own session's commits.
  On a SQLite file in WAL mode that transaction commits like the others and then flushes the WAL file
  itself, as a ``synchronous=FULL`` commit would: a ``PRAGMA synchronous`` switch around it would
  expire the connection's prepared statements (each compiled again at its next use). For the same
  reason a backend keeps its relaxed connections when a recorder gives them back (see
  :meth:`SQLAlchemyBackend.park`): the next run's recorder takes one as it is (SQLite: at
  ``synchronous=NORMAL`` with its statements still prepared; PostgreSQL: with ``synchronous_commit``
  off), instead of a pooled connection it would relax (and, giving it back, make durable again) with a
  statement each time.
- Connection errors (``OperationalError``, a dropped connection) are retried with bounded exponential
  backoff (:class:`~flowkit.persistence.backoff.Backoff`); a whole unit of work is retried, never half
  of one. Past the bound the caller gets a :class:`~flowkit.exceptions.StorageError`.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import logging
import os
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import Any, ClassVar, TypeVar

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from flowkit.exceptions import SchemaError, StorageError
from flowkit.persistence.backends._prepared import PreparedUpdates
from flowkit.persistence.backends._tables import ORDER, TABLES, events
from flowkit.persistence.backends.base import Backend, Connection
from flowkit.persistence.backoff import Backoff
from flowkit.persistence.models import FlowDetail, LogBook, utcnow
from flowkit.persistence.rows import ATOMS, FLOWS, LOGBOOKS, ORDER_BY, Row, Serializer
from flowkit.sql import engines, urls
from flowkit.sql.urls import Database

T = TypeVar("T")
LOG = logging.getLogger(__name__)
_IN_CHUNK = 500  # values per IN (...) list: far below every database's bound-parameter limit


# The row primitives' statements, built once with bound parameters: SQLAlchemy builds, and keys for its
# compiled cache, a statement constructed anew at every call, which cost a conductor more CPU per job
# (restoring a flow: the fence, the flow and atom reads, the atoms' upsert) than the database spent.
@functools.cache
def _select(table: str, column: str | None) -> sa.Select[Any]:
    """All rows of ``table`` in order, or those whose ``column`` is in the parameter ``values``."""
    t = TABLES[table]
    query = sa.select(t).order_by(*ORDER[table])
    if column is None:
        return query
    return query.where(t.c[column].in_(sa.bindparam("values", expanding=True)))


@functools.cache
def _upsert(table: str, columns: tuple[str, ...]) -> sa.Executable:
    """PostgreSQL's insert-or-update of rows with ``columns`` (keyed by ``uuid``)."""
    from sqlalchemy.dialects.postgresql import insert as postgresql_insert

    t = TABLES[table]
    stmt = postgresql_insert(t)
    updated = {c: stmt.excluded[c] for c in columns if c != "uuid"}
    upsert = stmt.on_conflict_do_update(index_elements=[t.c.uuid], set_=updated)
    # RETURNING makes SQLAlchemy send multi-row statements ("insertmanyvalues") instead of a round
    # trip (and a plan) per row, which it does not do for ON CONFLICT without it
    return upsert.returning(t.c.uuid)


def _fence_statements() -> tuple[sa.Update, sa.Update, sa.Select[Any]]:
    """raise_fence's statements: the flow row's fence raised to ``token``, its atoms', and the read."""
    flows, atoms = TABLES[FLOWS], TABLES[ATOMS]
    # (named apart from the columns: SQLAlchemy keeps bound parameters named like a column for its SET)
    uuid, token = sa.bindparam("b_uuid", type_=sa.String), sa.bindparam("b_token", type_=sa.BigInteger)
    return (
        sa.update(flows).where(flows.c.uuid == uuid, flows.c.fence <= token).values(fence=token),
        sa.update(atoms).where(atoms.c.parent_uuid == uuid).values(fence=token),
        sa.select(flows.c.fence).where(flows.c.uuid == uuid),
    )


_FENCE = _fence_statements()
# take_flow_detail's on PostgreSQL: raise_fence's updates returning the rows they raised, so a
# conductor's restore reads the flow and its atoms with the statements that fence them (two, not four)
_TAKE = (
    _FENCE[0].returning(*TABLES[FLOWS].c),
    _FENCE[1].returning(*TABLES[ATOMS].c),
)
assert ORDER_BY[ATOMS] == ("position", "name")  # _atom_order's, in Python


def _atom_order(row: Row) -> tuple[bool, int, str]:
    """An atom row's place in the atoms' order (``ORDER BY position, name``; PostgreSQL: NULLs last)."""
    position = row["position"]
    return position is None, position or 0, row["name"]


# Operational errors that waiting will not fix: report them at once instead of retrying.
_FATAL = (
    "no such table",
    "no such column",
    "does not exist",
    "authentication failed",
    "unable to open database file",
    "readonly database",
    "permission denied",
)
DURABILITY = ("flow", "atom")


@dataclasses.dataclass(frozen=True)
class SQLOptions:
    """What a persistence URL says: the database, and this backend's options from its query."""

    database: Database
    durability: str = "flow"
    retry_timeout: float | None = None
    """Seconds to retry a database that went away (None: :class:`Backoff`'s default)."""

    QUERY: ClassVar[tuple[str, ...]] = ("durability", "retry_timeout")

    @classmethod
    def from_url(cls, url: str) -> SQLOptions:
        """Parse ``url``; a URL flowkit cannot use raises :class:`StorageError` naming it."""
        database, query = urls.parse(url, cls.QUERY, StorageError, "persistence")
        bad = urls.complaint(url, StorageError, "persistence")
        durability = query.get("durability", "flow")
        if durability not in DURABILITY:
            raise bad(f"durability must be one of {', '.join(DURABILITY)}, not {durability!r}")
        timeout = urls.number(query, "retry_timeout", float, bad, zero=True)
        return cls(database, durability, timeout)


# (relax, restore): what an autocommit connection runs at checkout and before it goes back to the pool
_RELAXED = {
    "sqlite": ("PRAGMA synchronous=NORMAL", "PRAGMA synchronous=FULL"),
    "postgresql": ("SET synchronous_commit TO off", "RESET synchronous_commit"),
}
_SESSIONS = itertools.count(1)  # Connection.session: every database connection opened gets the next one
PARKED_MAX = 2
"""Relaxed connections a backend keeps between runs (see :meth:`SQLAlchemyBackend.park`): one per
engine that runs at a time is what makes the next run's set-up free; more would sit idle."""


def _durable_transaction(dialect: str, relaxed: bool) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(open, close): the statements around one durable transaction on an autocommit connection.

    PostgreSQL: ``SET LOCAL`` turns synchronous commit on for that transaction only; its commit flushes
    the WAL up to its own record, which lies after every commit this session made before. SQLite: a
    ``synchronous=FULL`` commit syncs the WAL file, with the frames of every commit before it.
    """
    if dialect == "postgresql":
        return ("BEGIN; SET LOCAL synchronous_commit TO on" if relaxed else "BEGIN",), ("COMMIT",)
    relax, restore = _RELAXED["sqlite"]
    if relaxed:
        return (restore, "BEGIN IMMEDIATE"), ("COMMIT", relax)
    return ("BEGIN IMMEDIATE",), ("COMMIT",)


class SQLAlchemyBackend(Backend):
    """A SQLite file or a PostgreSQL database; one pooled engine shared by all its connections.

    ``backoff`` bounds the retrying of connection errors (URL: ``?retry_timeout=SECONDS``).
    ``durability`` (URL: ``?durability=atom``) says when a recorded atom transition is on disk:

    - ``"flow"`` (default): an atom transition is committed before the engine acts on it, so a killed
      engine loses nothing; it is flushed to disk with the next flow transition, which is written with
      a durable commit on the same connection (SQLite ``synchronous=FULL``, PostgreSQL
      ``synchronous_commit=on``): so everything is on disk when ``run()`` returns or the flow
      suspends. A database server crash (PostgreSQL, at most ~0.6 s of commits) loses the latest atom
      transitions, but the engine's recorder, reconnected, writes them again durably (it notices the
      new :attr:`~flowkit.persistence.backends.base.Connection.session`). Only a power cut of the
      engine's machine as well (SQLite, or both) loses them for good, never anything older: those
      atoms run again on resume, which the at-least-once rule already allows, under the same
      idempotency key.
    - ``"atom"``: every atom transition is flushed to disk before the engine acts on it (an fsync per
      transition: several times slower per task).
    """

    def __init__(
        self,
        url: str,
        serializer: Serializer | None = None,
        *,
        backoff: Backoff | None = None,
        durability: str | None = None,
    ) -> None:
        super().__init__(url, serializer)
        options = SQLOptions.from_url(url)
        if durability is not None:  # the argument wins over the URL's query
            if durability not in DURABILITY:
                raise StorageError(
                    f"persistence URL {options.database.display!r}: durability must be one of "
                    f"{', '.join(DURABILITY)}, not {durability!r}"
                )
            options = dataclasses.replace(options, durability=durability)
        self.options = options
        self.durability = options.durability
        self.sa_url = options.database.url
        timeout = options.retry_timeout
        self.backoff = backoff or (Backoff(timeout=timeout) if timeout is not None else Backoff())
        self._lease = engines.acquire(options.database)
        self.engine = self._lease.engine
        self.relaxed = _RELAXED.get(self.engine.dialect.name) if self.durability == "flow" else None
        self.durable_transaction = _durable_transaction(self.engine.dialect.name, self.relaxed is not None)
        # run_setup's (relax, restore) around its transaction: a SQLite commit at synchronous=NORMAL is
        # lost only with the machine, and the engine with it
        self.relaxed_setup = self.relaxed if self.engine.dialect.name == "sqlite" else None
        # there the recorder's relaxed connection is kept between runs (park): its set-up runs on it
        self.setup_on_writer = self.relaxed_setup is not None
        self.updates = PreparedUpdates(self.engine.dialect)
        """Every row update (an atom transition is one): prepared, on the DB-API cursor (see _prepared)."""
        self.schema_checked = False
        self._parked: list[tuple[int, float, sa.Connection]] = []  # (pid, parked at, connection): see park
        self._wal: str | None = None  # wal_file's answer, once _wal_known
        self._wal_known = False

    def wal_file(self, conn: sa.Connection) -> str | None:
        """The SQLite database's write-ahead log file (``conn``'s database's), or None when it has none
        (not in WAL mode, in memory): asked once.

        Why: a durable point on the recorder's relaxed connection commits at ``synchronous=NORMAL``
        and then flushes this file itself, instead of switching the connection to ``FULL`` and back
        around the commit: every ``PRAGMA synchronous`` expires the connection's prepared statements
        (each statement it runs next is compiled again: ~30 per run, ~1M instructions).
        """
        if not self._wal_known:
            driver = conn.connection.dbapi_connection
            assert driver is not None
            mode = str(driver.execute("PRAGMA journal_mode").fetchone()[0]).lower()
            files = [row[2] for row in driver.execute("PRAGMA database_list") if row[1] == "main"]
            path = files[0] if files else ""
            self._wal = f"{path}-wal" if mode == "wal" and path else None
            self._wal_known = True
        return self._wal

    def park(self, conn: sa.Connection) -> bool:
        """Keep ``conn``, a relaxed connection a recorder is done with, for the next recorder
        (:meth:`unpark`); False when enough are kept already (then the caller gives it back).

        Why: the pool's other users expect durable commits, so a relaxed connection given back to the
        pool must first be made durable again, and the next recorder's relaxed again. On SQLite each
        ``PRAGMA synchronous`` expires every prepared statement of the connection (each run compiled
        its set-up and update statements again); on PostgreSQL the two ``SET`` statements are two
        round trips per flow, paid on every job by a conductor running one-task jobs back to back. A
        kept connection is never handed to anything but a relaxed recorder's connection, so no durable
        commit ever runs on it.
        """
        if len(self._parked) >= PARKED_MAX or self._lease.released:
            return False
        self._parked.append((os.getpid(), time.monotonic(), conn))
        return True

    def unpark(self) -> sa.Connection | None:
        """A connection :meth:`park` kept (relaxed, autocommit), or None. One inherited from the parent
        of a forked process is left alone: that process's connection, not this one's. A PostgreSQL one
        kept for the pool's ping interval or longer goes back to the pool, durable again (its next
        checkout pings it: the server may have dropped it meanwhile)."""
        pid, now = os.getpid(), time.monotonic()
        while self._parked:
            try:
                owner, since, conn = self._parked.pop()
            except IndexError:  # another thread took the last one
                return None
            if owner != pid:
                continue
            if conn.dialect.name == "postgresql" and now - since >= engines.PING_AFTER:
                self._give_back(conn)
                continue
            return conn
        return None

    def _give_back(self, conn: sa.Connection) -> None:
        """A kept relaxed connection back to the pool, durable again (dropped if that fails)."""
        try:
            if self.relaxed is not None:
                conn.exec_driver_sql(self.relaxed[1])  # the pool's other users expect durability
            conn.close()
        except sa_exc.SQLAlchemyError:
            try:
                conn.invalidate()
                conn.close()
            except sa_exc.SQLAlchemyError:  # a dead connection may fail to close; the pool drops it
                pass

    @property
    def display_url(self) -> str:
        return self.options.database.display

    def get_connection(self, autocommit: bool = False) -> SQLAlchemyConnection:
        if self._lease.released:  # used again after close(), as a disposed engine allows: hold it again
            self._lease = engines.acquire(self.options.database)
            self.engine = self._lease.engine
        return SQLAlchemyConnection(self, autocommit)

    def close(self) -> None:
        """Release the engine: disposed unless a board or another backend on the database shares it;
        the connections :meth:`park` kept are made durable again and given back to its pool first."""
        parked, self._parked = self._parked, []
        pid = os.getpid()
        for owner, _, conn in parked:
            if owner == pid:
                self._give_back(conn)
        self._lease.release()

    def save_logbook_in(self, conn: sa.Connection, book: LogBook) -> bool:
        """Save ``book`` as :meth:`Connection.save_logbook` does, inside the caller's transaction on
        ``conn``, a connection of this backend's PostgreSQL engine (False, nothing done, otherwise).

        For the SQL job board on the same database: a job and its logbook posted in one transaction,
        one commit (a disk flush each) instead of two.
        """
        if conn.engine is not self.engine or conn.dialect.name != "postgresql":
            return False
        book.updated_at = utcnow()
        codec = self.codec
        rows = {
            LOGBOOKS: [codec.logbook_row(book)],
            FLOWS: [codec.flow_row(fd) for fd in book],
            ATOMS: [codec.atom_row(ad) for fd in book for ad in fd],
        }
        for table, found in rows.items():
            if found:
                conn.execute(_upsert(table, tuple(found[0])), found).close()
        return True


_FLUSH = getattr(os, "fdatasync", os.fsync)  # (what SQLite syncs with; macOS has no fdatasync)


def _sync_file(path: str, url: str) -> None:
    """Flush ``path`` (a SQLite WAL file) to disk, as a ``synchronous=FULL`` commit does after writing
    its frames (fsync is per file: it covers what every connection wrote to it)."""
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            _FLUSH(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise StorageError(f"{url}: cannot flush its write-ahead log {path} to disk: {exc}") from exc


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, sa_exc.DisconnectionError):
        return True
    if not isinstance(exc, sa_exc.DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
        text = str(exc.orig).lower()
        return not any(marker in text for marker in _FATAL)
    return False


def _translate(exc: sa_exc.SQLAlchemyError, url: str) -> StorageError:
    text = str(getattr(exc, "orig", None) or exc).strip()
    if "no such table" in text or getattr(getattr(exc, "orig", None), "pgcode", None) == "42P01":
        return SchemaError(f"{url} has no flowkit schema (run `flowkit db upgrade URL`): {text}")
    if isinstance(exc, sa_exc.IntegrityError):
        return StorageError(f"{url} refused the write (a missing parent or a duplicate name?): {text}")
    return StorageError(f"{url}: {type(exc).__name__}: {text}")


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
        if self._conn is None:
            if self._parks:
                parked = self.backend.unpark()
                if parked is not None:
                    self.session = next(_SESSIONS)  # (kept writes never span runs: a new one is safe)
                    self._conn = parked
                    return parked
            conn = self._engine.connect()
            self.session = next(_SESSIONS)
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
        retry = _retryable(exc)
        self._release(invalidate=retry)
        if not retry:
            raise _translate(exc, self.backend.display_url) from exc
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
        ``synchronous_commit`` off (``SET LOCAL``: this transaction only); the flow's first transition,
        a durable commit on another session, flushes the WAL up to its own record, past this one. Why:
        a conductor's set-up is on the path from claim to first task, and each durable commit there
        is a disk flush (several ms on a busy disk). Elsewhere the transaction is durable."""
        postgresql = self.backend.relaxed is not None and self.backend.relaxed_setup is None
        if fenced and postgresql and not self._autocommit:
            return self.run(lambda: (self._checkout().exec_driver_sql(engines.RELAXED_TRANSACTION), fn())[1])
        pragmas = self.backend.relaxed_setup
        if self._autocommit:
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
            return self.run(fn)
        sqlite = self.backend.engine.dialect.name == "sqlite"
        return self._own_transaction(fn, ("BEGIN IMMEDIATE" if sqlite else "BEGIN",), ("COMMIT",))

    def _own_transaction(
        self, fn: Callable[[], T], begin: Sequence[str], end: Sequence[str], sync: str | None = None
    ) -> T:
        """``fn`` between ``begin`` and ``end`` on the autocommit connection, retried as a whole; then
        the file ``sync`` (a SQLite WAL file) flushed to disk."""

        def attempt() -> T:
            conn = self._checkout()
            try:
                self._in_transaction = True
                # on the DB-API cursor, as the row updates are: SQLAlchemy's execute path costs more
                # than the statement (a few per flow transition); its listeners still see them
                send = self.backend.updates.send
                for statement in begin:
                    send(conn, self._raw_cursor(conn), statement)
                out = fn()
                for statement in end:
                    send(conn, self._raw_cursor(conn), statement)
                self._in_transaction = False
                if sync is not None:
                    _sync_file(sync, self.backend.display_url)
            except BaseException:
                # the transaction is half done: drop the session (its server side rolls back) rather
                # than give the pool a connection in an unknown state
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
        query = _select(table, column)
        if column is None:
            return [dict(r._mapping) for r in conn.execute(query)]
        wanted = list(values)
        out: list[Row] = []
        for start in range(0, len(wanted), _IN_CHUNK):
            chunk = wanted[start : start + _IN_CHUNK]
            out.extend(dict(r._mapping) for r in conn.execute(query, {"values": chunk}))
        if len(wanted) > _IN_CHUNK:  # chunks are ordered one by one; order the whole
            keys = [c.name for c in ORDER[table]]
            out.sort(key=lambda r: tuple(r[k] for k in keys))
        return out

    def upsert_rows(self, table: str, rows: Sequence[Row]) -> None:
        if not rows:
            return
        conn = self._checkout()
        if conn.dialect.name != "postgresql":  # SQLite is in process: one prepared executemany
            self.backend.updates.upsert(conn, self._raw_cursor(conn), table, rows)
            return
        conn.execute(_upsert(table, tuple(rows[0])), list(rows)).close()

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
        raise_flow, raise_atoms, read = _FENCE
        raised = conn.execute(raise_flow, {"b_uuid": flow_uuid, "b_token": token}).rowcount
        if raised == 1:  # the flow row is locked now: the atoms' fence changes with it
            conn.execute(raise_atoms, {"b_uuid": flow_uuid, "b_token": token})
            return token
        found = conn.execute(read, {"b_uuid": flow_uuid}).scalar()
        return None if found is None else int(found)

    def take_flow_detail(self, flow_uuid: str, token: int) -> tuple[int | None, FlowDetail | None]:
        conn = self._checkout()
        if conn.dialect.name != "postgresql":
            return super().take_flow_detail(flow_uuid, token)
        params = {"b_uuid": flow_uuid, "b_token": token}
        flow = conn.execute(_TAKE[0], params).mappings().first()
        if flow is None:  # refused, or no such flow detail
            found = conn.execute(_FENCE[2], params).scalar()
            return None if found is None else int(found), None
        fd = self.codec.flow_from(dict(flow))
        atoms = [dict(row) for row in conn.execute(_TAKE[1], params).mappings()]
        atoms.sort(key=_atom_order)
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
