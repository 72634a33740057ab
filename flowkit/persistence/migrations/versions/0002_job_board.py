"""The SQL job board's table: flowkit_jobs.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-20

The run-time definition is ``flowkit/jobboard/backends/_sql_schema.py``; the two must agree
(``tests/test_persistence_migrations.py`` checks). Boards made by flowkit before this revision created
the table themselves (``create_all``), without a revision: such a table is adopted as it is.
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TABLE = "flowkit_jobs"
INDEX = "flowkit_jobs_pick"


def upgrade() -> None:
    if not op.get_context().as_sql and sa.inspect(op.get_bind()).has_table(TABLE):
        return  # made by an older board's create_all: same columns, same index
    op.create_table(
        TABLE,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("board", sa.String(255), nullable=False),
        sa.Column("uuid", sa.String(36), nullable=False, unique=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("owner", sa.String(255)),
        sa.Column("lease_token", sa.String(36)),
        sa.Column("lease_expires", sa.Float),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_reason", sa.Text),
        sa.Column("created_on", sa.Float, nullable=False),
        sa.Column("updated_on", sa.Float, nullable=False),
        sa.Column("record", sa.Text, nullable=False, comment="the job's JSON record"),
    )
    op.create_index(INDEX, TABLE, ["board", "state", "priority", "id"])


def downgrade() -> None:
    op.drop_index(INDEX, table_name=TABLE)
    op.drop_table(TABLE)
