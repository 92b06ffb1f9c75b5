"""Initial schema: the tables create_all made before migrations (commit a7a592d).

Revision ID: 0001
Revises:
Create Date: 2025-06-01

Each table is created only when missing: a database that create_all filled partly (the operator and
Telegram tables appeared only once those features were first used) gets the rest here.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _tables() -> list[tuple[str, list, list[tuple[str, list[str]]]]]:
    """(name, columns and constraints, indexes) in dependency order; frozen, never edited."""
    return [
        ("sessions", [
            sa.Column("id", sa.String(64), nullable=False),
            sa.Column("channel", sa.String(16), nullable=False),
            sa.Column("external_key", sa.String(128), nullable=True),
            sa.Column("language", sa.String(2), nullable=True),
            sa.Column("created_at", sa.DateTime(), nullable=False),
            sa.Column("last_seen_at", sa.DateTime(), nullable=False),
            sa.Column("expired", sa.Boolean(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        ], [("ix_sessions_external_key", ["external_key"]), ("ix_sessions_last_seen_at", ["last_seen_at"])]),
        ("messages", [
            sa.Column("id", sa.String(64), nullable=False),
            sa.Column("session_id", sa.String(64), nullable=False),
            sa.Column("role", sa.String(16), nullable=False),
            sa.Column("channel", sa.String(16), nullable=False),
            sa.Column("text", sa.Text(), nullable=False),
            sa.Column("language", sa.String(2), nullable=True),
            sa.Column("answered", sa.Boolean(), nullable=True),
            sa.Column("intent", sa.String(16), nullable=True),
            sa.Column("mode", sa.String(16), nullable=True),
            sa.Column("retrieval_query", sa.Text(), nullable=True),
            sa.Column("sources", sa.JSON(), nullable=True),
            sa.Column("reply_to", sa.String(64), nullable=True),
            sa.Column("created_at", sa.DateTime(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
            sa.ForeignKeyConstraint(["session_id"], ["sessions.id"], ondelete="CASCADE"),
        ], [("ix_messages_created_at", ["created_at"]), ("ix_messages_session_id", ["session_id"])]),
        ("feedback", [
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("session_id", sa.String(64), nullable=False),
            sa.Column("message_id", sa.String(64), nullable=False),
            sa.Column("channel", sa.String(16), nullable=False),
            sa.Column("rating", sa.Integer(), nullable=False),
            sa.Column("comment", sa.Text(), nullable=True),
            sa.Column("created_at", sa.DateTime(), nullable=False),
            sa.Column("reviewed", sa.Boolean(), nullable=False),
            sa.Column("reviewed_at", sa.DateTime(), nullable=True),
            sa.Column("reviewed_by", sa.String(64), nullable=True),
            sa.PrimaryKeyConstraint("id"),
            sa.ForeignKeyConstraint(["session_id"], ["sessions.id"], ondelete="CASCADE"),
            sa.ForeignKeyConstraint(["message_id"], ["messages.id"], ondelete="CASCADE"),
        ], [("ix_feedback_created_at", ["created_at"]), ("ix_feedback_message_id", ["message_id"]),
            ("ix_feedback_session_id", ["session_id"])]),
        ("operator_audit", [
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("at", sa.DateTime(), nullable=False),
            sa.Column("username", sa.String(64), nullable=False),
            sa.Column("action", sa.String(48), nullable=False),
            sa.Column("detail", sa.JSON(), nullable=True),
            sa.Column("ip", sa.String(64), nullable=True),
            sa.PrimaryKeyConstraint("id"),
        ], [("ix_operator_audit_action", ["action"]), ("ix_operator_audit_at", ["at"]),
            ("ix_operator_audit_username", ["username"])]),
        ("operator_handled_questions", [
            sa.Column("message_id", sa.String(64), nullable=False),
            sa.Column("handled_by", sa.String(64), nullable=False),
            sa.Column("handled_at", sa.DateTime(), nullable=False),
            sa.Column("note", sa.Text(), nullable=True),
            sa.PrimaryKeyConstraint("message_id"),
        ], []),
        ("operator_login_state", [
            sa.Column("username", sa.String(64), nullable=False),
            sa.Column("failures", sa.Integer(), nullable=False),
            sa.Column("locked_until", sa.DateTime(), nullable=True),
            sa.PrimaryKeyConstraint("username"),
        ], []),
        ("operator_sessions", [
            sa.Column("token_hash", sa.String(64), nullable=False),
            sa.Column("username", sa.String(64), nullable=False),
            sa.Column("csrf", sa.String(64), nullable=False),
            sa.Column("created_at", sa.DateTime(), nullable=False),
            sa.Column("expires_at", sa.DateTime(), nullable=False),
            sa.PrimaryKeyConstraint("token_hash"),
        ], [("ix_operator_sessions_username", ["username"])]),
        ("operators", [
            sa.Column("username", sa.String(64), nullable=False),
            sa.Column("password_hash", sa.String(255), nullable=False),
            sa.Column("active", sa.Boolean(), nullable=False),
            sa.Column("created_at", sa.DateTime(), nullable=False),
            sa.PrimaryKeyConstraint("username"),
        ], []),
        ("telegram_chats", [
            sa.Column("key", sa.String(128), nullable=False),
            sa.Column("language", sa.String(2), nullable=True),
            sa.Column("updated_at", sa.DateTime(), nullable=False),
            sa.PrimaryKeyConstraint("key"),
        ], []),
    ]


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    for name, columns, indexes in _tables():
        if name in existing:
            continue
        op.create_table(name, *columns)
        for index, fields in indexes:
            op.create_index(index, name, fields)


def downgrade() -> None:
    for name, _columns, _indexes in reversed(_tables()):
        op.drop_table(name)
