"""One database layer: the declarative Base of every table, the engine factory and Alembic migrations.

The conversation store, the operator back office and the Telegram chat preferences share one Base and
one engine per URL, so SQLite gets the same pragmas on every path, and `upgrade()` (run at start and by
`sibyl db upgrade`) brings any database, PostgreSQL included, to the current schema: a new column reaches
an existing deployment instead of create_all silently skipping tables that already exist.
"""

from __future__ import annotations

import functools
import logging
import uuid
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from filelock import FileLock
from sqlalchemy import Connection, Engine, MetaData, create_engine, event, inspect, make_url, text
from sqlalchemy.orm import DeclarativeBase

log = logging.getLogger(__name__)

INITIAL = "0001"  # the schema create_all made before migrations (commit a7a592d)
# Tables the initial revision creates: a database holding some of them but no alembic_version table
# was made by create_all and is stamped instead of created again.
INITIAL_TABLES = frozenset({"sessions", "messages", "feedback", "telegram_chats", "operators", "operator_login_state",
                            "operator_sessions", "operator_audit", "operator_handled_questions"})
PG_LOCK_KEY = 0x5181_D0B1  # pg_advisory_xact_lock key: one migrating process per PostgreSQL database
_migrated: weakref.WeakSet[Engine] = weakref.WeakSet()


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def new_id() -> str:
    return uuid.uuid4().hex


class Base(DeclarativeBase):
    pass


def metadata() -> MetaData:
    """Base.metadata with every model module imported (what migrations and autogenerate compare against)."""
    import sibyl.backoffice.accounts  # noqa: F401
    import sibyl.backoffice.audit  # noqa: F401
    import sibyl.backoffice.cases  # noqa: F401
    import sibyl.backoffice.faq  # noqa: F401
    import sibyl.backoffice.offices  # noqa: F401
    import sibyl.store  # noqa: F401

    return Base.metadata


SQLITE_OPEN_WAIT_MS = 30_000
SQLITE_BUSY_MS = 5_000


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL (None for in-memory or another backend)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def _sqlite_pragmas(conn, _record) -> None:
    cur = conn.cursor()
    # Switching to WAL needs the file to itself for a moment: a replica starting beside another that is
    # migrating the shared file waits for it (up to 30 s) instead of exiting on "database is locked".
    cur.execute(f"PRAGMA busy_timeout={SQLITE_OPEN_WAIT_MS}")
    cur.execute("PRAGMA journal_mode=WAL")  # concurrent readers while one process writes
    cur.execute("PRAGMA synchronous=NORMAL")  # WAL: no fsync per commit; safe against app crashes
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")  # a request waits for another writer this long
    cur.close()


def make_engine(url: str) -> Engine:
    """The one way to open the database: SQLite gets its folder, thread sharing and pragmas on every path."""
    if make_url(url).get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    # No pre-ping: a SQLite file cannot drop a connection, and the ping was a query on every checkout.
    engine = create_engine(url, connect_args={"check_same_thread": False})
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic configured from the package (no alembic.ini), so it works from an installed wheel."""
    config = Config()
    config.set_main_option("script_location", "sibyl:migrations")
    config.attributes["connection"] = connection
    return config


@functools.cache
def head() -> str:
    """The newest revision in the package (read once: the revision files do not change under a process)."""
    revision = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert revision is not None
    return revision


def current(engine: Engine) -> str | None:
    """The database's revision (None: never migrated, e.g. made by create_all before migrations)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


@contextmanager
def _file_lock(engine: Engine) -> Iterator[None]:
    """Two workers starting together must not both create tables: a lock file beside a SQLite database, taken
    before the migrating connection opens (opening one switches the file to WAL, which waits for the other)."""
    path = sqlite_path(engine.url.render_as_string(hide_password=False))
    with FileLock(str(path) + ".migrate.lock") if path is not None else nullcontext():
        yield


@contextmanager
def _migration_lock(conn: Connection) -> Iterator[None]:
    """On PostgreSQL, a transaction-scoped advisory lock (released at commit) does what the file lock does."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_LOCK_KEY})
    yield


def upgrade(engine: Engine) -> str:
    """Bring the database to the newest revision (once per engine in a process); returns it.

    A database made by the old create_all (initial tables, no alembic_version) is stamped at the initial
    revision when it has all of them; with only some, the initial revision creates the missing ones."""
    if engine in _migrated:
        return head()
    with _file_lock(engine), engine.begin() as conn, _migration_lock(conn):
        config = alembic_config(conn)
        names = set(inspect(conn).get_table_names())
        if "alembic_version" not in names and names >= INITIAL_TABLES:
            log.info("database made before migrations: stamping revision %s", INITIAL)
            command.stamp(config, INITIAL)
        command.upgrade(config, "head")
        revision = MigrationContext.configure(conn).get_current_revision()
    _migrated.add(engine)
    return revision or head()
