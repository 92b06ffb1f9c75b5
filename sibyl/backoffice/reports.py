"""What the URP office reads out of the conversation store: unanswered questions grouped by wording,
negative feedback to review, questions per DUP strategic area per week. Data only: the chart (SVG) and
the CSV exports are drawn from it in api/operator/present.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import aliased

from retrieval.evidence import GENERIC
from retrieval.lexical import ALL_STOPWORDS, stemmer, words
from sibyl.store import Feedback, Message, Store, utcnow

ABSTAIN_INTENTS = ("question", "abstain")
SIMILAR = 0.5  # token-set overlap (Jaccard) at which two wordings count as the same question
CONTAINED = 0.6  # share of the shorter wording's words found in the longer one


class BadRange(ValueError):
    """A date range that cannot be read; the message is safe to show."""


def parse_range(start: str | None, end: str | None, default_days: int = 28) -> tuple[date, date]:
    """Inclusive [start, end] dates from 'YYYY-MM-DD' strings (defaults: the last four weeks)."""
    try:
        end_d = date.fromisoformat(end) if end else utcnow().date()
        start_d = date.fromisoformat(start) if start else end_d - timedelta(days=default_days - 1)
    except ValueError:
        raise BadRange("dates must be YYYY-MM-DD") from None
    if start_d > end_d:
        raise BadRange("the start date is after the end date")
    if (end_d - start_d).days > 3660:
        raise BadRange("the range is longer than ten years")
    return start_d, end_d


def _bounds(start: date, end: date) -> tuple[datetime, datetime]:
    return datetime.combine(start, datetime.min.time()), datetime.combine(end + timedelta(days=1), datetime.min.time())


# Words nearly every citizen question carries: they say nothing about which document is missing.
COMMON = GENERIC | {"comunale", "comunali", "cittadini", "cittadino", "citizens", "citizen"}


def signature(text: str) -> frozenset[str]:
    """Content words, accent-folded and stemmed, so 'parcheggi a Lecce?' and 'Parcheggio Lecce' agree."""
    toks = [t for t in words(text) if t not in ALL_STOPWORDS and t not in COMMON and (len(t) > 1 or t.isdigit())]
    return frozenset(stemmer("it").stemWords(toks))


def similar(a: frozenset[str], b: frozenset[str]) -> bool:
    """Same question: most words shared (Jaccard), or a short wording contained in a longer one."""
    if not a or not b:
        return a == b
    shared = len(a & b)
    return shared / len(a | b) >= SIMILAR or (shared >= 2 and shared / min(len(a), len(b)) >= CONTAINED)


# --- unanswered questions ----------------------------------------------------------------------
@dataclass
class UnansweredGroup:
    text: str  # the most frequent wording
    count: int
    last_at: datetime
    first_at: datetime
    channels: list[str]
    wordings: list[str]
    message_ids: list[str]
    signature: frozenset[str] = field(repr=False, default=frozenset())

    def to_dict(self) -> dict:
        return {"text": self.text, "count": self.count, "last_at": self.last_at.isoformat(timespec="seconds"),
                "first_at": self.first_at.isoformat(timespec="seconds"), "channels": self.channels,
                "wordings": self.wordings, "message_ids": self.message_ids}


def abstentions(store: Store, exclude: set[str] | None = None) -> list[tuple[Message, str]]:
    """(assistant message, question text) for every abstention, newest first."""
    user = aliased(Message)
    with store.Session() as db:
        rows = db.execute(
            select(Message, user.text)
            .join(user, user.id == Message.reply_to)
            .where(Message.role == "assistant", Message.answered.is_(False), Message.intent.in_(ABSTAIN_INTENTS))
            .order_by(Message.created_at.desc())
        ).all()
    exclude = exclude or set()
    return [(m, q) for m, q in rows if m.id not in exclude]


def unanswered_groups(store: Store, handled: set[str] | None = None) -> list[UnansweredGroup]:
    """Abstentions not yet handled, grouped by similar wording, most asked first."""
    groups: list[UnansweredGroup] = []
    tallies: list[dict[str, int]] = []
    for message, question in abstentions(store, handled):
        sig = signature(question)
        found = next((i for i, g in enumerate(groups) if similar(sig, g.signature)), None)
        if found is not None:
            group, tally = groups[found], tallies[found]
        else:
            group = UnansweredGroup(question, 0, message.created_at, message.created_at, [], [], [], sig)
            tally = {}
            groups.append(group)
            tallies.append(tally)
        group.count += 1
        group.message_ids.append(message.id)
        group.last_at = max(group.last_at, message.created_at)
        group.first_at = min(group.first_at, message.created_at)
        if message.channel not in group.channels:
            group.channels.append(message.channel)
        wording = " ".join(question.split())
        tally[wording] = tally.get(wording, 0) + 1
        if wording not in group.wordings:
            group.wordings.append(wording)
    for group, tally in zip(groups, tallies, strict=True):
        group.text = max(tally.items(), key=lambda kv: (kv[1], -group.wordings.index(kv[0])))[0]
    groups.sort(key=lambda g: (-g.count, -g.last_at.timestamp()))
    return groups


# --- feedback review -----------------------------------------------------------------------------
@dataclass
class FeedbackItem:
    id: int
    created_at: datetime
    channel: str
    rating: int
    comment: str | None
    question: str
    answer: str
    sources: list[dict]
    reviewed: bool
    reviewed_by: str | None
    reviewed_at: datetime | None


def feedback_items(store: Store, rating: int | None = -1, include_reviewed: bool = False,
                   start: datetime | None = None, end: datetime | None = None) -> list[FeedbackItem]:
    user = aliased(Message)
    with store.Session() as db:
        q = (select(Feedback, Message, user.text)
             .join(Message, Message.id == Feedback.message_id)
             .outerjoin(user, user.id == Message.reply_to)
             .order_by(Feedback.created_at.desc()))
        if rating is not None:
            q = q.where(Feedback.rating == rating)
        if not include_reviewed:
            q = q.where(Feedback.reviewed.is_(False))
        if start is not None:
            q = q.where(Feedback.created_at >= start)
        if end is not None:
            q = q.where(Feedback.created_at < end)
        rows = db.execute(q).all()
    return [FeedbackItem(fb.id, fb.created_at, fb.channel, fb.rating, fb.comment, question or "", msg.text,
                         msg.sources or [], fb.reviewed, fb.reviewed_by, fb.reviewed_at) for fb, msg, question in rows]


def mark_feedback_reviewed(store: Store, feedback_id: int, username: str) -> bool:
    """False when there is no such feedback."""
    with store.Session() as db:
        fb = db.get(Feedback, feedback_id)
        if fb is None:
            return False
        fb.reviewed, fb.reviewed_at, fb.reviewed_by = True, utcnow(), username
        db.commit()
        return True


# --- topics ---------------------------------------------------------------------------------------
@dataclass
class QuestionRow:
    id: str
    created_at: datetime
    channel: str
    language: str | None
    question: str
    answered: bool | None
    intent: str | None
    sources: list[dict]
    area: int | None = None


def questions(store: Store, start: date, end: date) -> list[QuestionRow]:
    """Every question a citizen asked in the range (greetings and chit-chat left out), oldest first."""
    lo, hi = _bounds(start, end)
    user = aliased(Message)
    with store.Session() as db:
        rows = db.execute(
            select(Message, user.text)
            .join(user, user.id == Message.reply_to)
            .where(Message.role == "assistant", Message.intent.in_(ABSTAIN_INTENTS),
                   Message.created_at >= lo, Message.created_at < hi)
            .order_by(Message.created_at)
        ).all()
    return [QuestionRow(m.id, m.created_at, m.channel, m.language, q, m.answered, m.intent, m.sources or [])
            for m, q in rows]


class AreaClassifier:
    """The DUP strategic area a question is about: the first DUP passage among its sources, or else the
    nearest DUP passage that shares a content word with it; None when nothing in the DUP matches."""

    def __init__(self, pipeline) -> None:
        from retrieval.retriever import Filters

        self.pipeline = pipeline
        docs = pipeline.index.manifest.get("documents", {})
        self.dup_docs = [d for d, info in docs.items() if info.get("parser") == "dup"]
        self.filters = [Filters(document=d) for d in self.dup_docs]
        self.names: dict[int, str] = {}
        for rec in pipeline.index.records.values():
            meta = rec["metadata"]
            if rec["document"] in self.dup_docs and meta.get("area") is not None:
                self.names.setdefault(int(meta["area"]), meta.get("area_name", ""))
        self._cache: dict[str, int | None] = {}

    def area(self, row: QuestionRow) -> int | None:
        records = self.pipeline.index.records
        for source in row.sources:
            rec = records.get(source.get("id", ""))
            if rec and rec["document"] in self.dup_docs and rec["metadata"].get("area") is not None:
                return int(rec["metadata"]["area"])
        key = " ".join(row.question.lower().split())
        if key not in self._cache:
            self._cache[key] = self._nearest(row.question)
        return self._cache[key]

    def _nearest(self, question: str) -> int | None:
        best = None
        for filters in self.filters:
            try:
                hits = self.pipeline.retriever.search(question, k=1, filters=filters)
            except Exception:  # a question the retriever cannot read is simply unclassified
                return None
            hit = hits[0] if hits else None
            if (hit and hit.lexical > 0 and hit.record["metadata"].get("area") is not None
                    and (best is None or hit.score > best.score)):
                best = hit
        return int(best.record["metadata"]["area"]) if best else None


def week_start(d: date) -> date:
    return d - timedelta(days=d.weekday())


@dataclass
class TopicStats:
    weeks: list[date]
    areas: dict[int | None, str]  # None = not classified
    counts: dict[tuple[date, int | None], int]
    total: int

    def series(self, area: int | None) -> list[int]:
        return [self.counts.get((w, area), 0) for w in self.weeks]


def topic_stats(rows: list[QuestionRow], classifier: AreaClassifier, start: date, end: date,
                unclassified_label: str = "—") -> TopicStats:
    weeks = []
    w = week_start(start)
    while w <= end:
        weeks.append(w)
        w += timedelta(days=7)
    counts: dict[tuple[date, int | None], int] = {}
    used: set[int | None] = set()
    for row in rows:
        row.area = classifier.area(row)
        key = (week_start(row.created_at.date()), row.area)
        counts[key] = counts.get(key, 0) + 1
        used.add(row.area)
    areas: dict[int | None, str] = {
        a: classifier.names.get(a, str(a)) for a in sorted(a for a in used if a is not None)
    }
    if None in used:
        areas[None] = unclassified_label
    return TopicStats(weeks, areas, counts, len(rows))


def feedback_in_range(store: Store, start: date, end: date) -> list[FeedbackItem]:
    lo, hi = _bounds(start, end)
    return feedback_items(store, rating=None, include_reviewed=True, start=lo, end=hi)
