"""Verified answers (the URP's FAQ) and blocked passages (issue 15, item 5).

An operator writes or corrects an answer with its sources (from a group of unanswered questions, a 👎, a
case or from scratch); once approved and until its expiry date it is served to citizens whose question
matches one of its wordings. Matching is deliberately strict, because a wrong verified answer is worse
than the ordinary pipeline: the new question's content words must all be known to the entry (its
wordings, or question-frame words such as "orari", "come fare"), cover most of one wording, and its e5
similarity to that wording must pass SIBYL_FAQ_MATCH_THRESHOLD. A blocked passage is left out of
retrieval (the conversation service passes the ids in `Filters.exclude`) until it is unblocked.

Domain logic only (no HTML): the console is api/operator/faq.py. Every change is audited in the same
transaction as the change.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import JSON, Date, DateTime, Engine, Integer, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column, sessionmaker

import prompts
from retrieval.answer import Answer, Source, source_label
from retrieval.retriever import Filters
from sibyl.backoffice import audit
from sibyl.backoffice.reports import signature
from sibyl.db import Base, upgrade, utcnow

log = logging.getLogger(__name__)

STATUSES = ("bozza", "approvata", "scaduta", "ritirata")
MAX_QUESTION = 500
MAX_VARIANTS = 20
MAX_ANSWER = 4000
MAX_REASON = 500
MAX_SOURCES = 8
MIN_COVERAGE = 0.6  # share of a wording's content words the new question must carry
# Words that frame a question rather than name its subject ("a che ora", "come faccio a", "what are the
# hours"): a new question may add them without changing what it asks. Stemmed like every signature.
FRAME_WORDS = signature(
    "ora ore orari orario quando dove modo maniera fare faccio avere devo dovere potere posso sapere volere "
    "voglio chiedere richiedere ottenere bisogna serve occorre possibile informazioni info procedura apertura "
    "aperto aperta time hours when where way do get need know want ask possible information please can could "
    "would opening")
ROME = ZoneInfo("Europe/Rome")  # the City's calendar: expiry dates and the date shown to citizens
PASSAGE_ID = re.compile(r"^[\w.:#§/+\-]{1,300}$")


def today() -> date:
    return datetime.now(ROME).date()


class FaqError(ValueError):
    """Bad input for a verified answer or a block; `key` names the console text, the message is safe to show."""

    def __init__(self, key: str, message: str, code: int = 422) -> None:
        super().__init__(message)
        self.key, self.code = key, code


class VerifiedAnswer(Base):
    __tablename__ = "verified_answers"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    question: Mapped[str] = mapped_column(String(MAX_QUESTION))
    variants: Mapped[list] = mapped_column(JSON, default=list)  # other wordings, any language
    answer_it: Mapped[str] = mapped_column(Text)
    answer_en: Mapped[str | None] = mapped_column(Text, nullable=True)
    sources: Mapped[list] = mapped_column(JSON, default=list)  # passage ids
    status: Mapped[str] = mapped_column(String(16), default="bozza", index=True)
    origin: Mapped[str | None] = mapped_column(String(200), nullable=True)  # what it was made from (from=...)
    author: Mapped[str] = mapped_column(String(64))
    approver: Mapped[str | None] = mapped_column(String(64), nullable=True)
    approved_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    expires_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    def effective_status(self, on: date | None = None) -> str:
        """An approved answer past its expiry date is expired, whether or not anyone marked it."""
        on = on or today()
        if self.status == "approvata" and self.expires_on is not None and self.expires_on < on:
            return "scaduta"
        return self.status

    def wordings(self) -> list[str]:
        return [self.question, *(self.variants or [])]


class BlockedPassage(Base):
    __tablename__ = "blocked_passages"
    passage_id: Mapped[str] = mapped_column(String(300), primary_key=True)
    reason: Mapped[str] = mapped_column(Text)
    blocked_by: Mapped[str] = mapped_column(String(64))
    blocked_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


@dataclass
class FaqForm:
    """A verified answer as typed in the console, checked (`parse`) before anything is stored."""

    question: str
    variants: list[str]
    answer_it: str
    answer_en: str | None
    sources: list[str]
    expires_on: date | None
    origin: str | None = None

    @classmethod
    def parse(cls, question: str, variants: str, answer_it: str, answer_en: str, sources: str, expires_on: str,
              origin: str = "", known: Callable[[str], bool] | None = None) -> FaqForm:
        """Raises FaqError for empty or oversize fields, a bad date or an unknown passage id."""
        question = _clean(question)
        if not question:
            raise FaqError("faq_question_missing", "the question is empty")
        if len(question) > MAX_QUESTION:
            raise FaqError("faq_too_long", f"the question is longer than {MAX_QUESTION} characters")
        wordings = [_clean(v) for v in str(variants).splitlines()]
        wordings = list(dict.fromkeys(w for w in wordings if w and w != question))
        if len(wordings) > MAX_VARIANTS or any(len(w) > MAX_QUESTION for w in wordings):
            raise FaqError("faq_too_long", f"at most {MAX_VARIANTS} variants of {MAX_QUESTION} characters")
        text_it, text_en = _clean_text(answer_it), _clean_text(answer_en)
        if not text_it:
            raise FaqError("faq_answer_missing", "the Italian answer is empty")
        if len(text_it) > MAX_ANSWER or len(text_en) > MAX_ANSWER:
            raise FaqError("faq_too_long", f"an answer is longer than {MAX_ANSWER} characters")
        ids = list(dict.fromkeys(s.strip() for s in re.split(r"[\s,]+", str(sources)) if s.strip()))
        if len(ids) > MAX_SOURCES:
            raise FaqError("faq_too_many_sources", f"at most {MAX_SOURCES} sources")
        for pid in ids:
            if not PASSAGE_ID.match(pid) or (known is not None and not known(pid)):
                raise FaqError("faq_unknown_source", f"unknown passage: {pid[:80]}")
        expiry = None
        if str(expires_on).strip():
            try:
                expiry = date.fromisoformat(str(expires_on).strip())
            except ValueError:
                raise FaqError("faq_bad_date", "the expiry date must be YYYY-MM-DD") from None
        return cls(question, wordings, text_it, text_en or None, ids, expiry, _clean(origin)[:200] or None)


def _clean(text: object) -> str:
    return " ".join(str(text or "").replace("\x00", " ").split())


def _clean_text(text: object) -> str:
    """Paragraphs kept (an answer may have lines), control characters and trailing blanks dropped."""
    lines = ["".join(ch for ch in line if ch == "\t" or ch >= " ").strip() for line in str(text or "").splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


@dataclass
class Match:
    entry: VerifiedAnswer
    wording: str
    similarity: float


@dataclass
class _Served:
    entry: VerifiedAnswer
    signatures: list[frozenset[str]]
    known: frozenset[str]
    vectors: np.ndarray | None = None


@dataclass
class VerifiedAnswers:
    """Verified answers and blocked passages in the conversation database, with the matcher citizens meet.

    `embed` is the e5 query embedding (the pipeline's cached one); without it nothing is served (a test
    double of the pipeline). What is served and what is blocked are re-read at most every `cache_seconds`
    (a change made here is seen at once; other replicas see it within that time)."""

    engine: Engine
    embed: Callable[[str], list[float]] | None = None
    threshold: float = 0.88
    cache_seconds: float = 5.0
    _served: list[_Served] | None = field(default=None, init=False, repr=False)
    _blocked: frozenset[str] | None = field(default=None, init=False, repr=False)
    _loaded_at: float = field(default=0.0, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        upgrade(self.engine)
        self.Session = sessionmaker(self.engine, expire_on_commit=False)

    # --- reading ---------------------------------------------------------------------------------
    def entries(self, status: str | None = None) -> list[VerifiedAnswer]:
        with self.Session() as db:
            rows = list(db.scalars(select(VerifiedAnswer).order_by(VerifiedAnswer.updated_at.desc())).all())
        now = today()
        return [r for r in rows if status is None or r.effective_status(now) == status]

    def get(self, faq_id: int) -> VerifiedAnswer | None:
        with self.Session() as db:
            return db.get(VerifiedAnswer, faq_id)

    def blocked(self) -> list[BlockedPassage]:
        with self.Session() as db:
            return list(db.scalars(select(BlockedPassage).order_by(BlockedPassage.blocked_at.desc())).all())

    def blocked_ids(self) -> frozenset[str]:
        self._refresh()
        return self._blocked or frozenset()

    # --- writing (each change audited in its own transaction) --------------------------------------
    def create(self, form: FaqForm, username: str, ip: str | None = None) -> VerifiedAnswer:
        now = utcnow()
        with self.Session() as db:
            row = VerifiedAnswer(question=form.question, variants=form.variants, answer_it=form.answer_it,
                                 answer_en=form.answer_en, sources=form.sources, status="bozza", origin=form.origin,
                                 author=username, expires_on=form.expires_on, created_at=now, updated_at=now)
            db.add(row)
            db.flush()
            audit.record(db, username, "faq_created", {"faq": row.id, "origin": form.origin}, ip)
            db.commit()
        self._invalidate()
        return row

    def update(self, faq_id: int, form: FaqForm, username: str, ip: str | None = None) -> VerifiedAnswer:
        """An edited answer goes back to draft: what citizens are served is always what was approved."""
        with self.Session() as db:
            row = self._row(db, faq_id)
            row.question, row.variants, row.answer_it, row.answer_en = (form.question, form.variants, form.answer_it,
                                                                        form.answer_en)
            row.sources, row.expires_on, row.updated_at = form.sources, form.expires_on, utcnow()
            was = row.status
            row.status, row.approver, row.approved_at = "bozza", None, None
            audit.record(db, username, "faq_edited", {"faq": faq_id, "previous_status": was}, ip)
            db.commit()
        self._invalidate()
        return row

    def approve(self, faq_id: int, username: str, ip: str | None = None) -> VerifiedAnswer:
        with self.Session() as db:
            row = self._row(db, faq_id)
            if row.expires_on is not None and row.expires_on < today():
                raise FaqError("faq_expired_date", "the expiry date is in the past")
            now = utcnow()
            row.status, row.approver, row.approved_at, row.updated_at = "approvata", username, now, now
            audit.record(db, username, "faq_approved", {"faq": faq_id, "expires_on": row.expires_on}, ip)
            db.commit()
        self._invalidate()
        return row

    def set_status(self, faq_id: int, status: str, username: str, ip: str | None = None) -> VerifiedAnswer:
        """Expire (scaduta) or withdraw (ritirata): the answer stops being served at once."""
        if status not in ("scaduta", "ritirata"):
            raise FaqError("faq_bad_status", f"unknown status {status[:20]!r}")
        with self.Session() as db:
            row = self._row(db, faq_id)
            was = row.status
            row.status, row.updated_at = status, utcnow()
            if status == "scaduta" and (row.expires_on is None or row.expires_on > today()):
                row.expires_on = today()
            audit.record(db, username, "faq_expired" if status == "scaduta" else "faq_withdrawn",
                         {"faq": faq_id, "previous_status": was}, ip)
            db.commit()
        self._invalidate()
        return row

    def block(self, passage_id: str, reason: str, username: str, ip: str | None = None,
              known: Callable[[str], bool] | None = None) -> BlockedPassage:
        passage_id, reason = str(passage_id or "").strip(), _clean(reason)
        if not PASSAGE_ID.match(passage_id) or (known is not None and not known(passage_id)):
            raise FaqError("block_unknown_passage", f"unknown passage: {passage_id[:80]}", 404)
        if not reason:
            raise FaqError("block_reason_missing", "a reason is required")
        if len(reason) > MAX_REASON:
            raise FaqError("faq_too_long", f"the reason is longer than {MAX_REASON} characters")
        with self.Session() as db:
            row = db.get(BlockedPassage, passage_id)
            if row is None:
                row = BlockedPassage(passage_id=passage_id, reason=reason, blocked_by=username, blocked_at=utcnow())
                db.add(row)
            else:
                row.reason, row.blocked_by, row.blocked_at = reason, username, utcnow()
            audit.record(db, username, "passage_blocked", {"passage": passage_id, "reason": reason}, ip)
            db.commit()
        self._invalidate()
        return row

    def unblock(self, passage_id: str, username: str, ip: str | None = None) -> None:
        with self.Session() as db:
            row = db.get(BlockedPassage, str(passage_id or "")[:300])
            if row is None:
                raise FaqError("block_not_found", "this passage is not blocked", 404)
            db.delete(row)
            audit.record(db, username, "passage_unblocked", {"passage": row.passage_id}, ip)
            db.commit()
        self._invalidate()

    @staticmethod
    def _row(db, faq_id: int) -> VerifiedAnswer:
        row = db.get(VerifiedAnswer, faq_id) if 1 <= faq_id <= 2**31 - 1 else None
        if row is None:
            raise FaqError("faq_not_found", "no such verified answer", 404)
        return row

    # --- serving ---------------------------------------------------------------------------------
    def reload(self) -> None:
        """Read what is served and blocked again on the next question (a change made by another process)."""
        self._invalidate()

    def _invalidate(self) -> None:
        with self._lock:
            self._loaded_at = 0.0

    def _refresh(self) -> None:
        with self._lock:
            if self._served is not None and time.monotonic() - self._loaded_at < self.cache_seconds:
                return
            now = today()
            with self.Session() as db:
                rows = db.scalars(select(VerifiedAnswer).where(VerifiedAnswer.status == "approvata")).all()
                blocked = frozenset(db.scalars(select(BlockedPassage.passage_id)).all())
            old = {(s.entry.id, s.entry.updated_at): s for s in self._served or []}
            served = []
            for row in rows:
                if row.effective_status(now) != "approvata":
                    continue
                kept = old.get((row.id, row.updated_at))  # keep the wordings' vectors of an unchanged entry
                if kept is None:
                    sigs = [signature(w) for w in row.wordings()]
                    kept = _Served(row, sigs, frozenset().union(*sigs))
                served.append(kept)
            self._served, self._blocked, self._loaded_at = served, blocked, time.monotonic()

    def match(self, question: str, language: str) -> Match | None:
        """The approved, unexpired verified answer for this question in this language, or None.

        Cheap words first: e5 runs only when some entry passes the lexical guard."""
        if self.embed is None:
            return None
        self._refresh()
        asked = signature(question)
        if not asked:
            return None
        candidates = []
        for served in self._served or []:
            entry = served.entry
            if language == "en" and not entry.answer_en:
                continue
            if asked - served.known - FRAME_WORDS:
                continue  # the question names something the entry never mentions
            ok = [i for i, sig in enumerate(served.signatures) if _coverage(asked, sig) >= MIN_COVERAGE]
            if ok:
                candidates.append((served, ok))
        if not candidates:
            return None
        vector = np.asarray(self.embed(question), dtype=np.float32)
        vector /= np.linalg.norm(vector) or 1.0
        best: Match | None = None
        for served, ok in candidates:
            if served.vectors is None:
                vectors = np.asarray([self.embed(w) for w in served.entry.wordings()], dtype=np.float32)
                served.vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-9)
            sims = served.vectors @ vector
            i = max(ok, key=lambda j: sims[j])
            if sims[i] >= self.threshold and (best is None or sims[i] > best.similarity):
                best = Match(served.entry, served.entry.wordings()[i], float(sims[i]))
        return best


def _coverage(asked: frozenset[str], wording: frozenset[str]) -> float:
    """How much of a wording's subject (its non-frame words) the new question carries."""
    subject = wording - FRAME_WORDS or wording
    return len(asked & subject) / len(subject) if subject else 0.0


def approved_label(entry: VerifiedAnswer, language: str) -> str:
    when = (entry.approved_at or entry.updated_at).replace(tzinfo=UTC).astimezone(ROME)
    day = when.strftime("%d/%m/%Y") if language == "it" else when.strftime("%d %B %Y").lstrip("0")
    return prompts.text(language, "verified_label", date=day)


def verified_answer(match: Match, question: str, language: str, records: dict,
                    blocked: frozenset[str] = frozenset()) -> Answer:
    """The citizen's Answer from a verified entry: its text in the asker's language, the URP's mark with
    the approval date, its sources (blocked ones left out) numbered as usual; mode "verified"."""
    entry = match.entry
    body = (entry.answer_en if language == "en" and entry.answer_en else entry.answer_it).strip()
    label = approved_label(entry, language)
    sources: list[Source] = []
    for pid in entry.sources or []:
        record = records.get(pid)
        if record is None or pid in blocked:
            continue
        sources.append(Source(len(sources) + 1, pid, record["document"], record["title"], record["section"],
                              record["text"], 1.0, dict(record.get("metadata") or {})))
    parts = [body, "", label]
    if sources:
        parts += ["", prompts.text(language, "sources_heading") + ":"]
        parts += [f"[{s.n}] {source_label(s, language)}" for s in sources]
    return Answer(question, language, True, "\n".join(parts), sources, mode="verified", lead=body, notes=[label],
                  evidence={"verified_answer": entry.id, "similarity": round(match.similarity, 4)})


class VerifiedFirst:
    """The pipeline as the conversation service sees it: an approved verified answer first, retrieval
    without the blocked passages otherwise. Everything else is the wrapped pipeline's (so web chat, API and
    Telegram, which share the service, all get it; the console's search keeps seeing every passage)."""

    def __init__(self, pipeline, faq: VerifiedAnswers) -> None:
        self.pipeline = pipeline
        self.faq = faq

    def __getattr__(self, name: str):
        return getattr(self.pipeline, name)

    def _without_blocked(self, filters: Filters | None, blocked: frozenset[str]) -> Filters | None:
        if not blocked:
            return filters
        return replace(filters or Filters(), exclude=blocked | (filters.exclude if filters else frozenset()))

    def search(self, query: str, k: int | None = None, language: str | None = None,
               filters: Filters | None = None):
        """The public search: the retrieved passages, without the blocked ones (as in answers)."""
        return self.pipeline.search(query, k=k, language=language,
                                    filters=self._without_blocked(filters, self.faq.blocked_ids()))

    def ask(self, question: str, language: str | None = None, filters: Filters | None = None,
            retrieval_query: str | None = None, fallback_language: str | None = None,
            previous_bullets: list[str] | None = None, on_token: Callable[[str], None] | None = None,
            previous_question: str | None = None) -> Answer:
        blocked = self.faq.blocked_ids()
        intent = getattr(self.pipeline, "intent", None)
        # A follow-up (previous bullets given) is read in its conversation's context: never a FAQ on its own.
        if previous_bullets is None and (intent is None or intent(question) == "question"):
            lang = self.pipeline.language_of(question, language, fallback_language)
            match = self.faq.match(question, lang)
            if match is not None:
                return verified_answer(match, question, lang, self.pipeline.index.records, blocked)
        filters = self._without_blocked(filters, blocked)
        answer = self.pipeline.ask(question, language=language, filters=filters, retrieval_query=retrieval_query,
                                   fallback_language=fallback_language, previous_bullets=previous_bullets,
                                   on_token=on_token, previous_question=previous_question)
        if any(s.id in blocked for s in answer.sources):
            # Only a computed ranking lead cites a passage it did not retrieve; a blocked one is never shown.
            log.warning("an answer cited a blocked passage: declined instead")
            answer = self.pipeline._canned(question, answer.language, "abstain")
        return answer
