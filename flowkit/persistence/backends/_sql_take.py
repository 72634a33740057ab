"""A fenced flow detail's read on PostgreSQL: its fence raised and its rows read in one statement.

Why: a conductor restores every job's flow this way (``Connection.take_flow_detail``), and the two
``UPDATE ... RETURNING`` statements it took through SQLAlchemy (a round trip, a compiled-cache lookup
and a result set-up each, rows built into mappings) were most of the CPU a one-task job cost the
conductor besides its run. Here it is one prepared statement on the DB-API cursor: the flow's fence
raised where it is not higher already, its atoms' with it only then, both rows read back as JSON (one
result of one row), and the fence as it was, which names the newer claim when the raise is refused::

    WITH f AS (UPDATE flows SET fence = $2 WHERE uuid = $1 AND fence <= $2 RETURNING *),
         a AS (UPDATE atoms SET fence = $2 WHERE parent_uuid = $1 AND EXISTS (SELECT 1 FROM f) RETURNING *)
    SELECT (SELECT row_to_json(f) FROM f), (SELECT json_agg(a) FROM a),
           (SELECT fence FROM flows WHERE uuid = $1)

The flow row's lock is taken by the first part, as the two statements took it; under READ COMMITTED a
claim that waited for another's re-checks ``fence <= $2`` on the row that one left. JSON gives the
timestamps back as text (ISO 8601, with the session's offset): they are made UTC datetimes here,
as SQLAlchemy's column type makes them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from flowkit.persistence.backends._prepared import PreparedUpdates
from flowkit.persistence.backends._tables import TABLES, UtcDateTime
from flowkit.persistence.rows import ATOMS, FLOWS, Row

NAME = "flowkit_take"
_FLOWS, _ATOMS = TABLES[FLOWS].name, TABLES[ATOMS].name
STATEMENT = (
    f"WITH f AS (UPDATE {_FLOWS} SET fence = $2 WHERE uuid = $1 AND fence <= $2 RETURNING *), "
    f"a AS (UPDATE {_ATOMS} SET fence = $2 WHERE parent_uuid = $1 AND EXISTS (SELECT 1 FROM f) RETURNING *) "
    f"SELECT (SELECT row_to_json(f) FROM f), (SELECT json_agg(a) FROM a), "
    f"(SELECT fence FROM {_FLOWS} WHERE uuid = $1)"
)
_TIMESTAMPS = {
    name: tuple(c.name for c in TABLES[name].c if isinstance(c.type, UtcDateTime)) for name in (FLOWS, ATOMS)
}


def take(
    updates: PreparedUpdates, conn: sa.Connection, cursor: Any, flow_uuid: str, token: int
) -> tuple[int | None, Row | None, list[Row]]:
    """(the flow's fence afterwards, its row, its atoms' rows): ``token``, the rows, when it was
    raised; else the fence that refused it (None: no such flow) and no rows."""
    updates.run_prepared(conn, cursor, NAME, STATEMENT, (flow_uuid, token))
    flow, atoms, fence = cursor.fetchone()
    if flow is None:
        return (None if fence is None else int(fence)), None, []
    return token, _typed(FLOWS, flow), [_typed(ATOMS, row) for row in atoms or ()]


def _typed(table: str, row: dict[str, Any]) -> Row:
    """A row read as JSON with its timestamps as SQLAlchemy's column type reads them (UTC datetimes)."""
    for name in _TIMESTAMPS[table]:
        text = row[name]
        if text is not None:
            row[name] = datetime.fromisoformat(text).astimezone(UTC)
    return row
