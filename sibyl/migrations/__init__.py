"""Alembic migrations of the one database (sibyl/db.py runs them; `sibyl db upgrade`)."""
