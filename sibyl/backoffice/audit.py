"""The operator audit log and the unanswered questions operators have dealt with.

Same database as the conversation store, so a PostgreSQL deployment shares them across API replicas;
audit rows past SIBYL_AUDIT_RETENTION_DAYS go with the API's hourly purge.
"""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import JSON, Connection, DateTime, Integer, String, Text, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from sibyl.db import Base, utcnow


class AuditEntry(Base):
    __tablename__ = "operator_audit"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(48), index=True)
    detail: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)


class HandledQuestion(Base):
    """An unanswered question an operator has dealt with (it leaves the unanswered list)."""

    __tablename__ = "operator_handled_questions"
    message_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    handled_by: Mapped[str] = mapped_column(String(64))
    handled_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)


def record(db: Session, username: str, action: str, detail: dict | None, ip: str | None) -> None:
    """Add an audit row to `db`'s transaction (committed with the change it records)."""
    if detail is not None:
        detail = json.loads(json.dumps(detail, default=str))  # JSON-safe
    db.add(AuditEntry(username=username[:64], action=action, detail=detail, ip=ip, at=utcnow()))


def entries(sessions: sessionmaker, limit: int = 200, username: str | None = None,
            action: str | None = None) -> list[AuditEntry]:
    with sessions() as db:
        q = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
        if username:
            q = q.where(AuditEntry.username == username)
        if action:
            q = q.where(AuditEntry.action == action)
        return list(db.scalars(q).all())


def purge(conn: Connection, before: datetime) -> int:
    return conn.execute(delete(AuditEntry).where(AuditEntry.at < before)).rowcount or 0


def mark_handled(sessions: sessionmaker, message_ids: list[str], username: str, note: str | None = None) -> int:
    with sessions() as db:
        done = 0
        for mid in dict.fromkeys(message_ids):
            if db.get(HandledQuestion, mid) is None:
                db.add(HandledQuestion(message_id=mid, handled_by=username, note=note))
                done += 1
        db.commit()
        return done


def handled_ids(sessions: sessionmaker) -> set[str]:
    with sessions() as db:
        return set(db.scalars(select(HandledQuestion.message_id)).all())
