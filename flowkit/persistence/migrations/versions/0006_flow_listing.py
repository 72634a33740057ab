"""Listing flows fast, and revert timings apart from execute timings.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28

``flowkit flows list`` and ``GET /api/v1/flows`` page newest first by ``(created_at, uuid)`` with a
keyset (no ``OFFSET``), optionally for one state: two indexes make each page an index range scan,
however many flows the database holds. ``flowkit_atomdetails.revert_started_at``/``revert_finished_at``
bound an atom's revert, so ``started_at``/``finished_at`` keep its execute's timings (the console shows
both).
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

FLOWS = "flowkit_flowdetails"
ATOMS = "flowkit_atomdetails"
INDEXES = {
    "ix_flowkit_flowdetails_created": ["created_at", "uuid"],
    "ix_flowkit_flowdetails_state_created": ["state", "created_at", "uuid"],
}
COLUMNS = ("revert_started_at", "revert_finished_at")


def upgrade() -> None:
    for name, columns in INDEXES.items():
        op.create_index(name, FLOWS, columns)
    with op.batch_alter_table(ATOMS) as batch:
        for column in COLUMNS:
            batch.add_column(sa.Column(column, sa.DateTime(timezone=True)))


def downgrade() -> None:
    with op.batch_alter_table(ATOMS) as batch:
        for column in reversed(COLUMNS):
            batch.drop_column(column)
    for name in reversed(INDEXES):
        op.drop_index(name, table_name=FLOWS)
