"""The PostgreSQL board's two per-job statements (claim the next job, consume it), each one round trip.

Why: through SQLAlchemy's transaction a claim was three round trips (``BEGIN``, the ``UPDATE``,
``COMMIT``) and a relaxed consume four (``SET LOCAL`` too), each statement parsed and planned anew
by the server, and Core's execute path around the driver cost the conductor about as much CPU as the
server spent. Here each is a named server-side statement (``PREPARE``-d on a connection the first
time it is used there, in the same round trip as its first ``EXECUTE``), sent on the pooled
connection's DB-API cursor in autocommit mode: one message, which PostgreSQL runs as one implicit
transaction. A relaxed statement goes with ``SET LOCAL synchronous_commit TO off`` in the same
message (a multi-statement message is a transaction block, so the ``SET LOCAL`` holds until its
commit). The claim's commit stays durable: its fencing token must never be handed out twice.

The SQL is the board's own statement (``_sql_claims``) compiled for PostgreSQL with ``$n``
parameters, its constants (board name, states) bound at every ``EXECUTE``; the table's columns need
no bind or result processing (integers, floats, text). The connection's ``before_cursor_execute`` /
``after_cursor_execute`` listeners see each message; a driver error comes out as SQLAlchemy's (a lost
connection invalidated), so the board maps it as it maps its other statements' errors. A prepared
statement the server no longer has (``DISCARD ALL`` behind a pooler) is prepared again, once.
"""

from __future__ import annotations

import contextlib
import enum
import itertools
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import psycopg2 as pg_psycopg2

from flowkit.sql.engines import PING_AFTER, RELAXED_TRANSACTION

_PREPARED = "flowkit_board_prepared"  # key of a pooled connection's info: the names prepared on it
_MISSING_STATEMENT = "26000"  # invalid_sql_statement_name: the server lost a prepared statement
_NAMES = itertools.count(1)
_DOLLAR = pg_psycopg2.dialect(paramstyle="numeric_dollar")  # type: ignore[no-untyped-call]


class Prepared:
    """One statement of the board as a named PostgreSQL statement; ``variable`` names the parameters
    given at each run, every other bound value is the statement's own constant."""

    def __init__(self, stmt: sa.ClauseElement, variable: Sequence[str], *, relaxed: bool = False) -> None:
        compiled = stmt.compile(dialect=_DOLLAR)
        assert isinstance(compiled, sa.sql.compiler.SQLCompiler)
        expanded = compiled.construct_expanded_state(dict.fromkeys(variable))
        names = expanded.positiontup or []
        self.name = f"flowkit_board_{next(_NAMES)}"
        # per position: the name of a variable parameter, or None and a constant as the driver sends it
        self._slots: list[tuple[str | None, Any]] = [
            (n, None) if n in variable else (None, _plain(expanded.parameters[n])) for n in names
        ]
        marks = ", ".join(["%s"] * len(names))
        run = f"EXECUTE {self.name}({marks})" if names else f"EXECUTE {self.name}"
        self.execute = f"{RELAXED_TRANSACTION}; {run}" if relaxed else run
        text = expanded.statement.replace("%", "%%")  # the driver formats the whole message
        self.prepare = f"PREPARE {self.name} AS {text}; "

    def params(self, values: Mapping[str, Any]) -> list[Any]:
        """The ``EXECUTE``'s parameters: ``values`` of the variable ones, the constants between."""
        return [constant if name is None else values[name] for name, constant in self._slots]

    def run(self, conn: sa.Connection, cursor: Any, values: Mapping[str, Any]) -> Any:
        """Run on ``cursor`` (of ``conn``'s DB-API connection, in autocommit mode); the cursor holds the
        result (``rowcount``, rows of a ``RETURNING``)."""
        params = self.params(values)
        prepared: set[str] = conn.info.setdefault(_PREPARED, set())
        for attempt in (1, 2):
            sql = self.execute
            if self.name not in prepared:
                prepared.add(self.name)  # sent from now on: a failed EXECUTE does not undo a PREPARE
                sql = self.prepare + sql
            try:
                _send(conn, cursor, sql, params)
                return cursor
            except sa_exc.DBAPIError as exc:
                if attempt == 2 or getattr(exc.orig, "pgcode", None) != _MISSING_STATEMENT:
                    raise
                prepared.discard(self.name)  # nothing ran: prepare it again and run it once more
        raise AssertionError("unreachable")


class Row(NamedTuple):
    """A job row as the board reads it (the columns ``RETURNING`` gave, by name)."""

    id: int
    board: str
    uuid: str
    name: str
    state: str
    priority: int
    owner: str | None
    lease_token: str | None
    lease_expires: float | None
    attempts: int
    last_reason: str | None
    created_on: float
    updated_on: float
    record: str
    claim_epoch: int
    cancel_reason: str | None
    wake_at: float | None
    awaiting: str | None


def first_row(cursor: Any) -> Row | None:
    """The first row ``cursor`` returned, by column name (the statement returns the whole row)."""
    found = cursor.fetchone()
    if found is None:
        return None
    names = [d[0] for d in cursor.description]
    if names == list(Row._fields):
        return Row._make(found)
    return Row(**dict(zip(names, found, strict=True)))


class Kept:
    """The board's connection for its prepared statements, kept from one to the next.

    Checking a connection out of the pool and giving it back cost the conductor more CPU than the
    statement's own round trip, twice per job. The connection stays in autocommit mode while kept;
    a caller that finds it in use (another thread's statement) takes one from the pool, and the
    spare goes back there. A kept connection that sat idle ``PING_AFTER`` seconds is pinged first,
    as the pool pings one (``flowkit.sql.engines``); one that failed a statement is given back (or
    dropped, when the connection was lost), never kept.
    """

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._kept: tuple[sa.Connection, Any, float] | None = None
        self._closed = False

    @contextlib.contextmanager
    def cursor(self) -> Iterator[tuple[sa.Connection, Any]]:
        """A connection and a cursor of its DB-API connection in autocommit mode, for one statement."""
        taken = self._take()
        if taken is None:
            conn = self._engine.connect()
            try:
                dbapi: Any = conn.connection.dbapi_connection
                dbapi.autocommit = True  # psycopg2: a client-side switch (no round trip)
                taken = conn, dbapi.cursor()
            except BaseException:
                conn.close()
                raise
        try:
            yield taken
        except BaseException:
            _give_back(taken[0])
            raise
        with self._lock:
            spare: tuple[sa.Connection, Any, float] | None = (*taken, 0.0)
            if not self._closed:  # (after close(), a statement's connection goes back to the pool)
                spare, self._kept = self._kept, (*taken, time.monotonic())
        if spare is not None:
            _give_back(spare[0])

    def close(self) -> None:
        """Give the kept connection back to the pool (before the engine is disposed)."""
        with self._lock:
            kept, self._kept, self._closed = self._kept, None, True
        if kept is not None:
            _give_back(kept[0])

    def _take(self) -> tuple[sa.Connection, Any] | None:
        with self._lock:
            kept, self._kept = self._kept, None
        if kept is None:
            return None
        conn, cursor, since = kept
        if time.monotonic() - since >= PING_AFTER:
            try:
                alive = conn.dialect.do_ping(conn.connection.dbapi_connection)  # type: ignore[arg-type]
            except Exception:
                alive = False
            if not alive:
                conn.invalidate()
                _give_back(conn)
                return None
        return conn, cursor


def _give_back(conn: sa.Connection) -> None:
    """Return ``conn`` to the pool as it came from there (not in autocommit: SQLAlchemy's
    transactions expect that); an invalidated one is dropped by the pool."""
    with contextlib.suppress(Exception):  # a connection that broke is invalidated anyway
        conn.connection.dbapi_connection.autocommit = False  # type: ignore[union-attr]
    with contextlib.suppress(Exception):
        conn.close()


def _send(conn: sa.Connection, cursor: Any, sql: str, params: Sequence[Any]) -> None:
    """Execute on the driver; the connection's listeners see it, errors come out as SQLAlchemy's."""
    events = conn._has_events or conn.engine._has_events
    if events:
        conn.dispatch.before_cursor_execute(conn, cursor, sql, params, None, False)
    dialect = conn.dialect
    try:
        cursor.execute(sql, params)
    except dialect.loaded_dbapi.Error as exc:
        lost = dialect.is_disconnect(exc, conn.connection.dbapi_connection, cursor)
        if lost:
            conn.invalidate(exc)
        raise sa_exc.DBAPIError.instance(
            sql, params, exc, dialect.loaded_dbapi.Error, connection_invalidated=lost, dialect=dialect
        ) from exc
    if events:
        conn.dispatch.after_cursor_execute(conn, cursor, sql, params, None, False)


def _plain(value: object) -> object:
    """A constant as the driver sends it: a ``str`` enum (the job states) as its value."""
    return value.value if isinstance(value, enum.Enum) else value
