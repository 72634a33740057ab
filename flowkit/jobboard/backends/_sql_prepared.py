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
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import psycopg2 as pg_psycopg2

from flowkit.sql.engines import RELAXED_TRANSACTION

_PREPARED = "flowkit_board_prepared"  # key of a pooled connection's info: the names prepared on it
_MISSING_STATEMENT = "26000"  # invalid_sql_statement_name: the server lost a prepared statement
_NAMES = itertools.count(1)
_DOLLAR = pg_psycopg2.dialect(paramstyle="numeric_dollar")


class Prepared:
    """One statement of the board as a named PostgreSQL statement; ``variable`` names the parameters
    given at each run, every other bound value is the statement's own constant."""

    def __init__(self, stmt: sa.Executable, variable: Sequence[str], *, relaxed: bool = False) -> None:
        compiled = stmt.compile(dialect=_DOLLAR)
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


@contextlib.contextmanager
def autocommit(engine: sa.Engine) -> Iterator[tuple[sa.Connection, Any]]:
    """A pooled connection and a cursor of its DB-API connection in autocommit mode, given back to
    the pool as it came (not in autocommit: SQLAlchemy's transactions expect that)."""
    with engine.connect() as conn:
        dbapi: Any = conn.connection.dbapi_connection
        dbapi.autocommit = True  # psycopg2: a client-side switch (no round trip) outside a transaction
        try:
            with dbapi.cursor() as cursor:
                yield conn, cursor
        finally:
            with contextlib.suppress(Exception):  # a connection that broke is invalidated anyway
                dbapi.autocommit = False


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

