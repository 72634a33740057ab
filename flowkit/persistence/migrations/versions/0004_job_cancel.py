"""Cancel requests on the SQL job board: ``flowkit_jobs.cancel_reason``.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28

``board.cancel(job, reason)`` saves the reason here (NULL: no cancel asked); the board holding the job's
claim polls it for the jobs it holds, and its conductor reverts the flow and ends the job CANCELLED.
See ``docs/jobboards.md`` (Cancelling a job).
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    inspector = None if op.get_context().as_sql else sa.inspect(op.get_bind())
    columns = set() if inspector is None else {c["name"] for c in inspector.get_columns("flowkit_jobs")}
    if "cancel_reason" in columns:
        return  # a board table that a create_all of this version made
    with op.batch_alter_table("flowkit_jobs") as batch:
        batch.add_column(sa.Column("cancel_reason", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("flowkit_jobs") as batch:
        batch.drop_column("cancel_reason")
