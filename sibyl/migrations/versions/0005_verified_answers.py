"""Verified answers (FAQ) and blocked passages (issue 15): verified_answers, blocked_passages.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23

Idempotent like 0002: a database create_all made during the change may already have the tables.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "verified_answers" not in existing:
        op.create_table(
            "verified_answers",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("question", sa.String(500), nullable=False),
            sa.Column("variants", sa.JSON(), nullable=False),
            sa.Column("answer_it", sa.Text(), nullable=False),
            sa.Column("answer_en", sa.Text(), nullable=True),
            sa.Column("sources", sa.JSON(), nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("origin", sa.String(200), nullable=True),
            sa.Column("author", sa.String(64), nullable=False),
            sa.Column("approver", sa.String(64), nullable=True),
            sa.Column("approved_at", sa.DateTime(), nullable=True),
            sa.Column("expires_on", sa.Date(), nullable=True),
            sa.Column("created_at", sa.DateTime(), nullable=False),
            sa.Column("updated_at", sa.DateTime(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index("ix_verified_answers_status", "verified_answers", ["status"])
    if "blocked_passages" not in existing:
        op.create_table(
            "blocked_passages",
            sa.Column("passage_id", sa.String(300), nullable=False),
            sa.Column("reason", sa.Text(), nullable=False),
            sa.Column("blocked_by", sa.String(64), nullable=False),
            sa.Column("blocked_at", sa.DateTime(), nullable=False),
            sa.PrimaryKeyConstraint("passage_id"),
        )


def downgrade() -> None:
    op.drop_table("blocked_passages")
    op.drop_index("ix_verified_answers_status", "verified_answers")
    op.drop_table("verified_answers")
