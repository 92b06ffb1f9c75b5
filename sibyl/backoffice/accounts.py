"""URP operator accounts, login sessions with CSRF tokens and lockout (audit rows: audit.py).

Tables live in the same database as the conversation store (one Base, one engine: sibyl/db.py), so a
PostgreSQL deployment shares operators and audit across API replicas.

Lockout is per (username, client address), not per username: five wrong passwords sent by an
anonymous client lock that client out of that name, never the real operator signing in from
another address (a per-username lock let anyone lock any known operator out, forever). Guessing
from many addresses is bounded by the per-address login throttle the web layer applies before any
hashing (SIBYL_OPERATOR_LOGIN_RATE_LIMIT) and by argon2's cost; at most
SIBYL_OPERATOR_LOGIN_CONCURRENCY hashes run at once, so a login flood cannot exhaust memory.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Boolean, DateTime, Engine, Integer, String, delete, select
from sqlalchemy.orm import Mapped, mapped_column, sessionmaker

from sibyl.backoffice import audit
from sibyl.backoffice.audit import AuditEntry
from sibyl.db import Base, make_engine, upgrade, utcnow

log = logging.getLogger(__name__)

USERNAME = re.compile(r"^[a-zA-Z0-9._-]{2,64}$")
MIN_PASSWORD = 8
ROLES = ("operator", "admin")


class Operator(Base):
    __tablename__ = "operators"
    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # 'operator' (cases, drafts, FAQs) or 'admin' (also documents, re-index, accounts, directory): issue 15.
    role: Mapped[str] = mapped_column(String(16), default="operator", server_default="operator")


class LoginState(Base):
    """Failed attempts per (username, client address), kept for unknown names too so lockout does not
    reveal who exists. A row older than the lockout period means nothing (its count restarts) and is
    purged, so unknown names cannot pile up rows."""

    __tablename__ = "operator_login_failures"  # was operator_login_state, keyed by username alone
    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    ip: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)


class OperatorSession(Base):
    __tablename__ = "operator_sessions"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)  # the cookie is never stored
    username: Mapped[str] = mapped_column(String(64), index=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime)


class OperatorError(ValueError):
    """Bad username or password when creating an account; the message is safe to show."""


class LockedOut(Exception):
    def __init__(self, until: datetime) -> None:
        super().__init__(f"locked until {until:%Y-%m-%d %H:%M} UTC")
        self.until = until


@dataclass
class LoginSession:
    token: str  # goes in the cookie
    username: str
    csrf: str
    expires_at: datetime


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def purge(engine, audit_before: datetime, login_state_before: datetime) -> tuple[int, int]:
    """Delete audit rows older than `audit_before` and login-state rows not touched since
    `login_state_before`; returns (audit rows, login rows) deleted. Called by Store.purge."""
    with engine.begin() as conn:
        audits = audit.purge(conn, audit_before)
        logins = conn.execute(delete(LoginState).where(LoginState.updated_at < login_state_before)).rowcount or 0
    if audits or logins:
        log.info("retention purge deleted %d operator audit rows and %d login-state rows", audits, logins)
    return audits, logins


class Operators:
    def __init__(self, engine, session_hours: float = 8, max_failures: int = 5, lockout_minutes: float = 15,
                 hash_concurrency: int = 2) -> None:
        self.engine = engine
        upgrade(engine)  # the schema is Alembic's (a no-op when the store already migrated this engine)
        self.Session = sessionmaker(engine, expire_on_commit=False)
        self.session_ttl = timedelta(hours=session_hours)
        self.max_failures = max_failures
        self.lockout = timedelta(minutes=lockout_minutes)
        self.hasher = PasswordHasher()
        # argon2 takes 64 MiB per hash: bound how many run at once, whoever calls (web, CLI, threads).
        self._hash_slots = threading.BoundedSemaphore(hash_concurrency)
        self._dummy_hash = self._hash(secrets.token_hex(16))

    @classmethod
    def from_settings(cls, settings, engine: Engine | None = None) -> Operators:
        if engine is None:
            engine = make_engine(settings.effective_database_url)
        return cls(engine, settings.operator_session_hours, settings.operator_max_failed_logins,
                   settings.operator_lockout_minutes, settings.operator_login_concurrency)

    def _hash(self, password: str) -> str:
        with self._hash_slots:
            return self.hasher.hash(password)

    # --- accounts --------------------------------------------------------------------------
    def add(self, username: str, password: str, replace: bool = False, role: str | None = None) -> None:
        """`role`: 'operator' or 'admin'; None keeps an existing account's role, and makes the first
        account an admin (someone must manage documents and accounts) and later ones operators."""
        if role is not None and role not in ROLES:
            raise OperatorError(f"role: one of {', '.join(ROLES)}")
        if not USERNAME.match(username or ""):
            raise OperatorError("username: 2-64 letters, digits, '.', '_' or '-'")
        if len(password or "") < MIN_PASSWORD:
            raise OperatorError(f"password: at least {MIN_PASSWORD} characters")
        with self.Session() as db:
            existing = db.get(Operator, username)
            if existing is not None and not replace:
                raise OperatorError(f"operator {username!r} already exists")
            if existing is None:
                first = db.scalars(select(Operator.username).limit(1)).first() is None
                db.add(Operator(username=username, password_hash=self._hash(password),
                                role=role or ("admin" if first else "operator")))
            else:
                existing.password_hash = self._hash(password)
                existing.active = True
                existing.role = role or existing.role
                db.execute(delete(OperatorSession).where(OperatorSession.username == username))
            db.execute(delete(LoginState).where(LoginState.username == username))
            db.commit()

    def role(self, username: str) -> str | None:
        """The account's role ('operator' / 'admin'), None for an unknown name."""
        with self.Session() as db:
            account = db.get(Operator, username)
            return account.role if account is not None else None

    def roles(self) -> dict[str, str]:
        with self.Session() as db:
            return {name: role for name, role in db.execute(select(Operator.username, Operator.role)).all()}

    def usernames(self) -> list[str]:
        with self.Session() as db:
            return list(db.scalars(select(Operator.username).order_by(Operator.username)).all())

    # --- login -----------------------------------------------------------------------------
    def login(self, username: str, password: str, ip: str | None = None) -> LoginSession | None:
        """A new session, or None for wrong credentials. Raises LockedOut while this client address is
        locked out of this name (blocking: run it in a thread, the hash takes ~0.1 s and 64 MiB)."""
        username = (username or "").strip()[:64]
        key = (ip or "unknown")[:64]
        now = utcnow()
        with self.Session() as db:
            state = db.get(LoginState, (username, key))
            if state and state.locked_until and state.locked_until > now:
                audit.record(db, username, "login_locked", None, ip)
                db.commit()
                raise LockedOut(state.locked_until)
            account = db.get(Operator, username)
            ok = self._verify(account.password_hash if account and account.active else None, password or "")
            if not ok:
                state = state or LoginState(username=username, ip=key, failures=0)
                expired_lock = state.locked_until is not None and state.locked_until <= now
                if expired_lock or (state.updated_at is not None and state.updated_at <= now - self.lockout):
                    state.failures, state.locked_until = 0, None  # an expired lock or old failures start over
                state.failures += 1
                state.updated_at = now
                locked = state.failures >= self.max_failures
                until = now + self.lockout
                if locked:
                    state.locked_until = until
                db.merge(state)
                audit.record(db, username, "login_failed", {"failures": state.failures, "locked": locked}, ip)
                db.commit()
                if locked:
                    raise LockedOut(until)
                return None
            assert account is not None  # _verify(None, ...) is never ok
            if self.hasher.check_needs_rehash(account.password_hash):
                account.password_hash = self._hash(password)
            if state:
                db.delete(state)
            token = secrets.token_urlsafe(32)
            session = OperatorSession(token_hash=_digest(token), username=username, csrf=secrets.token_urlsafe(32),
                                      created_at=now, expires_at=now + self.session_ttl)
            db.add(session)
            db.execute(delete(OperatorSession).where(OperatorSession.expires_at < now))
            audit.record(db, username, "login", None, ip)
            db.commit()
            return LoginSession(token, username, session.csrf, session.expires_at)

    def _verify(self, stored: str | None, password: str) -> bool:
        try:
            with self._hash_slots:
                if stored is None:
                    self.hasher.verify(self._dummy_hash, password)  # same work for unknown names
                    return False
                return self.hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def session(self, token: str | None) -> LoginSession | None:
        if not token:
            return None
        with self.Session() as db:
            row = db.get(OperatorSession, _digest(token))
            if row is None:
                return None
            if row.expires_at < utcnow():
                db.delete(row)
                db.commit()
                return None
            account = db.get(Operator, row.username)
            if account is None or not account.active:
                return None
            return LoginSession(token, row.username, row.csrf, row.expires_at)

    def logout(self, token: str, ip: str | None = None) -> None:
        with self.Session() as db:
            row = db.get(OperatorSession, _digest(token))
            if row is not None:
                audit.record(db, row.username, "logout", None, ip)
                db.delete(row)
                db.commit()

    @staticmethod
    def csrf_ok(session: LoginSession, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(session.csrf.encode(), str(token).encode())

    # --- audit -----------------------------------------------------------------------------
    # --- audit (sibyl/backoffice/audit.py), by the signed-in operator ----------------------------
    def audit(self, username: str, action: str, detail: dict | None = None, ip: str | None = None) -> None:
        with self.Session() as db:
            audit.record(db, username, action, detail, ip)
            db.commit()

    def audit_log(self, limit: int = 200, username: str | None = None, action: str | None = None) -> list[AuditEntry]:
        return audit.entries(self.Session, limit, username, action)

    def mark_handled(self, message_ids: list[str], username: str, note: str | None = None) -> int:
        return audit.mark_handled(self.Session, message_ids, username, note)

    def handled_ids(self) -> set[str]:
        return audit.handled_ids(self.Session)
