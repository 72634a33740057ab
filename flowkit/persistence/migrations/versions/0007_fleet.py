"""The fleet's heartbeats on a SQL board: flowkit_fleet.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28

One row per board and member (a conductor): its JSON record and its last heartbeat; the run-time
definition is ``flowkit/jobboard/backends/_sql_schema.py`` (``fleet``).
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TABLE = "flowkit_fleet"


def upgrade() -> None:
    if not op.get_context().as_sql and sa.inspect(op.get_bind()).has_table(TABLE):
        return  # made by a board's create_all of this version (as 0002 adopts flowkit_jobs)
    op.create_table(
        TABLE,
        sa.Column("board", sa.String(255), primary_key=True),
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("heartbeat", sa.Float, nullable=False),
        sa.Column(
            "record", sa.Text, nullable=False, comment="the member's JSON record (flowkit.jobboard.fleet)"
        ),
    )


def downgrade() -> None:
    op.drop_table(TABLE)
