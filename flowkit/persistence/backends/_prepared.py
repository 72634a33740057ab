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

On PostgreSQL a statement whose result nobody reads, in a transaction that goes on, can be *held*
(:meth:`PreparedUpdates.hold`) and sent in the same message as the next one: a unit of work's
``BEGIN`` with its first statement, the new rows' ``INSERT`` with the ``COMMIT``. Each message is a
round trip, which costs the client and the server more CPU than most of these statements (a
conductor's set-up of a flow was four: ``BEGIN``, the take, the ``INSERT``, ``COMMIT``; it is two).

Inserts go the same way (``upsert``: multi-row statements on SQLite, one array per column on
PostgreSQL). SQLAlchemy stays for everything else (schema, queries, transactions); the connection's
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
_HELD = "flowkit_held"  # key of the same: statements held for its next message (PreparedUpdates.hold)
_MISSING_STATEMENT = "26000"  # PostgreSQL: invalid_sql_statement_name (a prepared statement is gone)
_NAMES = itertools.count(1)
ROWS_PER_INSERT = 16
"""Rows per multi-row upsert statement (see PreparedUpdates.upsert): enough that a statement's own cost
is spread thin. Compiling one costs SQLite more per row than running it, once per connection and
size: with 64, a 100-task run on a fresh connection cost more than with executemany (callgrind: 8,
16, 64 rows: 314k, 312k, 399k instructions per task at N=100; 289k, 287k, 294k at N=1,000)."""
ROWS_PER_SERVER_INSERT = 8192
"""Rows per upsert on PostgreSQL, where each statement is a round trip and takes every row's value of a
column as one array (see PreparedUpdates.upsert_columns): any flow's rows in one statement, a huge one's
in messages of a bounded size."""
_SHAREABLE = (str, int)  # value types bound once for every row of an upsert that all have the same


def _on_conflict(columns: Sequence[str]) -> str:
    """An upsert's tail: a row there already (same uuid) takes the new values."""
    sets = ", ".join(f"{c} = excluded.{c}" for c in columns if c != "uuid")
    return f"ON CONFLICT (uuid) DO UPDATE SET {sets}"


def _joined(held: Sequence[tuple[str, Any]], sql: str, params: Any) -> tuple[str, Any]:
    """One message of the ``held`` statements then ``sql``: the texts joined by ``;``, the parameters
    in the same order (None when no part has any)."""
    statements = [*held, (sql, params)]
    text = "; ".join(s for s, _ in statements)
    if all(p is None for _, p in statements):
        return text, None
    assert params is not None or "%" not in sql, sql  # (the joined message is formatted whole)
    return text, [value for _, p in statements if p is not None for value in p]


def _chunk(left: int, most: int) -> int:
    """Rows in the next statement: ``most``, or the largest power of two up to ``left``."""
    if left >= most:
        return most
    return 1 << (left.bit_length() - 1)


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
    micro = value.microsecond
    # the microseconds' six digits from two tables of three: a third of "%s.%06d"'s cost
    return cached[1] + _MILLI_TEXT[micro // 1000] + _DIGITS3[micro % 1000]


_DIGITS3 = tuple(f"{k:03d}" for k in range(1000))
_MILLI_TEXT = tuple(f".{k:03d}" for k in range(1000))


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
        # SQLite's upserts by (table, columns, nulls, shared, rows); PostgreSQL's (prepared name, SQL) by
        # (table, columns, nulls, shared): see upsert_columns
        self._inserts: dict[tuple[Any, ...], str] = {}
        self._unnests: dict[tuple[Any, ...], tuple[str, str]] = {}
        self._steps: dict[str, dict[str, Callable[[Any], Any] | None]] = {}
        # update_rows' statements: (its prepared name, its SQL) by each row's (table, columns), fenced
        self._chains: dict[tuple[tuple[tuple[str, tuple[str, ...]], ...], bool], tuple[str, str]] = {}
        self._probes: dict[tuple[str, ...], tuple[str, str | None]] = {}  # have_rows': by tables

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

    def upsert(
        self, conn: sa.Connection, cursor: Any, table: str, rows: Sequence[dict[str, Any]], held: bool = False
    ) -> None:
        """Insert ``rows`` (all with the columns of the first), a row already there updated.

        On SQLite several rows go in multi-row ``INSERT ... VALUES (...), (...)`` statements of up to
        :data:`ROWS_PER_INSERT` rows, in which a value the same in every row (a new flow detail's
        atoms share their parent, kind, state, intention, counters and empty meta) is one parameter
        that each row names (``?1``), so only what varies (uuid, name, position) is bound per row:
        binding is most of the driver's work per row, and one statement steps once for its rows. Chunk
        sizes are powers of two, so a table has a few statement texts, each prepared once per
        connection (sqlite3 caches them).

        A column that is NULL in every row is a ``NULL`` in the statement's text rather than a
        parameter: sqlite3 binds a ``None`` through its adapter lookup (two failed attribute lookups,
        several times a string's cost), and a new atom detail's row is mostly NULLs.

        On PostgreSQL each varying column is one array parameter, ``INSERT ... SELECT ... FROM
        unnest($2::varchar[], $3::text[], ...)``: one prepared statement for any number of rows, so a
        flow's rows are one round trip (up to :data:`ROWS_PER_SERVER_INSERT`), where multi-row VALUES
        statements took one per power-of-two chunk (a 1,000-atom flow's in 7), and the server takes them
        faster too (1,000 rows: 12.5 ms against 19.5 ms in chunks of 256, measured here).
        """
        columns = tuple(rows[0])
        values_of = itemgetter(*columns)  # by name: rows may list their columns in another order
        if len(columns) > 1:
            by_column: list[Sequence[Any]] = list(zip(*map(values_of, rows), strict=True))
        else:
            by_column = [[values_of(row) for row in rows]]
        self.upsert_columns(conn, cursor, table, columns, by_column, held)

    def upsert_columns(
        self,
        conn: sa.Connection,
        cursor: Any,
        table: str,
        columns: Sequence[str],
        by_column: Sequence[Sequence[Any]],
        held: bool = False,
    ) -> None:
        """:meth:`upsert` of rows given column by column: ``by_column[k]`` holds every row's value of
        ``columns[k]`` (a new flow detail's atoms come so, without a dict per row). ``held``: on
        PostgreSQL, held for the next message (:meth:`hold`; inside a transaction that goes on)."""
        columns = tuple(columns)
        n = len(by_column[0])
        nulls: list[int] = []
        shared: list[int] = []
        varying: list[int] = []
        for k, values in enumerate(by_column):
            first = values[0]
            if first is None and values.count(None) == n:
                nulls.append(k)
            elif n > 1 and type(first) in _SHAREABLE and values.count(first) == n:
                shared.append(k)
            else:
                varying.append(k)
        steps = self._steps.get(table) or self._column_steps(table)

        def processed(k: int, values: Sequence[Any]) -> Sequence[Any]:
            step = steps[columns[k]]
            return values if step is None else list(map(step, values))

        head = [processed(k, by_column[k][:1])[0] for k in shared]
        body = [processed(k, by_column[k]) for k in varying]
        shape = (table, columns, tuple(nulls), tuple(shared))
        if self.server_side:  # (uuid varies in every call of more than one row: rows are keyed by it)
            name, sql = self._unnests.get(shape) or self._unnest(shape, varying)
            for at in range(0, n, ROWS_PER_SERVER_INSERT):  # prepared once per connection, as updates are
                arrays = [list(column[at : at + ROWS_PER_SERVER_INSERT]) for column in body]
                self.run_prepared(conn, cursor, name, sql, [*head, *arrays], held=held)
            return
        # bound parameters per statement stay under 999, the limit of SQLite before 3.32
        most = max(1, min(ROWS_PER_INSERT, (999 - len(head)) // max(1, len(varying))))
        at = 0
        while at < n:
            size = _chunk(n - at, most)
            sql = self._inserts.get((*shape, size)) or self._insert(shape, size, len(varying))
            params = head
            if body:  # (else every column is shared or NULL: rows that are all the same)
                chunk = zip(*(column[at : at + size] for column in body), strict=True)
                params = head + list(itertools.chain.from_iterable(chunk))
            self._send(conn, cursor, sql, params)
            at += size

    def _column_steps(self, table: str) -> dict[str, Callable[[Any], Any] | None]:
        """Each column's bind processor (see _processor), once per table."""
        t = TABLES[table]
        steps = self._steps[table] = {c.name: self._processor(c.type) for c in t.c}
        return steps

    def _insert(
        self, shape: tuple[str, tuple[str, ...], tuple[int, ...], tuple[int, ...]], size: int, per_row: int
    ) -> str:
        """SQLite's upsert of ``size`` rows of ``shape`` (table, columns, NULL ones, shared ones): see
        upsert. Numbered parameters (``?1``): a shared value is bound once and named in every row."""
        table, columns, nulls, shared = shape
        t = TABLES[table]
        named = {k: f"?{j}" for j, k in enumerate(shared, start=1)}
        rows = []
        for r in range(size):
            mark = itertools.count(len(shared) + 1 + r * per_row)
            marks = (
                "NULL" if k in nulls else named[k] if k in named else f"?{next(mark)}"
                for k in range(len(columns))
            )
            rows.append(f"({', '.join(marks)})")
        sql = f"INSERT INTO {t.name} ({', '.join(columns)}) VALUES {', '.join(rows)} {_on_conflict(columns)}"
        self._inserts[(*shape, size)] = sql
        return sql

    def _unnest(
        self, shape: tuple[str, tuple[str, ...], tuple[int, ...], tuple[int, ...]], varying: list[int]
    ) -> tuple[str, str]:
        """PostgreSQL's upsert of any number of rows of ``shape`` (see upsert_columns): the shared values
        first (``$1``...), then one array per varying column, each cast to its column's type (a
        parameter's type is not inferred from an ``INSERT ... SELECT``'s target). (prepared name, SQL)"""
        table, columns, nulls, shared = shape
        t = TABLES[table]

        def kind(k: int) -> str:
            return str(t.c[columns[k]].type.compile(dialect=self.dialect))

        arrays = [f"${j}::{kind(k)}[]" for j, k in enumerate(varying, start=len(shared) + 1)]
        named = {k: f"${j}::{kind(k)}" for j, k in enumerate(shared, start=1)}
        picked = {k: f"v.c{j}" for j, k in enumerate(varying)}
        values = ", ".join(  # (an untyped NULL in a SELECT list would be text)
            f"NULL::{kind(k)}" if k in nulls else named[k] if k in named else picked[k]
            for k in range(len(columns))
        )
        aliases = ", ".join(f"c{j}" for j in range(len(arrays)))
        sql = (
            f"INSERT INTO {t.name} ({', '.join(columns)}) SELECT {values} "
            f"FROM unnest({', '.join(arrays)}) AS v({aliases}) {_on_conflict(columns)}"
        )
        entry = self._unnests[shape] = f"flowkit_insert_{next(_NAMES)}", sql
        return entry

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
        shape, params = self._bound(table, uuid, values, fence)
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

    def _bound(
        self, table: str, uuid: str, values: dict[str, Any], fence: int | None
    ) -> tuple[_Shape, list[Any]]:
        """The statement shape of an update of ``values`` and its parameters, processed."""
        fenced = fence is not None
        shape = self._shapes.get((table, tuple(values), fenced)) or self._shape(table, tuple(values), fenced)
        params = list(values.values())
        for k, processor in shape.processors:
            params[k] = processor(params[k])
        params.append(uuid)
        if fenced:
            params.append(fence)
        return shape, params

    def update_together(
        self,
        conn: sa.Connection,
        cursor: Any,
        rows: Sequence[tuple[str, str, dict[str, Any]]],
        fence: int | None,
    ) -> bool:
        """SQLite: ``BEGIN IMMEDIATE``, the ``UPDATE`` of each of ``rows`` (``(table, uuid, values)``;
        each only if the row before it was found) and ``COMMIT`` on ``cursor``: one transaction. True
        when every row was found. With nobody listening to the statements (the usual case) they go to
        the cursor straight: this is every task's write in a serial flow."""
        if _listened(conn):
            self.send(conn, cursor, "BEGIN IMMEDIATE")
            found = all(self.update(conn, cursor, table, uuid, values, fence) for table, uuid, values in rows)
            self.send(conn, cursor, "COMMIT")
            return found
        execute, sql, params = cursor.execute, "BEGIN IMMEDIATE", None
        try:
            execute(sql)
            found = True
            for table, uuid, values in rows:
                shape, params = self._bound(table, uuid, values, fence)
                sql = shape.execute
                execute(sql, params)
                if cursor.rowcount != 1:
                    found = False
                    break
            sql, params = "COMMIT", None
            execute(sql)
        except self._error as exc:
            raise self._wrap(conn, cursor, sql, params, exc) from exc
        return found

    def have_rows(self, conn: sa.Connection, cursor: Any, keys: Sequence[tuple[str, str]]) -> list[bool]:
        """Whether each ``(table, uuid)`` row of ``keys`` exists: one ``SELECT EXISTS (...), ...`` (a
        primary-key probe per row), on PostgreSQL prepared once per connection. Through SQLAlchemy's
        query path the two probes of a new flow's set-up cost a SQLite run more than its whole
        statement work (about 0.1 ms each)."""
        tables = tuple(table for table, _uuid in keys)
        found = self._probes.get(tables) or self._probe(tables)
        sql, name = found
        params = [uuid for _table, uuid in keys]
        if name is None:
            self._send(conn, cursor, sql, params)
        else:
            self.run_prepared(conn, cursor, name, sql, params)
        return [bool(v) for v in cursor.fetchone()]

    def _probe(self, tables: tuple[str, ...]) -> tuple[str, str | None]:
        """:meth:`have_rows`' statement for rows of ``tables`` (and its prepared name on PostgreSQL)."""
        marks = (f"${k}" for k in itertools.count(1)) if self.server_side else itertools.repeat("?")
        probes = ", ".join(
            f"EXISTS (SELECT 1 FROM {TABLES[table].name} WHERE uuid = {mark})"
            for table, mark in zip(tables, marks, strict=False)
        )
        name = f"flowkit_probe_{next(_NAMES)}" if self.server_side else None
        found = self._probes[tables] = f"SELECT {probes}", name
        return found

    def update_rows(
        self,
        conn: sa.Connection,
        cursor: Any,
        rows: Sequence[tuple[str, str, dict[str, Any]]],
        fence: int | None,
        prefix: str = "",
    ) -> bool:
        """PostgreSQL: the ``UPDATE`` of each of ``rows`` (``(table, uuid, values)``) in ONE prepared
        statement, each row's a data-modifying ``WITH`` part that runs only if the part before it found
        its row (``WITH w1 AS (UPDATE ... RETURNING 1), w2 AS (UPDATE ... AND (SELECT count(*) FROM w1)
        = 1 RETURNING 1) UPDATE ... AND (SELECT count(*) FROM w2) = 1``): one round trip and, on an
        autocommit connection, one commit. ``prefix``: statements sent before it in the same message
        (one transaction: ``SET LOCAL``). True when every row was found (the last part's row count).
        """
        key = (tuple((table, tuple(values)) for table, _uuid, values in rows), fence is not None)
        name, statement = self._chains.get(key) or self._chain(key)
        params: list[Any] = []
        for table, uuid, values in rows:  # each row's parameters, as its own UPDATE binds them
            params += self._bound(table, uuid, values, fence)[1]
        self.run_prepared(conn, cursor, name, statement, params, prefix)
        found: bool = cursor.rowcount == 1
        return found

    def _chain(self, key: tuple[tuple[tuple[str, tuple[str, ...]], ...], bool]) -> tuple[str, str]:
        """The statement of :meth:`update_rows` for ``key`` (each row's table and columns, fenced)."""
        assert self.server_side, "SQLite runs several rows' updates in one transaction instead"
        shapes, fenced = key
        mark = itertools.count(1)
        parts = []
        for k, (table, columns) in enumerate(shapes):
            sets = ", ".join(f"{c} = ${next(mark)}" for c in columns)
            where = f"uuid = ${next(mark)}" + (f" AND fence = ${next(mark)}" if fenced else "")
            if k:
                where += f" AND (SELECT count(*) FROM w{k}) = 1"
            parts.append(f"UPDATE {TABLES[table].name} SET {sets} WHERE {where}")
        last = parts.pop()
        if parts:
            last = (
                "WITH " + ", ".join(f"w{k} AS ({p} RETURNING 1)" for k, p in enumerate(parts, 1)) + f" {last}"
            )
        chain = self._chains[key] = f"flowkit_update_{next(_NAMES)}", last
        return chain

    def run_prepared(
        self,
        conn: sa.Connection,
        cursor: Any,
        name: str,
        statement: str,
        params: Sequence[Any],
        prefix: str = "",
        held: bool = False,
    ) -> None:
        """PostgreSQL: ``EXECUTE name (params)`` on ``cursor``, its ``PREPARE name AS statement`` in the
        same message the first time on this connection (as :meth:`update` prepares its shapes);
        ``prefix``: statements sent before the ``EXECUTE`` in that message (one transaction);
        ``held``: not sent now but held for the next message (:meth:`hold`)."""
        sql = f"{prefix}EXECUTE {name} ({', '.join(['%s'] * len(params))})"
        prepared: set[str] = conn.info.setdefault(_PREPARED, set())
        if name not in prepared:
            prepared.add(name)  # (a failed EXECUTE does not undo a PREPARE)
            sql = f"PREPARE {name} AS {statement}; {sql}"
        if held:
            self.hold(conn, cursor, sql, list(params))
        else:
            self._send(conn, cursor, sql, params)

    def send(self, conn: sa.Connection, cursor: Any, sql: str) -> None:
        """A statement without parameters (``BEGIN``, ``COMMIT``) through :meth:`_send`."""
        self._send(conn, cursor, sql, None)

    def hold(self, conn: sa.Connection, cursor: Any, sql: str, params: Sequence[Any] | None = None) -> None:
        """Send ``sql`` (with ``params``) at the start of the next message on ``conn`` instead of now,
        on PostgreSQL; on SQLite (in process: no round trip to save, one statement per call) now, on
        ``cursor``. For a statement inside a transaction whose result is not read and after which the
        transaction goes on: it runs where it would have, one round trip later. What is held goes with
        the next statement sent here; a statement sent otherwise (through SQLAlchemy) must be preceded
        by :meth:`flush_held`, and a transaction given up by :meth:`drop_held`."""
        if not self.server_side:
            self._send(conn, cursor, sql, params)
            return
        # (a message is formatted as a whole when any part has parameters: a literal % would break it)
        assert params is not None or "%" not in sql, sql
        conn.info.setdefault(_HELD, []).append((sql, params))

    def flush_held(self, conn: sa.Connection, cursor: Any) -> None:
        """Send what is held on ``conn``, if anything, as a message of its own."""
        if not self.server_side:
            return
        held = conn.info.get(_HELD)
        if held:
            sql, params = held.pop()  # its last statement, the others ahead of it in the same message
            self._send(conn, cursor, sql, params)

    def drop_held(self, conn: sa.Connection) -> None:
        """Forget what is held on ``conn`` (its transaction is given up), and that a statement whose
        ``PREPARE`` was held with it is prepared there: it never reached the server, and a connection
        kept for other work would otherwise ``EXECUTE`` it unprepared."""
        held = conn.info.pop(_HELD, None)
        prepared = conn.info.get(_PREPARED)
        if held and prepared:
            for sql, _ in held:
                if sql.startswith("PREPARE "):
                    prepared.discard(sql.split(None, 2)[1])

    def _send(self, conn: sa.Connection, cursor: Any, sql: str, params: Any) -> None:
        """Execute on the driver; the connection's listeners see it, errors come out as SQLAlchemy's.
        ``params`` None: a statement without parameters (the driver does no formatting of it). On
        PostgreSQL, what is held on ``conn`` (:meth:`hold`) goes first in the same message."""
        if self.server_side:
            held = conn.info.get(_HELD)
            if held:
                sql, params = _joined(held, sql, params)
                held.clear()
        # SQLAlchemy's own test before its event points (two attribute reads), then whether anything
        # listens to these two: flowkit's SQLite engines always have engine events (their "begin"
        # hook), and calling an empty listener collection costs a dozen Python calls per statement
        events = _listened(conn) if conn._has_events or conn.engine._has_events else False
        if events:
            conn.dispatch.before_cursor_execute(conn, cursor, sql, params, None, False)
        try:
            if params is None:
                cursor.execute(sql)
            else:
                cursor.execute(sql, params)
        except self._error as exc:
            raise self._wrap(conn, cursor, sql, params, exc) from exc
        if events:
            conn.dispatch.after_cursor_execute(conn, cursor, sql, params, None, False)

    def _wrap(self, conn: sa.Connection, cursor: Any, sql: str, params: Any, exc: Exception) -> Exception:
        """The driver's error as SQLAlchemy's (what the backend's retry policy reads)."""
        lost = self.dialect.is_disconnect(exc, conn.connection.dbapi_connection, cursor)  # type: ignore[arg-type]
        if getattr(exc, "pgcode", None) == _MISSING_STATEMENT:
            conn.info.pop(_PREPARED, None)
            lost = True
        return sa_exc.DBAPIError.instance(
            sql, params, exc, self._error, connection_invalidated=lost, dialect=self.dialect
        )
