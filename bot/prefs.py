"""Per-chat preferences (the answer language fixed with /lingua), in the conversation store's database.

A chat's session expires after idle time, but a language chosen with /lingua must not: it lives
in its own small table, keyed like the sessions (`telegram:<chat_id>`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

from sibyl.store import Store, UnknownSession, utcnow


class _Base(DeclarativeBase):
    pass


class ChatPreference(_Base):
    __tablename__ = "telegram_chats"
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    language: Mapped[str | None] = mapped_column(String(2), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class ChatPreferences:
    def __init__(self, store: Store) -> None:
        self.store = store
        _Base.metadata.create_all(store.engine)
        self.Session = sessionmaker(store.engine, expire_on_commit=False)

    def language(self, key: str) -> str | None:
        with self.Session() as db:
            row = db.get(ChatPreference, key)
            return row.language if row else None

    def set_language(self, key: str, language: str | None) -> None:
        """Fix (or with None, release) the chat's answer language, and tag its current session with it."""
        with self.Session() as db:
            row = db.get(ChatPreference, key) or ChatPreference(key=key)
            row.language = language
            db.add(row)
            db.commit()
        try:
            session = self.store.open_session(channel="telegram", external_key=key)
        except UnknownSession:  # pragma: no cover - open_session by key always returns a session
            return
        self.store.set_language(session.id, language)
