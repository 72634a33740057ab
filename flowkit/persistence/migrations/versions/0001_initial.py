"""Initial schema: logbooks, flow details, atom details.

Revision ID: 0001
Revises:
Create Date: 2024-11-22
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "flowkit_logbooks",
        sa.Column("uuid", sa.String(36), primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("meta", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "flowkit_flowdetails",
        sa.Column("uuid", sa.String(36), primary_key=True),
        sa.Column(
            "parent_uuid",
            sa.String(36),
            sa.ForeignKey("flowkit_logbooks.uuid", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("meta", sa.Text),
        sa.Column("failures", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "flowkit_atomdetails",
        sa.Column("uuid", sa.String(36), primary_key=True),
        sa.Column(
            "parent_uuid",
            sa.String(36),
            sa.ForeignKey("flowkit_flowdetails.uuid", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("position", sa.Integer, nullable=False, server_default="0"),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("intention", sa.String(20), nullable=False),
        sa.Column("results", sa.Text),
        sa.Column("failure", sa.Text),
        sa.Column("revert_results", sa.Text),
        sa.Column("revert_failure", sa.Text),
        sa.Column("history", sa.Text),
        sa.Column("version", sa.String(40)),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("seq", sa.Integer, nullable=False, server_default="0"),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("meta", sa.Text),
        sa.UniqueConstraint("parent_uuid", "name", name="uq_flowkit_atomdetails_parent_name"),
    )


def downgrade() -> None:
    op.drop_table("flowkit_atomdetails")
    op.drop_table("flowkit_flowdetails")
    op.drop_table("flowkit_logbooks")
