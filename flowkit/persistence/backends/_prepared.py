"""Row updates through the DB-API cursor of the pooled connection, on statements prepared once.

Why: an atom transition is one single-row ``UPDATE``, and SQLAlchemy Core's execute path around the
driver call (compiled-cache lookup, parameter construction, result set-up, event dispatch) cost about as
much as the database's own work per statement. The statement here is the same one (``UPDATE ... SET
<columns> WHERE uuid = ? [AND fence = ?]``, one round trip), built once per *shape* (table, columns set,
fenced or not) with the SQL text and the bind processors of the columns' SQLAlchemy types (so
timestamps are stored exactly as SQLAlchemy stores them), and executed on the raw cursor:

- SQLite: ``sqlite3`` keeps the prepared statement of each SQL text in its per-connection cache, so
  the same text is compiled once per connection.
- PostgreSQL (psycopg2, which does not prepare server-side by itself): each shape is a named server-side
  statement, ``PREPARE``-d on a connection the first time it is used there, in the same round trip as
  its first ``EXECUTE`` (the names prepared on a DB-API connection are kept in its pool ``info``, which
  SQLAlchemy clears when the connection is replaced). A prepared statement outlives a rolled-back
  transaction, so it is counted as prepared once sent. If the server lost it anyway (``DISCARD ALL``
  behind a pooler), the error is reported as a lost connection: the unit of work is retried on a new one.

SQLAlchemy stays for everything else (schema, queries, inserts, transactions); the connection's
``before_cursor_execute`` / ``after_cursor_execute`` listeners still see every statement sent here, and
driver errors come out as SQLAlchemy's exceptions, so the retry policy treats them as before.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from flowkit.persistence.backends._tables import TABLES, UtcDateTime

_PREPARED = "flowkit_prepared"  # key of a DB-API connection's pool info: the names prepared on it
_MISSING_STATEMENT = "26000"  # PostgreSQL: invalid_sql_statement_name (a prepared statement is gone)
_NAMES = itertools.count(1)


# The last whole second _sqlite_utc formatted, as one (fields, text) pair replaced whole (threads share it)
_second: list[tuple[tuple[int, ...], str]] = [((), "")]


def _sqlite_utc(value: datetime | None) -> str | None:
    """A timestamp as SQLAlchemy stores it in SQLite (UTC, naive, always with microseconds):
    ``2026-01-02 01:04:05.000000``.

    Every atom transition stores one, and ``isoformat`` formats each field through C ``printf`` (a few
    microseconds): the text of the last whole second is kept, so most calls only add the microseconds.
    """
    if value is None:
        return None
    zone = value.tzinfo  # None: taken as UTC already, as UtcDateTime does
    if zone is not UTC and zone is not None:  # (every timestamp flowkit makes is in UTC: utcnow)
        value = value.astimezone(UTC)
    key = (value.second, value.minute, value.hour, value.day, value.month, value.year)
    cached = _second[0]
    if key != cached[0]:
        cached = _second[0] = (key, value.replace(microsecond=0, tzinfo=None).isoformat(" "))
    return "%s.%06d" % (cached[1], value.microsecond)  # noqa: UP031 (half an f-string's cost)


def _listened(conn: sa.Connection) -> bool:
    """Whether a ``before_cursor_execute`` or ``after_cursor_execute`` listener would hear a statement
    of ``conn``: of the connection itself (then SQLAlchemy's joined dispatch decides), of its engine,
    or of every engine (an engine's collection holds the class-level ones as ``parent_listeners``).

    The engine's case reads the two sequences of each collection instead of its ``__bool__``: two
    Python calls fewer per statement, on the path of every atom transition.
    """
    if conn._has_events:
        own = conn.dispatch
        return bool(own.before_cursor_execute or own.after_cursor_execute)
    shared = conn.engine.dispatch
    before, after = shared.before_cursor_execute, shared.after_cursor_execute
    return bool(before.listeners or before.parent_listeners or after.listeners or after.parent_listeners)


class _Shape:
    """One statement shape: its SQL (and, on PostgreSQL, its PREPARE) and the columns' bind processors."""

    __slots__ = ("execute", "name", "prepare", "processors")

    def __init__(self, execute: str, prepare: str | None, name: str | None, processors: Any) -> None:
        self.execute = execute
        self.prepare = prepare
        self.name = name
        self.processors: tuple[tuple[int, Callable[[Any], Any]], ...] = processors


class PreparedUpdates:
    """The row updates of one SQLAlchemy dialect (``sqlite`` or ``postgresql``); see the module docstring."""

    def __init__(self, dialect: sa.Dialect) -> None:
        self.dialect = dialect
        self.server_side = dialect.name == "postgresql"
        self._error: type[Exception] = dialect.loaded_dbapi.Error
        self._shapes: dict[tuple[str, tuple[str, ...], bool], _Shape] = {}
        self._upserts: dict[tuple[str, tuple[str, ...], tuple[int, ...]], tuple[str, Any, Any]] = {}

    def _shape(self, table: str, columns: tuple[str, ...], fenced: bool) -> _Shape:
        t = TABLES[table]
        where = ["uuid", "fence"] if fenced else ["uuid"]
        processors = []
        for k, column in enumerate(columns):
            processor = self._processor(t.c[column].type)
            if processor is not None:
                processors.append((k, processor))
        if self.server_side:
            marks = [f"${k}" for k in range(1, len(columns) + len(where) + 1)]
        else:
            marks = ["?"] * (len(columns) + len(where))
        sets = ", ".join(f"{c} = {m}" for c, m in zip(columns, marks, strict=False))
        tests = " AND ".join(f"{c} = {m}" for c, m in zip(where, marks[len(columns) :], strict=True))
        update = f"UPDATE {t.name} SET {sets} WHERE {tests}"
        if not self.server_side:
            shape = _Shape(update, None, None, tuple(processors))
        else:
            name = f"flowkit_update_{next(_NAMES)}"
            args = ", ".join(["%s"] * len(marks))
            shape = _Shape(
                f"EXECUTE {name} ({args})", f"PREPARE {name} AS {update}; ", name, tuple(processors)
            )
        self._shapes[(table, columns, fenced)] = shape
        return shape

    def _processor(self, kind: sa.types.TypeEngine[Any]) -> Callable[[Any], Any] | None:
        """What a value of a column of type ``kind`` goes through before the driver gets it."""
        if isinstance(kind, UtcDateTime) and not self.server_side:
            return _sqlite_utc
        processor: Callable[[Any], Any] | None = kind.dialect_impl(self.dialect).bind_processor(self.dialect)
        return processor

    def upsert(self, conn: sa.Connection, cursor: Any, table: str, rows: Sequence[dict[str, Any]]) -> None:
        """SQLite only: insert ``rows`` (all with the columns of the first), a row already there updated,
        with one ``executemany`` (sqlite3 prepares the statement once for all the rows).

        A column that is NULL in every row is a ``NULL`` in the statement's text rather than a
        parameter: sqlite3 binds a ``None`` through its adapter lookup (two failed attribute lookups,
        several times a string's cost), and a new atom detail's row is mostly NULLs.
        """
        assert not self.server_side, "PostgreSQL batches rows in multi-row statements (SQLAlchemy's)"
        columns = tuple(rows[0])
        values_of = itemgetter(*columns)  # by name: rows may list their columns in another order
        if len(columns) > 1:
            by_column: list[Sequence[Any]] = list(zip(*map(values_of, rows), strict=True))
        else:
            by_column = [[values_of(row) for row in rows]]
        n = len(rows)
        nulls = tuple(k for k, values in enumerate(by_column) if values.count(None) == n)
        key = (table, columns, nulls)
        found = self._upserts.get(key)
        if found is None:
            t = TABLES[table]
            sets = ", ".join(f"{c} = excluded.{c}" for c in columns if c != "uuid")
            marks = ", ".join("NULL" if k in nulls else "?" for k in range(len(columns)))
            sql = (
                f"INSERT INTO {t.name} ({', '.join(columns)}) VALUES ({marks}) "
                f"ON CONFLICT (uuid) DO UPDATE SET {sets}"
            )
            sent = tuple(k for k in range(len(columns)) if k not in nulls)
            steps = tuple(self._processor(t.c[columns[k]].type) for k in sent)
            found = self._upserts[key] = (sql, sent, steps)
        sql, sent, processors = found
        params = list(
            zip(
                *(
                    by_column[k] if processor is None else list(map(processor, by_column[k]))
                    for k, processor in zip(sent, processors, strict=True)
                ),
                strict=True,
            )
        )
        self._send(conn, cursor, sql, params, many=True)

    def update(
        self,
        conn: sa.Connection,
        cursor: Any,
        table: str,
        uuid: str,
        values: dict[str, Any],
        fence: int | None,
    ) -> bool:
        """``UPDATE table SET values WHERE uuid = :uuid [AND fence = :fence]`` on ``cursor`` (a cursor of
        ``conn``'s DB-API connection); True if it found its row."""
        columns = tuple(values)
        fenced = fence is not None
        shape = self._shapes.get((table, columns, fenced)) or self._shape(table, columns, fenced)
        params = list(values.values())
        for k, processor in shape.processors:
            params[k] = processor(params[k])
        params.append(uuid)
        if fenced:
            params.append(fence)
        sql = shape.execute
        if shape.name is not None:
            prepared: set[str] = conn.info.setdefault(_PREPARED, set())
            if shape.name not in prepared:
                prepared.add(shape.name)  # sent from now on: a failed EXECUTE does not undo a PREPARE
                assert shape.prepare is not None
                sql = shape.prepare + sql
        self._send(conn, cursor, sql, params)
        found: bool = cursor.rowcount == 1
        return found

    def _send(self, conn: sa.Connection, cursor: Any, sql: str, params: Any, many: bool = False) -> None:
        """Execute on the driver; the connection's listeners see it, errors come out as SQLAlchemy's."""
        # SQLAlchemy's own test before its event points (two attribute reads), then whether anything
        # listens to these two: flowkit's SQLite engines always have engine events (their "begin"
        # hook), and calling an empty listener collection costs a dozen Python calls per statement
        events = _listened(conn) if conn._has_events or conn.engine._has_events else False
        if events:
            conn.dispatch.before_cursor_execute(conn, cursor, sql, params, None, many)
        try:
            if many:
                cursor.executemany(sql, params)
            else:
                cursor.execute(sql, params)
        except self._error as exc:
            raise self._wrap(conn, cursor, sql, params, exc) from exc
        if events:
            conn.dispatch.after_cursor_execute(conn, cursor, sql, params, None, many)

    def _wrap(self, conn: sa.Connection, cursor: Any, sql: str, params: Any, exc: Exception) -> Exception:
        """The driver's error as SQLAlchemy's (what the backend's retry policy reads)."""
        lost = self.dialect.is_disconnect(exc, conn.connection.dbapi_connection, cursor)  # type: ignore[arg-type]
        if getattr(exc, "pgcode", None) == _MISSING_STATEMENT:
            conn.info.pop(_PREPARED, None)
            lost = True
        return sa_exc.DBAPIError.instance(
            sql, params, exc, self._error, connection_invalidated=lost, dialect=self.dialect
        )
