"""Alembic environment: migrations run on the connection sibyl.db.upgrade passes in (under its lock)."""

from __future__ import annotations

from alembic import context

from sibyl.db import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `sibyl db upgrade` (sibyl.db.upgrade), which passes the connection")
context.configure(connection=connection, target_metadata=metadata(),
                  render_as_batch=connection.dialect.name == "sqlite", compare_type=True)
with context.begin_transaction():
    context.run_migrations()
