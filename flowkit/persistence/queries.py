"""Flows across every logbook: filtered, newest first, one page at a time; a flow by uuid prefix.

What an operator's listing needs (``flowkit flows list``, ``GET /api/v1/flows``, the console) and the
logbook-shaped connection API does not give: a view over *all* flow details, however many there are.

Paging is by keyset, never ``OFFSET``: a page is "the ``limit`` flows older than the last one shown",
ordered by ``(created_at, uuid)`` descending. On SQL backends that is one range scan of the index
``ix_flowkit_flowdetails_created`` (or ``..._state_created`` with a state filter; migration 0006), so
page 500 costs what page 1 costs, and a flow saved meanwhile never shifts a page or repeats a row. The
cursor is opaque text (the last row's ``created_at`` and ``uuid``). Backends without SQL (memory://,
dir://) are filtered in Python, which is fine at their sizes.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from flowkit.exceptions import FlowkitError, NotFound
from flowkit.persistence.backends._tables import UtcDateTime, atomdetails, flowdetails, logbooks
from flowkit.persistence.backends.base import Backend
from flowkit.persistence.models import FlowDetail
from flowkit.persistence.rows import ATOMS, FLOWS, LOGBOOKS, Row
from flowkit.states import FlowState

if TYPE_CHECKING:
    from flowkit.persistence.backends.sqlalchemy import SQLAlchemyBackend

__all__ = [
    "AmbiguousPrefix",
    "BadQuery",
    "FlowFilter",
    "FlowPage",
    "FlowSummary",
    "atom_marks",
    "find_flow",
    "list_flows",
    "listing_statement",
]

MAX_LIMIT = 1000
_PREFIX_SHOWN = 5  # matches named in an ambiguous-prefix error


class BadQuery(FlowkitError, ValueError):
    """A listing's filter, limit or cursor cannot be used; the message says which and why."""


class AmbiguousPrefix(FlowkitError, LookupError):
    """A uuid prefix matches more than one flow; the message names some of them."""


@dataclass(frozen=True)
class FlowFilter:
    """Which flows a listing shows: all of them by default.

    ``state`` is a flow state's name; ``name`` matches a substring of the flow's name, case-insensitive;
    ``since`` keeps flows created at or after that (aware) moment.
    """

    state: str | None = None
    name: str | None = None
    since: datetime | None = None

    def __post_init__(self) -> None:
        if self.state is not None and self.state not in FlowState.__members__:
            known = ", ".join(FlowState.__members__)
            raise BadQuery(f"unknown flow state {self.state!r}: one of {known}")
        if self.since is not None and self.since.tzinfo is None:
            raise BadQuery(f"since={self.since.isoformat()} has no time zone: give one (or Z for UTC)")


@dataclass(frozen=True)
class FlowSummary:
    """One line of a listing: what identifies a flow and where it stands, without its atoms."""

    uuid: str
    name: str
    state: str
    logbook_uuid: str | None
    logbook_name: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class FlowPage:
    """One page of a listing; ``next_cursor`` gets the next one (None: this was the last)."""

    flows: list[FlowSummary]
    next_cursor: str | None


def encode_cursor(created_at: datetime, uuid: str) -> str:
    """The cursor that continues after the flow (``created_at``, ``uuid``)."""
    text = f"{created_at.astimezone(UTC).isoformat()}|{uuid}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """``(created_at, uuid)`` of a cursor; :class:`BadQuery` when it is not one this module made."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        moment, uuid = text.split("|", 1)
        when = datetime.fromisoformat(moment)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise BadQuery(f"cursor {cursor!r} is not one a flow listing gave out") from exc
    if when.tzinfo is None or not uuid:
        raise BadQuery(f"cursor {cursor!r} is not one a flow listing gave out")
    return when, uuid


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_LIMIT:
        raise BadQuery(f"limit must be between 1 and {MAX_LIMIT}, not {limit}")


def listing_statement(
    flt: FlowFilter, limit: int, cursor: str | None = None, dialect: str = "postgresql"
) -> sa.Select[Any]:
    """The SQL of one page (``limit + 1`` rows: the extra one says whether another page follows)."""
    f, b = flowdetails, logbooks
    stmt = (
        sa.select(f.c.uuid, f.c.name, f.c.state, f.c.parent_uuid, b.c.name.label("logbook_name"))
        .add_columns(f.c.created_at, f.c.updated_at)
        .select_from(f.outerjoin(b, b.c.uuid == f.c.parent_uuid))
        .order_by(f.c.created_at.desc(), f.c.uuid.desc())
        .limit(limit + 1)
    )
    if flt.state is not None:
        stmt = stmt.where(f.c.state == flt.state)
    if flt.since is not None:
        stmt = stmt.where(f.c.created_at >= flt.since)
    if flt.name:
        stmt = stmt.where(sa.func.lower(f.c.name).contains(flt.name.lower(), autoescape=True))
    if cursor is not None:
        when, uuid = decode_cursor(cursor)
        # a row-value comparison on the index's columns, which each database scans as a range of it:
        # PostgreSQL wants all of them (the state first, as in ix_flowkit_flowdetails_state_created),
        # SQLite the state as an equality beside the row value (measured with EXPLAIN in the tests)
        keys: list[sa.ColumnElement[Any]] = [f.c.created_at, f.c.uuid]
        values: list[Any] = [when, uuid]
        if flt.state is not None and dialect == "postgresql":
            keys, values = [f.c.state, *keys], [flt.state, *values]
        stmt = stmt.where(sa.tuple_(*keys) < sa.tuple_(*values))
    return stmt


def _page(rows: list[FlowSummary], limit: int) -> FlowPage:
    if len(rows) <= limit:
        return FlowPage(rows, None)
    last = rows[limit - 1]
    return FlowPage(rows[:limit], encode_cursor(last.created_at, last.uuid))


def _sql(backend: Backend) -> SQLAlchemyBackend | None:
    from flowkit.persistence.backends.sqlalchemy import SQLAlchemyBackend

    return backend if isinstance(backend, SQLAlchemyBackend) else None


def _read(backend: SQLAlchemyBackend, *statements: sa.Executable) -> list[list[sa.Row[Any]]]:
    conn = backend.get_connection()
    try:
        return conn.read(*statements)
    finally:
        conn.close()


def list_flows(
    backend: Backend, flt: FlowFilter | None = None, *, limit: int = 50, cursor: str | None = None
) -> FlowPage:
    """One page of the flows ``flt`` keeps, newest first; pass ``next_cursor`` back for the next."""
    flt = flt or FlowFilter()
    _check_limit(limit)
    sql = _sql(backend)
    if sql is None:
        return _page(_list_in_memory(backend, flt, limit, cursor), limit)
    (found,) = _read(sql, listing_statement(flt, limit, cursor, sql.engine.dialect.name))
    utc, dialect = UtcDateTime(), sql.engine.dialect
    rows = [
        FlowSummary(
            r.uuid,
            r.name,
            r.state,
            r.parent_uuid,
            r.logbook_name,
            _aware(utc.process_result_value(r.created_at, dialect)),
            _aware(utc.process_result_value(r.updated_at, dialect)),
        )
        for r in found
    ]
    return _page(rows, limit)


def _aware(moment: datetime | None) -> datetime:
    assert moment is not None, "created_at and updated_at are NOT NULL"
    return moment


def _tables(backend: Backend) -> Mapping[str, Mapping[str, Row]]:
    tables = getattr(backend, "tables", None)
    if not isinstance(tables, Mapping):
        raise BadQuery(f"{backend.display_url}: this backend cannot list flows")
    return tables


def _list_in_memory(backend: Backend, flt: FlowFilter, limit: int, cursor: str | None) -> list[FlowSummary]:
    with backend.get_connection() as conn:
        tables = conn.run(lambda: {t: dict(rows) for t, rows in _tables(backend).items()})
    after = decode_cursor(cursor) if cursor is not None else None
    books = tables[LOGBOOKS]
    needle = flt.name.lower() if flt.name else None
    picked: list[FlowSummary] = []
    for row in tables[FLOWS].values():
        created = row["created_at"]
        if flt.state is not None and row["state"] != flt.state:
            continue
        if flt.since is not None and created < flt.since:
            continue
        if needle is not None and needle not in row["name"].lower():
            continue
        if after is not None and (created, row["uuid"]) >= after:
            continue
        book = books.get(row["parent_uuid"])
        picked.append(
            FlowSummary(
                row["uuid"],
                row["name"],
                row["state"],
                row["parent_uuid"],
                None if book is None else book["name"],
                created,
                row["updated_at"],
            )
        )
    picked.sort(key=lambda s: (s.created_at, s.uuid), reverse=True)
    return picked[: limit + 1]


def _prefix_matches(backend: Backend, prefix: str) -> list[str]:
    sql = _sql(backend)
    if sql is not None:
        f = flowdetails
        stmt = sa.select(f.c.uuid).where(f.c.uuid.startswith(prefix, autoescape=True))
        (found,) = _read(sql, stmt.order_by(f.c.uuid).limit(_PREFIX_SHOWN + 1))
        return [str(r[0]) for r in found]
    with backend.get_connection() as conn:
        uuids = conn.run(lambda: list(_tables(backend)[FLOWS]))
    return sorted(u for u in uuids if u.startswith(prefix))


def resolve_prefix(backend: Backend, prefix: str) -> str:
    """The one flow uuid starting with ``prefix``; :class:`NotFound` or :class:`AmbiguousPrefix` else."""
    prefix = prefix.strip().lower()
    if not prefix or any(ch not in "0123456789abcdef-" for ch in prefix):
        raise BadQuery(f"{prefix!r} is not a flow uuid or the start of one (hex digits and dashes)")
    found = _prefix_matches(backend, prefix)
    if not found:
        raise NotFound(f"no flow whose uuid starts with {prefix!r} in {backend.display_url}")
    if len(found) > 1:
        shown = ", ".join(found[:_PREFIX_SHOWN]) + (", ..." if len(found) > _PREFIX_SHOWN else "")
        raise AmbiguousPrefix(f"{prefix!r} starts several flow uuids ({shown}): give more of it")
    return found[0]


def find_flow(backend: Backend, prefix: str) -> FlowDetail:
    """The flow detail (with its atom details) whose uuid is or starts with ``prefix``."""
    uuid = resolve_prefix(backend, prefix)
    with backend.get_connection() as conn:
        return conn.get_flow_detail(uuid)


def atom_marks(backend: Backend, flow_uuid: str) -> tuple[str, dict[str, tuple[Any, ...]]]:
    """The flow's state and, per atom name, what changes when the atom does (state and timings).

    Cheap enough to poll: two small reads by primary key and by the atoms' ``(parent_uuid, name)``
    index, nothing decoded. Live views compare two of these to see what moved.
    """
    sql = _sql(backend)
    if sql is not None:
        return _marks_sql(sql, flow_uuid)
    with backend.get_connection() as conn:
        tables = conn.run(lambda: {t: dict(rows) for t, rows in _tables(backend).items()})
    flow = tables[FLOWS].get(flow_uuid)
    if flow is None:
        raise NotFound(f"no flow {flow_uuid!r} in {backend.display_url}")
    atoms = (r for r in tables[ATOMS].values() if r["parent_uuid"] == flow_uuid)
    return flow["state"], {r["name"]: _mark(r) for r in atoms}


_MARK_COLUMNS = ("state", "intention", "attempts", "started_at", "finished_at")
_MARK_MORE = ("revert_started_at", "revert_finished_at")


def _mark(row: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(row.get(c) for c in (*_MARK_COLUMNS, *_MARK_MORE))


def _marks_sql(backend: SQLAlchemyBackend, flow_uuid: str) -> tuple[str, dict[str, tuple[Any, ...]]]:
    f, a = flowdetails, atomdetails
    flow_stmt = sa.select(f.c.state).where(f.c.uuid == flow_uuid)
    columns = (a.c[c] for c in (*_MARK_COLUMNS, *_MARK_MORE))
    atom_stmt = sa.select(a.c.name, *columns).where(a.c.parent_uuid == flow_uuid)
    flow, atoms = _read(backend, flow_stmt, atom_stmt)
    if not flow:
        raise NotFound(f"no flow {flow_uuid!r} in {backend.display_url}")
    return str(flow[0][0]), {r[0]: tuple(r[1:]) for r in atoms}
