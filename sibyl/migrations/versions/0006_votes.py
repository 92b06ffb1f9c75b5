"""One current vote per user per answer (issue 17): feedback.voter and a unique (message_id, voter) index.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23

`voter` is who voted ('telegram:<user id>', 'web:<session id>'); a vote again by the same voter changes
that row. Old rows keep their data with voter NULL (NULLs never collide in a unique index), so no earlier
vote is merged or lost. Idempotent like 0002/0003.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

INDEX = "uq_feedback_message_voter"


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if "voter" not in {c["name"] for c in inspector.get_columns("feedback")}:
        with op.batch_alter_table("feedback") as batch:
            batch.add_column(sa.Column("voter", sa.String(128), nullable=True))
    if INDEX not in {i["name"] for i in sa.inspect(op.get_bind()).get_indexes("feedback")}:
        op.create_index(INDEX, "feedback", ["message_id", "voter"], unique=True)


def downgrade() -> None:
    op.drop_index(INDEX, "feedback")
    with op.batch_alter_table("feedback") as batch:
        batch.drop_column("voter")
