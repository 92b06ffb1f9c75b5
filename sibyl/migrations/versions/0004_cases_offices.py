"""Cases, offices directory and operator roles (issue 15, URP loop).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23

Placeholder reserved so parallel work keeps one linear chain; filled in by its change.
"""

from __future__ import annotations

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
