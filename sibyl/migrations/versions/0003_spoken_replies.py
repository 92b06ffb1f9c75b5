"""Telegram chats' spoken-replies preference (/voce on|off, issue 16): telegram_chats.spoken_replies.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23

Nullable: no row value means the default (voice questions get a voice note too). Idempotent like 0002.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("telegram_chats")}
    if "spoken_replies" not in columns:
        with op.batch_alter_table("telegram_chats") as batch:
            batch.add_column(sa.Column("spoken_replies", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("telegram_chats") as batch:
        batch.drop_column("spoken_replies")
