"""The SQL job board's pick index in the claim order: flowkit_jobs_pick on (board, state, priority DESC, id).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29

A claim takes the best claimable job: highest priority first, oldest first within a priority. The
index of revision 0002 had ``priority`` ascending, and an index cannot be read in ``priority DESC, id``
order (the directions differ), so every claim read and sorted every waiting job of its board: 1 ms
of PostgreSQL CPU with 2,000 jobs waiting, and draining a backlog grew with its square. With
``priority DESC`` each of the claim's searches (``_sql_claims.claim_next_statement``) reads the
index in order and stops at its first row. Rebuilding the index takes a lock on the table's writes
for the time it takes (about a second per million jobs); a board's consumed jobs count too.
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TABLE = "flowkit_jobs"
INDEX = "flowkit_jobs_pick"


def upgrade() -> None:
    op.drop_index(INDEX, table_name=TABLE)
    op.create_index(INDEX, TABLE, ["board", "state", sa.text("priority DESC"), "id"])


def downgrade() -> None:
    op.drop_index(INDEX, table_name=TABLE)
    op.create_index(INDEX, TABLE, ["board", "state", "priority", "id"])
