"""The SQL tables as SQLAlchemy Core sees them at run time (the migrations create them).

Kept apart from the migrations on purpose: a migration is a frozen record of how the schema got
where it is, these tables are what this version of the code reads and writes. The test suite checks
that a database upgraded from empty has exactly these columns.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from flowkit.persistence.rows import ATOMS, FLOWS, LOGBOOKS, ORDER_BY


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every database (SQLite stores them naive, as UTC)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
            if dialect.name == "sqlite":
                value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        moment: datetime = value
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


metadata = sa.MetaData()

logbooks = sa.Table(
    "flowkit_logbooks",
    metadata,
    sa.Column("uuid", sa.String(36), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("meta", sa.Text),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

flowdetails = sa.Table(
    "flowkit_flowdetails",
    metadata,
    sa.Column("uuid", sa.String(36), primary_key=True),
    sa.Column("parent_uuid", sa.String(36), sa.ForeignKey("flowkit_logbooks.uuid", ondelete="CASCADE")),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("meta", sa.Text),
    sa.Column("failures", sa.Text),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("fence", sa.BigInteger, nullable=False, server_default="0"),
    # keyset paging of flow listings, newest first (migration 0006; see flowkit.persistence.queries)
    sa.Index("ix_flowkit_flowdetails_created", "created_at", "uuid"),
    sa.Index("ix_flowkit_flowdetails_state_created", "state", "created_at", "uuid"),
)

atomdetails = sa.Table(
    "flowkit_atomdetails",
    metadata,
    sa.Column("uuid", sa.String(36), primary_key=True),
    sa.Column("parent_uuid", sa.String(36), sa.ForeignKey("flowkit_flowdetails.uuid", ondelete="CASCADE")),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("kind", sa.String(10), nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("intention", sa.String(20), nullable=False),
    sa.Column("results", sa.Text),
    sa.Column("failure", sa.Text),
    sa.Column("revert_results", sa.Text),
    sa.Column("revert_failure", sa.Text),
    sa.Column("history", sa.Text),
    sa.Column("version", sa.String(40)),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("started_at", UtcDateTime),
    sa.Column("finished_at", UtcDateTime),
    sa.Column("meta", sa.Text),
    sa.Column("fence", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("revert_started_at", UtcDateTime),
    sa.Column("revert_finished_at", UtcDateTime),
)

events_metadata = sa.MetaData()
"""Apart from ``metadata`` (the row tables of revision 0001): the events table came with revision 0005."""

events = sa.Table(
    "flowkit_events",
    events_metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("payload", sa.Text),
    sa.Column("sent_at", sa.Float, nullable=False),
    sa.Index("flowkit_events_name", "name", "id"),
)
"""Events sent to durable waits (``flowkit.persistence.events``); not one of the row tables below."""

TABLES: dict[str, sa.Table] = {LOGBOOKS: logbooks, FLOWS: flowdetails, ATOMS: atomdetails}
ORDER: dict[str, list[sa.Column[Any]]] = {
    name: [TABLES[name].c[col] for col in cols] for name, cols in ORDER_BY.items()
}
