"""Cases, offices directory and operator roles (issue 15, URP loop).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23

New tables: cases (with their copied conversation, history, internal notes and sent replies), canned
replies and the offices directory, shipped with one entry: the URP, pointing to the City's official
website (nothing invented). Operators get a role; accounts that existed before roles were made from
the command line with every power, so they become 'admin'. Idempotent like 0002/0003: a table or column
that is already there is left alone.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _tables() -> list[tuple[str, list, list[tuple[str, list[str]]]]]:
    """(name, columns and constraints, indexes) in dependency order; frozen, never edited."""
    return [
        ("offices", [
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("name_it", sa.String(200), nullable=False),
            sa.Column("name_en", sa.String(200), nullable=False),
            sa.Column("keywords_it", sa.Text(), nullable=False),
            sa.Column("keywords_en", sa.Text(), nullable=False),
            sa.Column("phone", sa.String(100), nullable=False),
            sa.Column("email", sa.String(200), nullable=False),
            sa.Column("address", sa.String(300), nullable=False),
            sa.Column("hours", sa.String(500), nullable=False),
            sa.Column("url", sa.String(500), nullable=False),
            sa.Column("updated_at", sa.DateTime(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        ], []),
        ("cases", [
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("number", sa.String(32), nullable=False),
            sa.Column("session_id", sa.String(64), nullable=False),
            sa.Column("channel", sa.String(16), nullable=False),
            sa.Column("language", sa.String(2), nullable=False),
            sa.Column("email", sa.String(320), nullable=True),
            sa.Column("telegram_chat", sa.String(64), nullable=True),
            sa.Column("consent_at", sa.DateTime(), nullable=False),
            sa.Column("contact_until", sa.DateTime(), nullable=False),
            sa.Column("question", sa.Text(), nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("assignee", sa.String(64), nullable=True),
            sa.Column("office_id", sa.Integer(), nullable=True),
            sa.Column("due_date", sa.Date(), nullable=True),
            sa.Column("draft_subject", sa.String(300), nullable=True),
            sa.Column("draft", sa.Text(), nullable=True),
            sa.Column("created_at", sa.DateTime(), nullable=False),
            sa.Column("updated_at", sa.DateTime(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("number"),
        ], [("ix_cases_session_id", ["session_id"]), ("ix_cases_contact_until", ["contact_until"]),
            ("ix_cases_status", ["status"]), ("ix_cases_assignee", ["assignee"]),
            ("ix_cases_created_at", ["created_at"])]),
        ("case_messages", [
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("case_id", sa.Integer(), nullable=False),
            sa.Column("role", sa.String(16), nullable=False),
            sa.Column("text", sa.Text(), nullable=False),
            sa.Column("answered", sa.Boolean(), nullable=True),
            sa.Column("previous_question", sa.Text(), nullable=True),
            sa.Column("at", sa.DateTime(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
            sa.ForeignKeyConstraint(["case_id"], ["cases.id"], ondelete="CASCADE"),
        ], [("ix_case_messages_case_id", ["case_id"])]),
        ("case_events", [
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("case_id", sa.Integer(), nullable=False),
            sa.Column("at", sa.DateTime(), nullable=False),
            sa.Column("username", sa.String(64), nullable=False),
            sa.Column("action", sa.String(32), nullable=False),
            sa.Column("detail", sa.JSON(), nullable=True),
            sa.PrimaryKeyConstraint("id"),
            sa.ForeignKeyConstraint(["case_id"], ["cases.id"], ondelete="CASCADE"),
        ], [("ix_case_events_case_id", ["case_id"])]),
        ("case_notes", [
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("case_id", sa.Integer(), nullable=False),
            sa.Column("at", sa.DateTime(), nullable=False),
            sa.Column("username", sa.String(64), nullable=False),
            sa.Column("text", sa.Text(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
            sa.ForeignKeyConstraint(["case_id"], ["cases.id"], ondelete="CASCADE"),
        ], [("ix_case_notes_case_id", ["case_id"])]),
        ("case_replies", [
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("case_id", sa.Integer(), nullable=False),
            sa.Column("at", sa.DateTime(), nullable=False),
            sa.Column("username", sa.String(64), nullable=False),
            sa.Column("channel", sa.String(16), nullable=False),
            sa.Column("recipient", sa.String(320), nullable=False),
            sa.Column("subject", sa.String(300), nullable=False),
            sa.Column("body", sa.Text(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
            sa.ForeignKeyConstraint(["case_id"], ["cases.id"], ondelete="CASCADE"),
        ], [("ix_case_replies_case_id", ["case_id"])]),
        ("canned_replies", [
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("title", sa.String(200), nullable=False),
            sa.Column("language", sa.String(2), nullable=False),
            sa.Column("body", sa.Text(), nullable=False),
            sa.Column("created_by", sa.String(64), nullable=False),
            sa.Column("created_at", sa.DateTime(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        ], []),
    ]


URP = {"name_it": "Ufficio Relazioni con il Pubblico (URP)", "name_en": "Public Relations Office (URP)",
       "keywords_it": "", "keywords_en": "", "phone": "", "email": "", "address": "", "hours": "",
       "url": "https://www.comune.lecce.it"}


def upgrade() -> None:
    bind = op.get_bind()
    existing = set(sa.inspect(bind).get_table_names())
    for name, columns, indexes in _tables():
        if name in existing:
            continue
        table = op.create_table(name, *columns)
        for index, cols in indexes:
            op.create_index(index, name, cols)
        if name == "offices":
            op.bulk_insert(table, [{**URP, "updated_at": datetime.now().replace(microsecond=0)}])
    operator_columns = {c["name"] for c in sa.inspect(bind).get_columns("operators")}
    if "role" not in operator_columns:
        op.add_column("operators", sa.Column("role", sa.String(16), nullable=False, server_default="operator"))
        op.execute("UPDATE operators SET role = 'admin'")  # made before roles, from the CLI, with every power


def downgrade() -> None:
    op.drop_column("operators", "role")
    for name, _, indexes in reversed(_tables()):
        for index, _cols in indexes:
            op.drop_index(index, name)
        op.drop_table(name)
