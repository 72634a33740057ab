"""SQLAlchemy engines: the one factory, and one engine per database per process.

Every flowkit user of a database (persistence backends, SQL job boards, the migrations) gets its engine
from :func:`acquire`, so:

- SQLite is set up the same for all of them: WAL mode for a file (readers never block the writer,
  across processes too), ``synchronous=FULL`` (a commit is on disk when it returns; persistence's
  recorder relaxes its own connection, see ``persistence/backends/sqlalchemy.py``), a 30 s busy
  timeout, foreign keys on, and real transactions: flowkit emits ``BEGIN`` itself (``BEGIN IMMEDIATE``
  under the :data:`WRITE_LOCK` execution option) instead of the sqlite3 module guessing.
- PostgreSQL connections are checked before use when they sat in the pool for :data:`PING_AFTER`
  seconds or more (one ``SELECT 1``; a dead one is replaced, as ``pool_pre_ping`` would), and give up
  connecting after 10 s unless the URL says otherwise. A connection given back moments ago is not
  pinged: a conductor checks one out several times per job, and a ping on each was a round trip
  (and a sixth of the client's CPU) per checkout; a server that died in that moment fails the first
  statement instead, which persistence retries and the board reports as an outage, as for a server
  that dies just after a ping.
- Users of the same database share one engine and its pool (a conductor's board and its flows'
  persistence on one URL hold one pool, not two); the engine is disposed when the last one releases it.
  A named in-process database (the board's ``memory://NAME``) lives as long as the process.

A database that has a single connection (SQLite in memory) comes with a lock: its users hold it around
each transaction so that theirs do not interleave on that connection.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry

from flowkit.sql.urls import Database

WRITE_LOCK = "flowkit_write_lock"
"""Execution option: on SQLite, begin the connection's transactions with ``BEGIN IMMEDIATE``."""
BUSY_TIMEOUT_MS = 30000
POOL_SIZE = 5
# A running flow keeps one connection (its recorder's) until it ends, so a process running many flows
# at once needs many: connections past POOL_SIZE are opened as needed and closed when given back.
OVERFLOW = 50
PING_AFTER = 1.0
"""Seconds a PostgreSQL connection may sit in the pool before its next checkout pings it."""
RELAXED_TRANSACTION = "SET LOCAL synchronous_commit TO off"
"""PostgreSQL: the current transaction's commit waits for no disk flush (a later durable commit, of any
session, flushes the WAL past it). For writes whose loss in a server crash is harmless or detected: a
fenced flow's set-up (persistence) and a job's consume (the SQL board)."""
SQLITE_PRAGMAS = ("synchronous=FULL", f"busy_timeout={BUSY_TIMEOUT_MS}", "foreign_keys=ON")
"""Set on every SQLite connection (after ``journal_mode=WAL`` for a file)."""


@dataclass
class _Shared:
    engine: sa.Engine
    lock: threading.RLock | None
    users: int = 0
    pinned: bool = False  # a named in-process database: never disposed


@dataclass(eq=False)
class EngineLease:
    """One user's hold on a (possibly shared) engine; :meth:`release` it when done."""

    engine: sa.Engine
    database: Database
    lock: AbstractContextManager[object] = field(default_factory=contextlib.nullcontext)
    _released: bool = False

    @property
    def released(self) -> bool:
        return self._released

    def release(self) -> None:
        """Give the engine back (idempotent); the last user's release disposes it."""
        if self._released:
            return
        self._released = True
        _give_back(self)


_shared: dict[str, _Shared] = {}
_shared_lock = threading.Lock()


def acquire(database: Database) -> EngineLease:
    """An engine for ``database``: the one this process already has for it, else a new one."""
    key = database.key
    if key is None:  # unnamed in-memory SQLite: every engine is its own database
        return EngineLease(create(database), database, threading.RLock())
    with _shared_lock:
        shared = _shared.get(key)
        if shared is None:
            single = database.in_memory
            shared = _Shared(create(database), threading.RLock() if single else None, pinned=single)
            _shared[key] = shared
        shared.users += 1
        lock: AbstractContextManager[object] = shared.lock or contextlib.nullcontext()
        return EngineLease(shared.engine, database, lock)


def _give_back(lease: EngineLease) -> None:
    key = lease.database.key
    if key is None:
        lease.engine.dispose()
        return
    with _shared_lock:
        shared = _shared.get(key)
        if shared is None or shared.engine is not lease.engine:
            return
        shared.users -= 1
        if shared.users > 0 or shared.pinned:
            return
        del _shared[key]
    shared.engine.dispose()


def create(database: Database) -> sa.Engine:
    """A new engine for ``database`` with flowkit's settings (see the module docstring).

    Prefer :func:`acquire`, which shares the engine; this is for a caller that must own one.
    """
    if database.dialect == "sqlite":
        return _sqlite(database)
    url = database.url
    connect_args = {} if "connect_timeout" in url.query else {"connect_timeout": 10}
    engine = sa.create_engine(url, pool_size=POOL_SIZE, max_overflow=OVERFLOW, connect_args=connect_args)
    event.listen(engine, "checkin", _checked_in)
    event.listen(engine, "checkout", _ping_if_idle(engine.dialect))
    return engine


def _checked_in(_dbapi_connection: DBAPIConnection | None, record: ConnectionPoolEntry) -> None:
    record.info["idle_since"] = time.monotonic()


def _ping_if_idle(dialect: sa.Dialect) -> Callable[[DBAPIConnection, ConnectionPoolEntry, object], None]:
    """``pool_pre_ping`` for connections that sat in the pool a while (see the module docstring)."""

    def checkout(dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry, _proxy: object) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < PING_AFTER:
            return  # just opened, or given back moments ago
        try:
            alive = dialect.do_ping(dbapi_connection)  # as pool_pre_ping: leaves no transaction open
        except Exception as exc:
            raise sa.exc.DisconnectionError(f"connection failed its ping: {exc}") from exc
        if not alive:  # the pool drops this connection and checks out another (or a new one)
            raise sa.exc.DisconnectionError("connection failed its ping")

    return checkout


def _sqlite(database: Database) -> sa.Engine:
    in_memory = database.in_memory
    options: dict[str, Any] = {"pool_size": POOL_SIZE, "max_overflow": OVERFLOW}
    if in_memory:  # one shared connection, or every connection would see its own empty database
        options = {"poolclass": sa.pool.StaticPool, "connect_args": {"check_same_thread": False}}
    engine = sa.create_engine(database.url, **options)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None  # flowkit emits BEGIN itself (see _on_begin)
        cursor = dbapi_connection.cursor()
        if not in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        options = conn.get_execution_options()
        if options.get("isolation_level") != "AUTOCOMMIT":
            # IMMEDIATE takes the write lock up front (waiting up to the busy timeout), where a
            # read-then-write transaction could only fail when another writer got there first
            conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get(WRITE_LOCK) else "BEGIN")

    return engine
