"""Schema migrations (sibyl/db.py, sibyl/migrations/) on SQLite and on a real PostgreSQL server.

A fresh database upgraded to head must equal the models (Alembic's autogenerate comparison finds
nothing), and a database made by the old create_all (tests/data/schema_a7a592d.*.sql, the schema at
commit a7a592d) with rows in it must keep the rows and gain what changed since. PostgreSQL is Debian's
`postgresql` package (scripts/test.sh installs it): a throw-away cluster is started here with initdb and
pg_ctl; when it cannot start the tests fail, they never skip.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from argon2 import PasswordHasher
from sqlalchemy import Engine, inspect, text

from sibyl.db import INITIAL, INITIAL_TABLES, current, head, make_engine, metadata, upgrade

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).resolve().parents[1]
OLD_DDL = {"sqlite": DATA / "schema_a7a592d.sqlite.sql", "postgresql": DATA / "schema_a7a592d.postgresql.sql"}
NOW = datetime(2025, 5, 1, 12, 0, 0)


def schema_diffs(engine: Engine) -> list:
    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata())


def statements(dialect: str) -> list[str]:
    body = "\n".join(line for line in OLD_DDL[dialect].read_text().splitlines() if not line.startswith("--"))
    return [s.strip() for s in body.split(";") if s.strip()]


def build_old_database(engine: Engine) -> None:
    """The a7a592d schema from its DDL, with a row in every table (a conversation, feedback, an operator,
    a lockout counter, an audit row, a handled question, a Telegram chat's language)."""
    with engine.begin() as conn:
        for statement in statements(engine.dialect.name):
            conn.execute(text(statement))
        rows = [
            ("INSERT INTO sessions (id, channel, external_key, language, created_at, last_seen_at, expired) "
             "VALUES ('s1', 'telegram', 'telegram:7', 'it', :now, :now, false)"),
            ("INSERT INTO messages (id, session_id, role, channel, text, language, answered, intent, mode, "
             "retrieval_query, sources, reply_to, created_at) VALUES ('m1', 's1', 'user', 'telegram', "
             "'Quando apre la ZTL?', 'it', NULL, NULL, NULL, NULL, NULL, NULL, :now)"),
            ("INSERT INTO messages (id, session_id, role, channel, text, language, answered, intent, mode, "
             "retrieval_query, sources, reply_to, created_at) VALUES ('m2', 's1', 'assistant', 'telegram', "
             "'Secondo il DUP…', 'it', true, 'question', 'extractive', 'ZTL', '[{\"n\": 1, \"document\": \"dup\"}]', "
             "'m1', :later)"),
            ("INSERT INTO feedback (session_id, message_id, channel, rating, comment, created_at, reviewed) "
             "VALUES ('s1', 'm2', 'telegram', -1, 'manca l''orario', :now, false)"),
            ("INSERT INTO operators (username, password_hash, active, created_at) "
             "VALUES ('urp.anna', :hash, true, :now)"),
            "INSERT INTO operator_login_state (username, failures, locked_until) VALUES ('urp.anna', 2, NULL)",
            ("INSERT INTO operator_audit (at, username, action, detail, ip) "
             "VALUES (:now, 'urp.anna', 'login', NULL, '10.0.0.1')"),
            ("INSERT INTO operator_handled_questions (message_id, handled_by, handled_at) "
             "VALUES ('m2', 'urp.anna', :now)"),
            "INSERT INTO telegram_chats (key, language, updated_at) VALUES ('telegram:7', 'en', :now)",
        ]
        values = {"now": NOW, "later": NOW + timedelta(seconds=1), "hash": PasswordHasher().hash("segreto-123")}
        for row in rows:
            conn.execute(text(row), {k: v for k, v in values.items() if f":{k}" in row})


def check_old_rows_kept(url: str) -> None:
    """Start the store and the console's accounts on the upgraded database: every old row is readable."""
    from bot.prefs import ChatPreferences
    from sibyl.backoffice.accounts import Operators
    from sibyl.store import Store

    store = Store(url, idle_minutes=60 * 24 * 365 * 100)
    try:
        assert current(store.engine) == head()
        assert schema_diffs(store.engine) == []
        tables = set(inspect(store.engine).get_table_names())
        assert "operator_login_state" not in tables and "operator_login_failures" in tables
        assert [(m.id, m.role, m.sources) for m in store.messages("s1")] == [
            ("m1", "user", None), ("m2", "assistant", [{"n": 1, "document": "dup"}])]
        assert [(f.message_id, f.rating, f.comment) for f in store.feedback()] == [("m2", -1, "manca l'orario")]
        assert store.open_session(external_key="telegram:7", channel="telegram").session.id == "s1"
        assert ChatPreferences(store).language("telegram:7") == "en"
        ops = Operators(store.engine, hash_concurrency=1)
        assert ops.usernames() == ["urp.anna"]
        assert ops.handled_ids() == {"m2"}
        assert [(e.username, e.action, e.ip) for e in ops.audit_log()] == [("urp.anna", "login", "10.0.0.1")]
        assert ops.login("urp.anna", "sbagliata", ip="10.0.0.2") is None  # the new per-address table works
        assert ops.login("urp.anna", "segreto-123", ip="10.0.0.2") is not None
        store.add_feedback("s1", "m2", 1, channel="telegram")  # the old rows take new ones (ids continue)
        assert sorted(f.rating for f in store.feedback()) == [-1, 1]
    finally:
        store.engine.dispose()


# --- SQLite -----------------------------------------------------------------------------------------

def test_fresh_sqlite_upgrade_equals_the_models(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'new' / 'sibyl.db'}")  # the folder is made too
    assert current(engine) is None
    assert upgrade(engine) == head()
    assert current(engine) == head()
    assert schema_diffs(engine) == []
    assert set(inspect(engine).get_table_names()) == set(metadata().tables) | {"alembic_version"}
    engine.dispose()


def test_old_sqlite_database_is_stamped_and_upgraded_keeping_rows(tmp_path):
    url = f"sqlite:///{tmp_path / 'sibyl.db'}"
    old = make_engine(url)
    build_old_database(old)
    assert current(old) is None and set(inspect(old).get_table_names()) >= INITIAL_TABLES
    old.dispose()
    check_old_rows_kept(url)


def test_partly_created_old_database_gets_the_missing_tables(tmp_path):
    """Before migrations the operator and Telegram tables appeared only once those features were used."""
    db = tmp_path / "sibyl.db"
    with sqlite3.connect(db) as conn:
        for statement in statements("sqlite"):
            if statement.split("(")[0].split()[-1] in ("sessions", "messages", "feedback") or "ON sessions" in \
                    statement or "ON messages" in statement or "ON feedback" in statement:
                conn.execute(statement)
        conn.execute("INSERT INTO sessions VALUES ('s1', 'web', NULL, 'it', '2025-05-01 12:00:00.000000', "
                     "'2025-05-01 12:00:00.000000', 0)")
    engine = make_engine(f"sqlite:///{db}")
    assert set(inspect(engine).get_table_names()) == {"sessions", "messages", "feedback"}
    upgrade(engine)
    assert schema_diffs(engine) == []
    with engine.connect() as conn:
        assert conn.execute(text("SELECT id FROM sessions")).scalars().all() == ["s1"]
    engine.dispose()


def test_every_path_gets_the_sqlite_pragmas(tmp_path):
    """The operator CLI path used to open its own engine without WAL, foreign keys or a busy timeout."""
    from sibyl.backoffice.accounts import Operators
    from sibyl.settings import Settings

    ops = Operators.from_settings(Settings(_env_file=None, data_dir=tmp_path, database_url=""))
    with ops.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
    assert current(ops.engine) == head()
    ops.engine.dispose()


def test_sibyl_db_commands(tmp_path, capsys, monkeypatch):
    from sibyl.cli import main

    monkeypatch.setenv("SIBYL_DATABASE_URL", "")
    assert main(["--data-dir", str(tmp_path), "db", "current"]) == 0
    assert "revision none (behind head" in capsys.readouterr().out
    assert main(["--data-dir", str(tmp_path), "db", "upgrade"]) == 0
    assert f"revision {head()} (head)" in capsys.readouterr().out
    assert main(["--data-dir", str(tmp_path), "db", "current"]) == 0
    assert f"revision {head()} (head)" in capsys.readouterr().out


def test_workers_starting_together_migrate_once(tmp_path):
    """Three processes upgrading one new database at once (what N workers do at start): the lock lets one
    create the tables and the others find them at head, with no error and one version row."""
    url = f"sqlite:///{tmp_path / 'sibyl.db'}"
    code = "import sys; from sibyl.db import make_engine, upgrade; print(upgrade(make_engine(sys.argv[1])))"
    procs = [subprocess.Popen([sys.executable, "-c", code, url], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, cwd=ROOT) for _ in range(3)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    assert [out.strip() for out, _err in outputs] == [head()] * 3
    engine = make_engine(url)
    assert schema_diffs(engine) == []
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [head()]
    engine.dispose()


def test_migrations_ship_in_the_package():
    """script_location is the package path, and pyproject's package-data carries the revision files."""
    import tomllib

    from sibyl.db import alembic_config

    assert alembic_config().get_main_option("script_location") == "sibyl:migrations"
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["sibyl"]
    shipped = {p for pattern in data for p in glob.glob(str(ROOT / "sibyl" / pattern))}
    assert {str(p) for p in (ROOT / "sibyl" / "migrations" / "versions").glob("*.py")} <= shipped
    assert str(ROOT / "sibyl" / "migrations" / "script.py.mako") in shipped
    assert INITIAL in {Path(p).name.split("_")[0] for p in shipped}


# --- PostgreSQL -------------------------------------------------------------------------------------

def _pg_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    assert found, "PostgreSQL is not installed (Debian's postgresql package: scripts/test.sh installs it)"
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """A throw-away cluster on a unix socket; run as a non-root user when we are root (initdb refuses root)."""
    bindir = _pg_bin()
    base = Path(tempfile.mkdtemp(prefix="sibyl-pg-"))
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    prefix: list[str] = []
    if os.geteuid() == 0:
        user = "postgres" if _user_exists("postgres") else "nobody"
        info = pwd.getpwnam(user)
        for path in (base, sock):
            os.chown(path, info.pw_uid, info.pw_gid)
        base.chmod(0o755)
        prefix = ["runuser", "-u", user, "--"]
    port = _free_port()
    log = base / "server.log"
    run = lambda *args: subprocess.run([*prefix, *args], capture_output=True, text=True, timeout=120)  # noqa: E731
    init = run(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "sibyl", "--no-sync", "-E", "UTF8")
    assert init.returncode == 0, init.stderr
    start = run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o",
                f"-k {sock} -p {port} -c listen_addresses='' -c fsync=off", "start")
    assert start.returncode == 0, start.stderr + (log.read_text() if log.exists() else "")
    try:
        yield f"postgresql+psycopg://sibyl@/{{db}}?host={sock}&port={port}"
    finally:
        run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(base, ignore_errors=True)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _new_database(template: str) -> str:
    name = "sibyl_" + uuid.uuid4().hex[:12]
    admin = make_engine(template.format(db="postgres")).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return template.format(db=name)


def test_fresh_postgresql_upgrade_equals_the_models(postgres):
    engine = make_engine(_new_database(postgres))
    assert current(engine) is None
    assert upgrade(engine) == head()
    assert schema_diffs(engine) == []
    assert set(inspect(engine).get_table_names()) == set(metadata().tables) | {"alembic_version"}
    engine.dispose()


def test_old_postgresql_database_is_stamped_and_upgraded_keeping_rows(postgres):
    url = _new_database(postgres)
    old = make_engine(url)
    build_old_database(old)
    assert current(old) is None
    old.dispose()
    check_old_rows_kept(url)


def test_concurrent_handoffs_open_one_case_on_postgresql(postgres):
    """The session-row lock that keeps two simultaneous handoffs to one case, on the production database."""
    from sibyl.backoffice.cases import Cases
    from sibyl.store import Store
    from tests.test_urp_handoff import open_together

    store = Store(_new_database(postgres))
    assert open_together(store, Cases(store.engine)) == [1] * 12
    store.engine.dispose()
