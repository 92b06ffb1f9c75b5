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
    """A date range that cannot be read; `key` names its text in prompts/operator.*.toml (the message is
    the English fallback, for logs)."""

    def __init__(self, message: str, key: str = "") -> None:
        super().__init__(message)
        self.key = key


def parse_range(start: str | None, end: str | None, default_days: int = 28) -> tuple[date, date]:
    """Inclusive [start, end] dates from 'YYYY-MM-DD' strings (defaults: the last four weeks)."""
    try:
        end_d = date.fromisoformat(end) if end else utcnow().date()
        start_d = date.fromisoformat(start) if start else end_d - timedelta(days=default_days - 1)
    except ValueError:
        raise BadRange("dates must be YYYY-MM-DD", "reason_date_format") from None
    if start_d > end_d:
        raise BadRange("the start date is after the end date", "reason_date_order")
    if (end_d - start_d).days > 3660:
        raise BadRange("the range is longer than ten years", "reason_date_span")
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


# The performance report's areas said in the DUP's strategic areas (reviewed by hand against both documents'
# area and objective titles): a question whose sources are in the report is counted with the DUP area it is about.
REPORT_TO_DUP = {
    "relazione-performance-2023": {1: 1, 2: 8, 3: 9, 4: 7, 5: 12, 6: 6, 7: 4, 8: 6, 9: 2, 10: 13},
}


class AreaClassifier:
    """The DUP strategic area a question is about, read from the areas of the sources its answer cites (a
    DUP passage's own area; a performance report passage's area through REPORT_TO_DUP): the area most of
    them name, the first-cited one on a tie. None (not classified) when no cited source has an area; no
    guess from the question's words ("PUMS" is mobility because its sources are, not because of a keyword)."""

    def __init__(self, pipeline) -> None:
        self.pipeline = pipeline
        docs = pipeline.index.manifest.get("documents", {})
        self.dup_docs = [d for d, info in docs.items() if info.get("parser") == "dup"]
        self.names: dict[int, str] = {}
        for rec in pipeline.index.records.values():
            meta = rec["metadata"]
            if rec["document"] in self.dup_docs and meta.get("area") is not None:
                self.names.setdefault(int(meta["area"]), meta.get("area_name", ""))

    def source_area(self, source_id: str) -> int | None:
        rec = self.pipeline.index.records.get(source_id)
        if not rec or rec["metadata"].get("area") is None:
            return None
        area = int(rec["metadata"]["area"])
        if rec["document"] in self.dup_docs:
            return area
        return REPORT_TO_DUP.get(rec["document"], {}).get(area)

    def area(self, row: QuestionRow) -> int | None:
        votes: dict[int, int] = {}
        for source in row.sources:
            area = self.source_area(str(source.get("id", "")))
            if area is not None:
                votes[area] = votes.get(area, 0) + 1  # dicts keep insertion order: first cited wins a tie
        return max(votes, key=lambda a: votes[a]) if votes else None


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


# --- dashboard (/operatore/cruscotto) -------------------------------------------------------------
AGE_BUCKETS = (1, 3, 7)  # days: open cases younger than 1 day, 1-3, 3-7, older than 7


@dataclass
class Dashboard:
    start: date
    end: date
    questions: int
    answered: int
    thumbs_up: int
    thumbs_down: int
    per_area: dict[int | None, list[QuestionRow]]  # drill-down: the questions behind each area's count
    unanswered: list[UnansweredGroup]  # most asked first
    cases: dict[str, list[int]] | None = None  # open cases per status, per age bucket; None without cases

    @property
    def answered_pct(self) -> int | None:
        return round(100 * self.answered / self.questions) if self.questions else None

    @property
    def satisfaction_pct(self) -> int | None:
        rated = self.thumbs_up + self.thumbs_down
        return round(100 * self.thumbs_up / rated) if rated else None


def open_cases_by_age(engine, now: datetime | None = None) -> dict[str, list[int]] | None:
    """Open cases per status, counted per age bucket (AGE_BUCKETS); None when the cases table is not there."""
    try:
        from sibyl.backoffice.cases import OPEN, Case
    except ImportError:  # a build without URP cases
        return None
    now = now or utcnow()
    out = {status: [0] * (len(AGE_BUCKETS) + 1) for status in OPEN}
    with engine.connect() as conn:
        rows = conn.execute(select(Case.status, Case.created_at).where(Case.status.in_(OPEN))).all()
    for status, created in rows:
        age = (now - created).total_seconds() / 86400
        out[status][sum(1 for limit in AGE_BUCKETS if age >= limit)] += 1
    return out


def dashboard(store: Store, classifier: AreaClassifier, start: date, end: date,
              handled: set[str] | None = None) -> Dashboard:
    """The figures for one date range: share of questions answered, 👍/👎, questions per area with the rows
    behind each count, and the unanswered groups not yet handled that were asked in the range."""
    rows = questions(store, start, end)
    per_area: dict[int | None, list[QuestionRow]] = {}
    for row in rows:
        row.area = classifier.area(row)
        per_area.setdefault(row.area, []).append(row)
    feedback = feedback_in_range(store, start, end)
    lo, hi = _bounds(start, end)
    groups = [g for g in unanswered_groups(store, handled) if lo <= g.last_at < hi]
    return Dashboard(start, end, len(rows), sum(1 for r in rows if r.answered),
                     sum(1 for f in feedback if f.rating > 0), sum(1 for f in feedback if f.rating < 0),
                     dict(sorted(per_area.items(), key=lambda kv: (-len(kv[1]), kv[0] is None, kv[0] or 0))),
                     groups, open_cases_by_age(store.engine))
