"""Fencing tokens: the claim that last took a flow over, on its rows and on the job board's rows.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28

``flowkit_flowdetails.fence`` and ``flowkit_atomdetails.fence`` hold the fencing token of the claim
whose engine may write the flow (0: never claimed); an engine loaded with a token raises them before
its first write and writes only where they still equal its token. ``flowkit_jobs.claim_epoch`` counts
the claims of a job on the SQL board: each claim's token. See ``docs/jobboards.md`` (Fencing).
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_COLUMNS = (
    ("flowkit_flowdetails", "fence"),
    ("flowkit_atomdetails", "fence"),
    ("flowkit_jobs", "claim_epoch"),
)


def upgrade() -> None:
    inspector = None if op.get_context().as_sql else sa.inspect(op.get_bind())
    for table, column in _COLUMNS:
        if inspector is not None and column in {c["name"] for c in inspector.get_columns(table)}:
            continue  # a board table adopted by 0002 that a create_all of this version made
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column(column, sa.BigInteger, nullable=False, server_default="0"))


def downgrade() -> None:
    for table, column in reversed(_COLUMNS):
        with op.batch_alter_table(table) as batch:
            batch.drop_column(column)
