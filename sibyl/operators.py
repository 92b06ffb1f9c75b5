"""URP operator accounts, login sessions with CSRF tokens, lockout and the audit log.

Tables live in the same database as the conversation store (own metadata, same engine), so a
PostgreSQL deployment shares operators and audit across API replicas.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import JSON, Boolean, DateTime, Integer, String, Text, create_engine, delete, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

from sibyl.store import utcnow

USERNAME = re.compile(r"^[a-zA-Z0-9._-]{2,64}$")
MIN_PASSWORD = 8


class OperatorBase(DeclarativeBase):
    pass


class Operator(OperatorBase):
    __tablename__ = "operators"
    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class LoginState(OperatorBase):
    """Failed attempts per username, kept for unknown names too so lockout does not reveal who exists."""

    __tablename__ = "operator_login_state"
    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class OperatorSession(OperatorBase):
    __tablename__ = "operator_sessions"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)  # the cookie is never stored
    username: Mapped[str] = mapped_column(String(64), index=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime)


class AuditEntry(OperatorBase):
    __tablename__ = "operator_audit"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(48), index=True)
    detail: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)


class HandledQuestion(OperatorBase):
    """An unanswered question an operator has dealt with (it leaves the unanswered list)."""

    __tablename__ = "operator_handled_questions"
    message_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    handled_by: Mapped[str] = mapped_column(String(64))
    handled_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)


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


class Operators:
    def __init__(self, engine, session_hours: float = 8, max_failures: int = 5, lockout_minutes: float = 15) -> None:
        self.engine = engine
        OperatorBase.metadata.create_all(engine)
        self.Session = sessionmaker(engine, expire_on_commit=False)
        self.session_ttl = timedelta(hours=session_hours)
        self.max_failures = max_failures
        self.lockout = timedelta(minutes=lockout_minutes)
        self.hasher = PasswordHasher()
        self._dummy_hash = self.hasher.hash(secrets.token_hex(16))

    @classmethod
    def from_settings(cls, settings, engine=None) -> "Operators":
        if engine is None:
            url = settings.effective_database_url
            if url.startswith("sqlite:///"):
                from pathlib import Path

                Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, connect_args={"check_same_thread": False} if url.startswith("sqlite") else {})
        return cls(engine, settings.operator_session_hours, settings.operator_max_failed_logins,
                   settings.operator_lockout_minutes)

    # --- accounts --------------------------------------------------------------------------
    def add(self, username: str, password: str, replace: bool = False) -> None:
        if not USERNAME.match(username or ""):
            raise OperatorError("username: 2-64 letters, digits, '.', '_' or '-'")
        if len(password or "") < MIN_PASSWORD:
            raise OperatorError(f"password: at least {MIN_PASSWORD} characters")
        with self.Session() as db:
            existing = db.get(Operator, username)
            if existing is not None and not replace:
                raise OperatorError(f"operator {username!r} already exists")
            if existing is None:
                db.add(Operator(username=username, password_hash=self.hasher.hash(password)))
            else:
                existing.password_hash = self.hasher.hash(password)
                existing.active = True
                db.execute(delete(OperatorSession).where(OperatorSession.username == username))
            db.execute(delete(LoginState).where(LoginState.username == username))
            db.commit()

    def usernames(self) -> list[str]:
        with self.Session() as db:
            return list(db.scalars(select(Operator.username).order_by(Operator.username)).all())

    # --- login -----------------------------------------------------------------------------
    def login(self, username: str, password: str, ip: str | None = None) -> LoginSession | None:
        """A new session, or None for wrong credentials. Raises LockedOut while the name is locked."""
        username = (username or "").strip()[:64]
        now = utcnow()
        with self.Session() as db:
            state = db.get(LoginState, username)
            if state and state.locked_until and state.locked_until > now:
                self._audit(db, username, "login_locked", None, ip)
                db.commit()
                raise LockedOut(state.locked_until)
            account = db.get(Operator, username)
            ok = self._verify(account.password_hash if account and account.active else None, password or "")
            if not ok:
                state = state or LoginState(username=username, failures=0)
                if state.locked_until and state.locked_until <= now:
                    state.failures, state.locked_until = 0, None
                state.failures += 1
                locked = state.failures >= self.max_failures
                if locked:
                    state.locked_until = now + self.lockout
                db.merge(state)
                self._audit(db, username, "login_failed", {"failures": state.failures, "locked": locked}, ip)
                db.commit()
                if locked:
                    raise LockedOut(state.locked_until)
                return None
            if self.hasher.check_needs_rehash(account.password_hash):
                account.password_hash = self.hasher.hash(password)
            if state:
                db.delete(state)
            token = secrets.token_urlsafe(32)
            session = OperatorSession(token_hash=_digest(token), username=username, csrf=secrets.token_urlsafe(32),
                                      created_at=now, expires_at=now + self.session_ttl)
            db.add(session)
            db.execute(delete(OperatorSession).where(OperatorSession.expires_at < now))
            self._audit(db, username, "login", None, ip)
            db.commit()
            return LoginSession(token, username, session.csrf, session.expires_at)

    def _verify(self, stored: str | None, password: str) -> bool:
        try:
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
                self._audit(db, row.username, "logout", None, ip)
                db.delete(row)
                db.commit()

    @staticmethod
    def csrf_ok(session: LoginSession, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(session.csrf.encode(), str(token).encode())

    # --- audit -----------------------------------------------------------------------------
    @staticmethod
    def _audit(db, username: str, action: str, detail: dict | None, ip: str | None) -> None:
        if detail is not None:
            detail = json.loads(json.dumps(detail, default=str))  # JSON-safe
        db.add(AuditEntry(username=username[:64], action=action, detail=detail, ip=ip, at=utcnow()))

    def audit(self, username: str, action: str, detail: dict | None = None, ip: str | None = None) -> None:
        with self.Session() as db:
            self._audit(db, username, action, detail, ip)
            db.commit()

    def audit_log(self, limit: int = 200, username: str | None = None, action: str | None = None) -> list[AuditEntry]:
        with self.Session() as db:
            q = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
            if username:
                q = q.where(AuditEntry.username == username)
            if action:
                q = q.where(AuditEntry.action == action)
            return list(db.scalars(q).all())

    # --- handled unanswered questions --------------------------------------------------------
    def mark_handled(self, message_ids: list[str], username: str, note: str | None = None) -> int:
        with self.Session() as db:
            done = 0
            for mid in dict.fromkeys(message_ids):
                if db.get(HandledQuestion, mid) is None:
                    db.add(HandledQuestion(message_id=mid, handled_by=username, note=note))
                    done += 1
            db.commit()
            return done

    def handled_ids(self) -> set[str]:
        with self.Session() as db:
            return set(db.scalars(select(HandledQuestion.message_id)).all())
