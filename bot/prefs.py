"""Per-chat preferences (the answer language fixed with /lingua, spoken replies with /voce), in the
conversation store's database.

A chat's session expires after idle time, but a language chosen with /lingua must not: it lives
in its own small table, keyed like the sessions (`telegram:<chat_id>`).
"""

from __future__ import annotations

from sqlalchemy.orm import sessionmaker

from sibyl.store import ChatPreference, Store, UnknownSession


class ChatPreferences:
    def __init__(self, store: Store) -> None:
        self.store = store  # its engine is migrated: telegram_chats is one of the store's tables
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
            opened = self.store.open_session(channel="telegram", external_key=key)
        except UnknownSession:  # pragma: no cover - open_session by key always returns a session
            return
        self.store.set_language(opened.session.id, language)

    def spoken_replies(self, key: str) -> bool:
        """Whether a voice question in this chat also gets a voice note (default on; /voce off turns it off)."""
        with self.Session() as db:
            row = db.get(ChatPreference, key)
            return row is None or row.spoken_replies is None or row.spoken_replies

    def set_spoken_replies(self, key: str, on: bool) -> None:
        with self.Session() as db:
            row = db.get(ChatPreference, key) or ChatPreference(key=key)
            row.spoken_replies = on
            db.add(row)
            db.commit()
