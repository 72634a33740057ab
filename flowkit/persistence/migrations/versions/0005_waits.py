"""Durable waits: the events table, and parked jobs on the SQL board.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28

``flowkit_events`` keeps the events sent to durable waits (``flowkit.persistence.events``).
``flowkit_jobs.wake_at`` (epoch seconds) and ``flowkit_jobs.awaiting`` (the awaited event names) say
when a WAITING job becomes claimable again (``flowkit.jobboard.parking``). See ``docs/waits.md``.
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "flowkit_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("payload", sa.Text),
        sa.Column("sent_at", sa.Float, nullable=False),
    )
    op.create_index("flowkit_events_name", "flowkit_events", ["name", "id"])
    inspector = None if op.get_context().as_sql else sa.inspect(op.get_bind())
    have = set() if inspector is None else {c["name"] for c in inspector.get_columns("flowkit_jobs")}
    with op.batch_alter_table("flowkit_jobs") as batch:
        for name, kind in (("wake_at", sa.Float()), ("awaiting", sa.Text())):
            if name not in have:  # a board table adopted by 0002 that a create_all of this version made
                batch.add_column(sa.Column(name, kind))


def downgrade() -> None:
    with op.batch_alter_table("flowkit_jobs") as batch:
        batch.drop_column("awaiting")
        batch.drop_column("wake_at")
    op.drop_index("flowkit_events_name", table_name="flowkit_events")
    op.drop_table("flowkit_events")
