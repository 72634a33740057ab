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
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from flowkit.persistence.backends._tables import TABLES, UtcDateTime

_PREPARED = "flowkit_prepared"  # key of a DB-API connection's pool info: the names prepared on it
_MISSING_STATEMENT = "26000"  # PostgreSQL: invalid_sql_statement_name (a prepared statement is gone)
_NAMES = itertools.count(1)


def _sqlite_utc(value: datetime | None) -> str | None:
    """A timestamp as SQLAlchemy stores it in SQLite (UTC, naive, always with microseconds), in two C
    calls instead of its processors' chain: ``2026-01-02 01:04:05.000000``."""
    if value is None:
        return None
    if value.tzinfo is None:  # taken as UTC already, as UtcDateTime does
        return value.isoformat(" ", "microseconds")
    return value.astimezone(UTC).isoformat(" ", "microseconds")[:26]  # without its "+00:00"


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

    def _shape(self, table: str, columns: tuple[str, ...], fenced: bool) -> _Shape:
        t, dialect = TABLES[table], self.dialect
        where = ["uuid", "fence"] if fenced else ["uuid"]
        processors = []
        for k, column in enumerate(columns):
            kind = t.c[column].type
            if isinstance(kind, UtcDateTime) and not self.server_side:
                processor: Callable[[Any], Any] | None = _sqlite_utc
            else:
                processor = kind.dialect_impl(dialect).bind_processor(dialect)
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
        dispatch = conn.dispatch
        events = bool(dispatch.before_cursor_execute or dispatch.after_cursor_execute)
        if events:
            dispatch.before_cursor_execute(conn, cursor, sql, params, None, False)
        try:
            cursor.execute(sql, params)
        except self._error as exc:
            raise self._wrap(conn, cursor, sql, params, exc) from exc
        if events:
            dispatch.after_cursor_execute(conn, cursor, sql, params, None, False)
        found: bool = cursor.rowcount == 1
        return found

    def _wrap(
        self, conn: sa.Connection, cursor: Any, sql: str, params: list[Any], exc: Exception
    ) -> Exception:
        """The driver's error as SQLAlchemy's (what the backend's retry policy reads)."""
        lost = self.dialect.is_disconnect(exc, conn.connection.dbapi_connection, cursor)  # type: ignore[arg-type]
        if getattr(exc, "pgcode", None) == _MISSING_STATEMENT:
            conn.info.pop(_PREPARED, None)
            lost = True
        return sa_exc.DBAPIError.instance(
            sql, params, exc, self._error, connection_invalidated=lost, dialect=self.dialect
        )
