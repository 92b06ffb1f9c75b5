"""URP cases (issue 15): a citizen asks for a person, an operator works the case to a reply.

A case copies the whole conversation of its session when it is opened (sessions and their messages are
purged after SIBYL_RETENTION_DAYS; the case keeps what the citizen asked), with each follow-up's previous
question. Every change is a row in the case's history and an operator audit row, in the same
transaction. The citizen's contact (e-mail or Telegram chat) is kept only for SIBYL_CASE_RETENTION_DAYS:
the hourly purge blanks it afterwards (the citizen is told the period when consenting).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import JSON, Boolean, Date, DateTime, ForeignKey, Integer, String, Text, func, or_, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from sibyl.backoffice import audit
from sibyl.db import Base, utcnow
from sibyl.store import ChatSession

STATUSES = ("nuovo", "in_carico", "risposto", "chiuso")
OPEN = ("nuovo", "in_carico", "risposto")
MAX_NOTE = 4000
MAX_DRAFT = 20_000
MAX_SUBJECT = 300


class Case(Base):
    __tablename__ = "cases"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    session_id: Mapped[str] = mapped_column(String(64), index=True)  # no foreign key: sessions are purged first
    channel: Mapped[str] = mapped_column(String(16), default="web")
    language: Mapped[str] = mapped_column(String(2), default="it")
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    telegram_chat: Mapped[str | None] = mapped_column(String(64), nullable=True)
    consent_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    contact_until: Mapped[datetime] = mapped_column(DateTime, index=True)  # contact blanked after this
    question: Mapped[str] = mapped_column(Text, default="")  # the last question before the request
    status: Mapped[str] = mapped_column(String(16), default="nuovo", index=True)
    assignee: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    office_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    due_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    draft_subject: Mapped[str | None] = mapped_column(String(300), nullable=True)
    draft: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class CaseMessage(Base):
    """One line of the copied conversation; a follow-up question carries the question it followed."""

    __tablename__ = "case_messages"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    answered: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    previous_question: Mapped[str | None] = mapped_column(Text, nullable=True)
    at: Mapped[datetime] = mapped_column(DateTime)


class CaseEvent(Base):
    """The case's history: who changed what, when (detail: from/to values)."""

    __tablename__ = "case_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    username: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    detail: Mapped[dict | None] = mapped_column(JSON, nullable=True)


class CaseNote(Base):
    """An internal note: operators only, never sent to the citizen."""

    __tablename__ = "case_notes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    username: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)


class SentReply(Base):
    """What was sent to the citizen, how, to whom and when (kept with the case)."""

    __tablename__ = "case_replies"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    username: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))  # email | telegram
    recipient: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(300), default="")
    body: Mapped[str] = mapped_column(Text)


class CannedReply(Base):
    """A ready-made paragraph operators insert into replies (kept in the console)."""

    __tablename__ = "canned_replies"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    title: Mapped[str] = mapped_column(String(200))
    language: Mapped[str] = mapped_column(String(2), default="it")
    body: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class CaseError(ValueError):
    """A change that cannot be made; `key` is the message in prompts (operator/ui), `status` the HTTP one."""

    def __init__(self, key: str, status: int = 422) -> None:
        super().__init__(key)
        self.key = key
        self.status = status


class NoConversation(CaseError):
    def __init__(self) -> None:
        super().__init__("handoff_empty", 422)


@dataclass
class CaseView:
    """A case with everything its page shows."""

    case: Case
    thread: list[CaseMessage]
    events: list[CaseEvent]
    notes: list[CaseNote]
    replies: list[SentReply]

    def to_dict(self) -> dict[str, Any]:
        c = self.case
        return {"case_id": c.id, "number": c.number, "status": c.status, "channel": c.channel,
                "language": c.language, "question": c.question, "assignee": c.assignee, "office_id": c.office_id,
                "due_date": c.due_date.isoformat() if c.due_date else None, "created_at": c.created_at.isoformat(),
                "contact": c.email or (f"telegram:{c.telegram_chat}" if c.telegram_chat else None),
                "conversation": [{"role": m.role, "text": m.text, "answered": m.answered,
                                  "previous_question": m.previous_question, "at": m.at.isoformat()}
                                 for m in self.thread],
                "replies": [{"channel": r.channel, "recipient": r.recipient, "at": r.at.isoformat(),
                             "by": r.username} for r in self.replies]}


def clean(text: str | None) -> str:
    """Free text as it may be stored anywhere: no NUL (PostgreSQL refuses it in text columns)."""
    return (text or "").replace("\x00", "")


def _thread(messages) -> list[CaseMessage]:
    """The session's messages as case lines: a question whose answer searched for something else (a
    resolved follow-up) carries the question before it."""
    out: list[CaseMessage] = []
    answers = {m.reply_to: m for m in messages if m.role == "assistant" and m.reply_to}
    previous: str | None = None
    for m in messages:
        prev = None
        if m.role == "user":
            answer = answers.get(m.id)
            query = answer.retrieval_query if answer is not None else None
            if previous is not None and query and " ".join(query.split()) != " ".join(m.text.split()):
                prev = previous
            previous = m.text
        out.append(CaseMessage(role=m.role, text=m.text, answered=m.answered if m.role == "assistant" else None,
                               previous_question=prev, at=m.created_at))
    return out


def conversation_of(store, message_id: str | None = None, feedback_id: int | None = None) -> list[CaseMessage]:
    """The conversation around a stored message or a feedback row, as a case shows it (unanswered and feedback
    pages link here); [] when it is gone (purged or unknown)."""
    from sibyl.store import Feedback

    if feedback_id is not None:
        with store.Session() as db:
            row = db.get(Feedback, feedback_id)
            message_id = row.message_id if row is not None else None
    message = store.get_message(message_id) if message_id else None
    return _thread(store.messages(message.session_id)) if message is not None else []


class Cases:
    def __init__(self, engine, contact_days: int = 365) -> None:
        self.Session = sessionmaker(engine, expire_on_commit=False)
        self.contact_days = contact_days

    # --- opening ---------------------------------------------------------------------------------
    def open(self, session_id: str, messages, channel: str, language: str, email: str | None = None,
             telegram_chat: str | None = None, ip: str | None = None) -> tuple[Case, bool]:
        """A new case for the session, or its open case with the thread refreshed; (case, created).
        `messages`: the session's stored messages, oldest first (NoConversation when there is no question)."""
        if not any(m.role == "user" for m in messages):
            raise NoConversation()
        question = next(m.text for m in reversed(messages) if m.role == "user")
        now = utcnow()
        who = f"citizen:{channel}"
        with self.Session() as db:
            # Two handoffs of one conversation at once (a double click, the web chat and Telegram) must find
            # each other's case: a no-op write to the session row first takes the write lock (SQLite) or the
            # row lock (PostgreSQL) before the look-up, so the second waits and then sees the first's case.
            db.execute(update(ChatSession).where(ChatSession.id == session_id)
                       .values(last_seen_at=ChatSession.last_seen_at))
            case = db.scalars(select(Case).where(Case.session_id == session_id, Case.status.in_(OPEN))
                              .order_by(Case.id.desc()).limit(1)).first()
            created = case is None
            if case is None:
                case = Case(number="", session_id=session_id, channel=channel, status="nuovo", created_at=now,
                            language="it", consent_at=now, contact_until=now, question=question, updated_at=now)
                db.add(case)
                db.flush()
                case.number = f"URP-{now.year}-{case.id:05d}"
            else:
                db.query(CaseMessage).filter(CaseMessage.case_id == case.id).delete()
            case.language = language if language in ("it", "en") else "it"
            case.email = email or case.email
            case.telegram_chat = telegram_chat or case.telegram_chat
            case.consent_at = now
            case.contact_until = now + timedelta(days=self.contact_days)
            case.question = question
            case.updated_at = now
            for line in _thread(messages):
                line.case_id = case.id
                db.add(line)
            self._event(db, case, who, "created" if created else "requested_again",
                        {"channel": channel, "messages": len(messages)}, ip)
            db.commit()
            return case, created

    # --- reading ---------------------------------------------------------------------------------
    def get(self, case_id: int) -> CaseView | None:
        with self.Session() as db:
            case = db.get(Case, case_id)
            if case is None:
                return None

            def rows(model, order):
                return list(db.scalars(select(model).where(model.case_id == case_id).order_by(order)).all())

            return CaseView(case, rows(CaseMessage, CaseMessage.id), rows(CaseEvent, CaseEvent.id),
                            rows(CaseNote, CaseNote.id), rows(SentReply, SentReply.id))

    def find(self, status: str | None = None, assignee: str | None = None, office_id: int | None = None,
             q: str | None = None, open_only: bool = False, limit: int = 500) -> list[Case]:
        with self.Session() as db:
            query = select(Case).order_by(Case.created_at.desc()).limit(limit)
            if status:
                query = query.where(Case.status == status)
            elif open_only:
                query = query.where(Case.status.in_(OPEN))
            assignee, q = clean(assignee) or None, clean(q) or None
            if assignee == "-":
                query = query.where(Case.assignee.is_(None))
            elif assignee:
                query = query.where(Case.assignee == assignee)
            if office_id is not None:
                query = query.where(Case.office_id == office_id)
            if q:
                like = f"%{q.strip()[:200]}%"
                thread = select(CaseMessage.case_id).where(CaseMessage.text.ilike(like))
                query = query.where(or_(Case.number.ilike(like), Case.question.ilike(like), Case.email.ilike(like),
                                        Case.id.in_(thread)))
            return list(db.scalars(query).all())

    def counts(self) -> dict[str, int]:
        with self.Session() as db:
            rows = db.execute(select(Case.status, func.count()).group_by(Case.status)).all()
        found = {status: int(n) for status, n in rows}
        return {s: found.get(s, 0) for s in STATUSES}

    def for_session(self, session_id: str) -> list[Case]:
        with self.Session() as db:
            return list(db.scalars(select(Case).where(Case.session_id == session_id)).all())

    # --- changes (each one: a history row + an audit row, one transaction) --------------------------
    def _event(self, db: Session, case: Case, username: str, action: str, detail: dict | None,
               ip: str | None) -> None:
        db.add(CaseEvent(case_id=case.id, at=utcnow(), username=username[:64], action=action, detail=detail))
        audit.record(db, username, f"case_{action}", {"case": case.number, **(detail or {})}, ip)
        case.updated_at = utcnow()

    def _change(self, case_id: int, username: str, ip: str | None, fn) -> Case:
        with self.Session() as db:
            case = db.get(Case, case_id)
            if case is None:
                raise CaseError("case_not_found", 404)
            fn(db, case)
            db.commit()
            return case

    def update(self, case_id: int, username: str, ip: str | None = None, *, status: str | None = None,
               assignee: str | None = None, office_id: int | None = None, due_date: date | None = None,
               clear_due: bool = False) -> Case:
        """Change status / assignee ('' = nobody) / office (0 = none) / due date; one history row per change."""
        if status is not None and status not in STATUSES:
            raise CaseError("case_bad_status")

        def apply(db: Session, case: Case) -> None:
            changes: list[tuple[str, str, Any, Any]] = []
            if status is not None and status != case.status:
                changes.append(("reopened" if case.status == "chiuso" else "status", "status", case.status, status))
            if assignee is not None and (assignee or None) != case.assignee:
                changes.append(("assigned", "assignee", case.assignee, assignee or None))
            if office_id is not None and (office_id or None) != case.office_id:
                changes.append(("office", "office_id", case.office_id, office_id or None))
            if clear_due and case.due_date is not None:
                changes.append(("due_date", "due_date", case.due_date, None))
            elif due_date is not None and due_date != case.due_date:
                changes.append(("due_date", "due_date", case.due_date, due_date))
            for action, attr, before, after in changes:
                setattr(case, attr, after)
                self._event(db, case, username, action, {"from": _plain(before), "to": _plain(after)}, ip)

        return self._change(case_id, username, ip, apply)

    def add_note(self, case_id: int, username: str, text: str, ip: str | None = None) -> Case:
        body = clean(text).strip()
        if not body:
            raise CaseError("case_note_empty")
        if len(body) > MAX_NOTE:
            raise CaseError("case_note_too_long", 413)

        def apply(db: Session, case: Case) -> None:
            db.add(CaseNote(case_id=case.id, at=utcnow(), username=username[:64], text=body))
            self._event(db, case, username, "note", {"chars": len(body)}, ip)

        return self._change(case_id, username, ip, apply)

    def save_draft(self, case_id: int, username: str, subject: str, body: str, ip: str | None = None) -> Case:
        subject, body = clean(subject), clean(body)
        if len(body or "") > MAX_DRAFT or len(subject or "") > MAX_SUBJECT:
            raise CaseError("case_draft_too_long", 413)

        def apply(db: Session, case: Case) -> None:
            case.draft_subject, case.draft = (subject or "").strip(), body or ""
            self._event(db, case, username, "draft_saved", {"chars": len(body or "")}, ip)
            if case.status == "nuovo":
                self._event(db, case, username, "status", {"from": "nuovo", "to": "in_carico"}, ip)
                case.status = "in_carico"

        return self._change(case_id, username, ip, apply)

    def record_sent(self, case_id: int, username: str, channel: str, recipient: str, subject: str, body: str,
                    ip: str | None = None) -> Case:
        subject, body = clean(subject), clean(body)

        def apply(db: Session, case: Case) -> None:
            db.add(SentReply(case_id=case.id, at=utcnow(), username=username[:64], channel=channel,
                             recipient=recipient, subject=subject[:300], body=body))
            case.draft_subject, case.draft = subject, body
            self._event(db, case, username, "sent", {"channel": channel, "chars": len(body)}, ip)
            if case.status != "risposto":
                self._event(db, case, username, "status", {"from": case.status, "to": "risposto"}, ip)
                case.status = "risposto"

        return self._change(case_id, username, ip, apply)

    # --- canned replies ---------------------------------------------------------------------------
    def canned(self, language: str | None = None) -> list[CannedReply]:
        with self.Session() as db:
            q = select(CannedReply).order_by(CannedReply.title)
            if language:
                q = q.where(CannedReply.language == language)
            return list(db.scalars(q).all())

    def add_canned(self, title: str, body: str, language: str, username: str, ip: str | None = None) -> CannedReply:
        title, body = " ".join(clean(title).split()), clean(body).strip()
        if not title or not body:
            raise CaseError("canned_empty")
        if len(title) > 200 or len(body) > MAX_NOTE:
            raise CaseError("canned_too_long", 413)
        with self.Session() as db:
            row = CannedReply(title=title, body=body, language=language if language in ("it", "en") else "it",
                              created_by=username[:64], created_at=utcnow())
            db.add(row)
            audit.record(db, username, "canned_added", {"title": title}, ip)
            db.commit()
            return row

    def delete_canned(self, canned_id: int, username: str, ip: str | None = None) -> bool:
        with self.Session() as db:
            row = db.get(CannedReply, canned_id)
            if row is None:
                return False
            audit.record(db, username, "canned_removed", {"title": row.title}, ip)
            db.delete(row)
            db.commit()
            return True

    # --- retention ---------------------------------------------------------------------------------
    def purge_contacts(self, now: datetime | None = None) -> int:
        """Blank the e-mail address / chat id of cases past their contact retention; returns how many."""
        now = now or utcnow()
        with self.Session() as db:
            result = db.execute(update(Case).where(Case.contact_until < now,
                                                   or_(Case.email.is_not(None), Case.telegram_chat.is_not(None)))
                                .values(email=None, telegram_chat=None))
            db.commit()
            return int(getattr(result, "rowcount", 0) or 0)


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value
