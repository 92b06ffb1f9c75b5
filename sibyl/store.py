"""Conversation store (SQLAlchemy): sessions, messages and feedback shared by every channel.

SQLite in the data directory by default; SIBYL_DATABASE_URL can point to PostgreSQL so several
API replicas share one store. The schema is Alembic's (sibyl/db.py, sibyl/migrations/), upgraded on start.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    JSON,
    Boolean,
    CursorResult,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from sibyl.db import Base, make_engine, new_id, upgrade, utcnow


class ChatSession(Base):
    __tablename__ = "sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    channel: Mapped[str] = mapped_column(String(16), default="web")
    external_key: Mapped[str | None] = mapped_column(String(128), index=True, nullable=True)
    language: Mapped[str | None] = mapped_column(String(2), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    expired: Mapped[bool] = mapped_column(Boolean, default=False)


class Message(Base):
    __tablename__ = "messages"
    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(16))  # "user" | "assistant"
    channel: Mapped[str] = mapped_column(String(16), default="web")
    text: Mapped[str] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(String(2), nullable=True)
    answered: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    intent: Mapped[str | None] = mapped_column(String(16), nullable=True)
    mode: Mapped[str | None] = mapped_column(String(16), nullable=True)
    retrieval_query: Mapped[str | None] = mapped_column(Text, nullable=True)
    sources: Mapped[list | None] = mapped_column(JSON, nullable=True)
    reply_to: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)


class Feedback(Base):
    """A vote on an answer. `voter` ('telegram:<user id>', 'web:<session id>') has one current vote per answer
    (migration 0006); rows from before it have none."""

    __tablename__ = "feedback"
    __table_args__ = (Index("uq_feedback_message_voter", "message_id", "voter", unique=True),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    message_id: Mapped[str] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(16), default="web")
    rating: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    reviewed: Mapped[bool] = mapped_column(Boolean, default=False)
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    reviewed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    voter: Mapped[str | None] = mapped_column(String(128), nullable=True)


class ChatPreference(Base):
    """A Telegram chat's answer language fixed with /lingua (and /voce): unlike its sessions, it never expires."""

    __tablename__ = "telegram_chats"
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    language: Mapped[str | None] = mapped_column(String(2), nullable=True)
    # /voce on|off (issue 16); None = the default: a voice question also gets a spoken answer.
    spoken_replies: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


@dataclass(frozen=True)
class OpenedSession:
    """What open_session found or made; `new` means not stored yet (add_exchange stores it)."""

    session: ChatSession
    new: bool = False


class UnknownSession(LookupError):
    """The session id does not exist or has expired."""


class UnknownMessage(LookupError):
    """The message id does not exist in that session or is not an answer."""


_INSERT_SESSION = insert(ChatSession)
_INSERT_MESSAGE = insert(Message)


def _row(obj: Base) -> dict[str, Any]:
    """An ORM object's column values, for a Core insert."""
    return {column.key: getattr(obj, column.key) for column in obj.__table__.columns}


class Store:
    def __init__(self, url: str, idle_minutes: int = 60, retention_days: int = 30, audit_retention_days: int = 365,
                 login_state_minutes: float = 15) -> None:
        self.engine = make_engine(url)
        upgrade(self.engine)  # Alembic to head under a lock (an old create_all database is stamped first)
        self.Session = sessionmaker(self.engine, expire_on_commit=False)
        self.idle = timedelta(minutes=idle_minutes)
        self.retention = timedelta(days=retention_days)
        self.audit_retention = timedelta(days=audit_retention_days)
        self.login_state_ttl = timedelta(minutes=login_state_minutes)

    @classmethod
    def from_settings(cls, settings) -> Store:
        return cls(settings.effective_database_url, settings.session_idle_minutes, settings.retention_days,
                   settings.audit_retention_days, settings.operator_lockout_minutes)

    # --- sessions ------------------------------------------------------------------------
    def _active(self, db: Session, session: ChatSession | None) -> ChatSession | None:
        if session is None or session.expired:
            return None
        if utcnow() - session.last_seen_at > self.idle:
            session.expired = True
            db.commit()
            return None
        return session

    def open_session(self, session_id: str | None = None, channel: str = "web",
                     external_key: str | None = None, persist_new: bool = True) -> OpenedSession:
        """An existing active session (by id or external key such as a Telegram chat), or a new one.

        With persist_new=False a new session is returned unsaved (`new=True`); add_exchange stores it
        in the same transaction as its first exchange (one commit instead of two).
        """
        with self.Session() as db:
            if session_id is not None:
                found = self._active(db, db.get(ChatSession, session_id))
                if found is None:
                    raise UnknownSession(session_id)
                return OpenedSession(found)
            if external_key is not None:
                rows = db.scalars(select(ChatSession).where(ChatSession.external_key == external_key,
                                                            ChatSession.expired.is_(False))).all()
                for row in rows:
                    if self._active(db, row) is not None:
                        return OpenedSession(row)
            now = utcnow()
            session = ChatSession(id=new_id(), channel=channel, external_key=external_key, created_at=now,
                                  last_seen_at=now, expired=False)
            if persist_new:
                db.add(session)
                db.commit()
            return OpenedSession(session, new=not persist_new)

    def set_language(self, session_id: str, language: str | None) -> None:
        with self.Session() as db:
            session = db.get(ChatSession, session_id)
            if session is not None:
                session.language = language
                db.commit()

    def get_session(self, session_id: str) -> ChatSession | None:
        with self.Session() as db:
            return db.get(ChatSession, session_id)

    # --- messages ------------------------------------------------------------------------
    def add_exchange(self, session_id: str, channel: str, question: str, answer: dict,
                     new_session: ChatSession | None = None) -> tuple[str, str]:
        """Store the question and the answer together, so a crash never keeps one without the other; returns
        their message ids.

        Core statements on plain rows in one transaction, not the ORM's unit of work or ORM objects: this
        runs on every answer, and that machinery cost more CPU than the writes themselves (issue 18).
        """
        now = utcnow()
        language = answer.get("language")
        user_id, bot_id = new_id(), new_id()
        common = {"session_id": session_id, "channel": channel, "language": language}
        rows = [
            {**common, "id": user_id, "role": "user", "text": question, "answered": None, "intent": None,
             "mode": None, "retrieval_query": None, "sources": None, "reply_to": None, "created_at": now},
            {**common, "id": bot_id, "role": "assistant", "text": answer["answer"], "answered": answer.get("answered"),
             "intent": answer.get("intent"), "mode": answer.get("mode"),
             "retrieval_query": answer.get("retrieval_query") or question, "sources": answer.get("sources"),
             "reply_to": user_id, "created_at": now + timedelta(microseconds=1)},
        ]
        with self.engine.begin() as conn:
            if new_session is not None:
                new_session.last_seen_at = now
                new_session.language = language or new_session.language
                conn.execute(_INSERT_SESSION, [_row(new_session)])
            else:
                seen: dict[str, Any] = {"last_seen_at": now}
                if language:
                    seen["language"] = language
                conn.execute(update(ChatSession).where(ChatSession.id == session_id).values(**seen))
            conn.execute(_INSERT_MESSAGE, rows)
        return user_id, bot_id

    def recent_answers(self, session_id: str, turns: int) -> list[Message]:
        """The last assistant messages, oldest first (their retrieval_query is the topic they answered)."""
        with self.Session() as db:
            rows = db.scalars(select(Message).where(Message.session_id == session_id, Message.role == "assistant")
                              .order_by(Message.created_at.desc()).limit(turns)).all()
            return list(reversed(rows))

    def get_message(self, message_id: str) -> Message | None:
        with self.Session() as db:
            return db.get(Message, message_id)

    def messages(self, session_id: str) -> list[Message]:
        with self.Session() as db:
            return list(db.scalars(select(Message).where(Message.session_id == session_id)
                                   .order_by(Message.created_at)).all())

    # --- feedback ------------------------------------------------------------------------
    def add_feedback(self, session_id: str, message_id: str, rating: int, comment: str | None = None,
                     channel: str = "web", voter: str | None = None) -> Feedback:
        """Store a vote. With a `voter`, a second vote on the same answer changes the first (rating, and the
        comment when one is given) instead of adding a row; a changed vote is to be reviewed again."""
        if rating not in (1, -1):
            raise ValueError("rating must be 1 or -1")
        for attempt in range(2):  # a concurrent first vote by the same voter: the second try updates it
            with self.Session() as db:
                if db.get(ChatSession, session_id) is None:
                    raise UnknownSession(session_id)
                message = db.get(Message, message_id)
                if message is None or message.session_id != session_id or message.role != "assistant":
                    raise UnknownMessage(message_id)
                fb = None if voter is None else db.scalars(select(Feedback).where(
                    Feedback.message_id == message_id, Feedback.voter == voter)).first()
                if fb is None:
                    fb = Feedback(session_id=session_id, message_id=message_id, rating=rating, comment=comment,
                                  channel=channel, voter=voter)
                    db.add(fb)
                else:
                    if fb.rating != rating:
                        fb.comment = None  # a reason given for the other vote no longer applies
                    fb.rating, fb.created_at, fb.reviewed = rating, utcnow(), False
                    fb.comment = comment if comment is not None else fb.comment
                try:
                    db.commit()
                except IntegrityError:
                    if attempt:
                        raise
                    continue
                return fb
        raise AssertionError("unreachable")  # pragma: no cover

    def comment_last_vote(self, voter: str, external_key: str, comment: str) -> Feedback | None:
        """Attach a reason to the voter's latest 👎 in a conversation (a Telegram chat's follow-up prompt)."""
        with self.Session() as db:
            fb = db.scalars(select(Feedback).join(ChatSession, ChatSession.id == Feedback.session_id)
                            .where(Feedback.voter == voter, Feedback.rating == -1,
                                   ChatSession.external_key == external_key)
                            .order_by(Feedback.created_at.desc()).limit(1)).first()
            if fb is None:
                return None
            fb.comment, fb.reviewed = comment, False
            db.commit()
            return fb

    def feedback(self, rating: int | None = None) -> list[Feedback]:
        with self.Session() as db:
            q = select(Feedback).order_by(Feedback.created_at.desc())
            if rating is not None:
                q = q.where(Feedback.rating == rating)
            return list(db.scalars(q).all())

    # --- retention -----------------------------------------------------------------------
    def purge(self, now: datetime | None = None) -> int:
        """Delete messages (and their feedback) older than the retention period; returns messages deleted.
        Operator audit rows past their own retention and stale login-state rows (which hold client
        addresses, also of unknown names) go in the same run, so one timer in the API purges everything."""
        from sibyl.backoffice import accounts  # the back office builds on this module
        from sibyl.backoffice.cases import Cases

        now = now or utcnow()
        accounts.purge(self.engine, now - self.audit_retention, now - self.login_state_ttl)
        Cases(self.engine).purge_contacts(now)  # a case's e-mail / chat id past SIBYL_CASE_RETENTION_DAYS
        cutoff = now - self.retention
        with self.Session() as db:
            old = select(Message.id).where(Message.created_at < cutoff)
            db.execute(delete(Feedback).where(Feedback.message_id.in_(old)))
            # A DELETE gives a CursorResult (with rowcount); Session.execute is typed as the general Result.
            result = cast(CursorResult[Any], db.execute(delete(Message).where(Message.created_at < cutoff)))
            db.execute(delete(ChatSession).where(ChatSession.last_seen_at < cutoff))
            db.commit()
            return result.rowcount or 0
