"""The SQL job board's parked jobs by due time: flowkit_jobs_wake on (board, state, wake_at, id).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30

A claim looks for a parked (WAITING) job whose wake-up time has passed. On the pick index alone
(``board, state, priority DESC, id``) that search read the board's parked jobs in the claim order,
testing each one's ``wake_at``, until it found a due one: with many jobs parked far ahead, every
claim read them all (5,000 parked an hour ahead: 5,000 rows at each claim), and so did the board's
query for its next wake-up time. On this index both read the first entry of the board's parked jobs.
Building it holds the table's writes while it runs, as revision 0008's rebuild of the pick index did.
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TABLE = "flowkit_jobs"
INDEX = "flowkit_jobs_wake"


def upgrade() -> None:
    inspector = None if op.get_context().as_sql else sa.inspect(op.get_bind())
    have = set() if inspector is None else {i["name"] for i in inspector.get_indexes(TABLE)}
    if INDEX not in have:  # a board table adopted by 0002 that a create_all of this version made
        op.create_index(INDEX, TABLE, ["board", "state", "wake_at", "id"])


def downgrade() -> None:
    op.drop_index(INDEX, table_name=TABLE)
