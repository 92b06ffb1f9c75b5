"""Operator lockout per (username, client address): operator_login_failures replaces operator_login_state.

Revision ID: 0002
Revises: 0001
Create Date: 2025-06-02

The old rows were per-username counters only (no address to key them by), so they are dropped, as
create_all's code did. Idempotent: a database create_all made during the change may already have the
new table.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "operator_login_failures" not in existing:
        op.create_table(
            "operator_login_failures",
            sa.Column("username", sa.String(64), nullable=False),
            sa.Column("ip", sa.String(64), nullable=False),
            sa.Column("failures", sa.Integer(), nullable=False),
            sa.Column("locked_until", sa.DateTime(), nullable=True),
            sa.Column("updated_at", sa.DateTime(), nullable=False),
            sa.PrimaryKeyConstraint("username", "ip"),
        )
        op.create_index("ix_operator_login_failures_updated_at", "operator_login_failures", ["updated_at"])
    if "operator_login_state" in existing:
        op.drop_table("operator_login_state")


def downgrade() -> None:
    op.create_table(
        "operator_login_state",
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("username"),
    )
    op.drop_index("ix_operator_login_failures_updated_at", "operator_login_failures")
    op.drop_table("operator_login_failures")
