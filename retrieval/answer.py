"""Grounded answers: a lead sentence that answers, clean bullets with [n] markers, sources.

The lead is built from plan facts (retrieval/facts.py) with templates in prompts/messages.*.toml;
bullets are the cited passages' own words with table labels stripped, each marked as planned
(DUP, years) or done (2023 report, % realised). Anything computed (a rank, a count) is named in
`notes`. In an English answer, an Italian line is given in its reviewed English translation
(retrieval/translations.py, marked "translated from Italian", the original kept in `Bullet.original`);
a line with no approved translation yet (a freshly uploaded document) stays a quote marked as the
original wording. Plan facts' names in English leads are translated the same way.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from functools import lru_cache
from typing import Any, cast

import prompts
from retrieval.evidence import GENERIC, Evidence, EvidenceScorer
from retrieval.facts import (
    COUNT_PATTERN,
    DATE_PATTERN,
    AreaResult,
    Figure,
    ListFact,
    Mention,
    PlanFacts,
    PlanObjective,
    ResultObjective,
    format_percent,
    strip_label,
)
from retrieval.glossary import expand
from retrieval.lexical import ALL_STOPWORDS, _stemmer, analyze, words
from retrieval.question import (
    Analysis,
    analyse,
    asks,
    asks_achievement,
    is_fragment,
    rank_direction,
)
from retrieval.retriever import Hit
from retrieval.translations import Translations

MAX_SOURCES = 5
MAX_BULLETS = 5
DUP_THRESHOLD = 0.6  # below the scorer's 0.75: near-duplicates never reach the citizen
# A yes/no question's asked words: those the documents use, its glossary entries (each term's words), how many
# words the documents never use.
_Asked = tuple[list[str], tuple[tuple[frozenset[str], ...], ...], int]
ITEM_CACHE = 8192
ASKED_CACHE = 256
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-ZÀ-Ý“\"'])")
_LIST_HEADER = re.compile(
    r"^(Attività|Obiettivi operativi di sviluppo 2023|Media di realizzazione per area|Obiettivi strategici .*):$")
_QUANTITY = re.compile(
    r"\b(quant[oaie]|how (many|much)|number of|numero|percentuale|percentage|livello|level|media|average|%)", re.I)


@dataclass
class Source:
    n: int
    id: str
    document: str
    title: str
    section: str
    text: str
    score: float
    metadata: dict = field(default_factory=dict)


@dataclass
class Bullet:
    text: str
    source: int
    language: str  # the language of `text` (an Italian quote in an English answer stays Italian)
    kind: str = "info"  # planned | done | info
    years: list[int] = field(default_factory=list)
    realised: float | None = None
    translated_from: str | None = None  # "it" ("en"): `text` is the reviewed translation of the Italian (English)
    # `original`
    original: str | None = None  # the source's own wording, for channels that show it


@dataclass
class Answer:
    question: str
    language: str
    answered: bool
    answer: str
    sources: list[Source]
    mode: str = "extractive"
    intent: str = "question"
    evidence: dict | None = None
    retrieval_query: str | None = None
    lead: str = ""
    bullets: list[Bullet] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        # asdict() minus the sources' metadata, which it would deep-copy only to drop: a third of an answer's
        # Python time went there (issue 18).
        out = {f.name: _plain(getattr(self, f.name)) for f in fields(self) if f.name != "sources"}
        out["sources"] = [{f.name: _plain(getattr(s, f.name)) for f in fields(s) if f.name != "metadata"}
                          for s in self.sources]
        out["structured"] = {
            "lead": out.pop("lead"), "bullets": out.pop("bullets"), "notes": out.pop("notes"), "mode": self.mode,
            "sources": [{"n": s.n, "id": s.id, "label": source_label(s, self.language)} for s in self.sources],
        }
        return out


def _plain(value: Any) -> Any:
    """What asdict() makes of a field's value: dataclasses as dicts, containers and values copied."""
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    return copy.deepcopy(value)


def render(lead: str, bullets: list[Bullet], sources: list[Source], language: str) -> str:
    """Today's text layout, which bot/render.py, retrieval/drafts.py and retrieval/llm.py re-parse."""
    heading = prompts.text(language, "sources_heading") + ":"
    parts = [lead, "", *(f"- {b.text} [{b.source}]" for b in bullets), "", heading]
    parts += [f"[{s.n}] {source_label(s, language)}" for s in sources]
    return "\n".join(parts)


@lru_cache(maxsize=8192)
def content_words(text: str) -> frozenset[str]:
    """The scorer's view of a bullet: words without citation markers, function words or table labels."""
    text = re.sub(r"\[\d+\]", " ", strip_label(text))
    return frozenset(w for w in words(text) if w not in ALL_STOPWORDS and len(w) > 2 and not w.isdigit())


def near_duplicate(a: frozenset[str], b: frozenset[str], threshold: float = DUP_THRESHOLD) -> bool:
    return bool(a and b) and len(a & b) / min(len(a), len(b)) >= threshold


def source_label(source: Source, language: str) -> str:
    """'Title › section (years or % realised)' for the numbered source list."""
    meta = source.metadata
    extra = []
    if meta.get("realised"):
        extra.append(prompts.text(language, "realised", value=meta["realised"]))
    if meta.get("marked_years"):
        extra.append(prompts.text(language, "years", years=meta["marked_years"].replace(",", ", ")))
    elif meta.get("period_years") and meta.get("doc_kind") == "dup":
        years = meta["period_years"].split(",")
        extra.append(prompts.text(language, "period", start=years[0], end=years[-1]))
    section = f" › {source.section}"
    return f"{source.title}{section}" + (f" ({'; '.join(extra)})" if extra else "")


def candidate_lines(record: dict) -> list[tuple[int, str]]:
    """Evidence candidates: body lines of the passage (not its title/section), prose split in sentences."""
    lines = record["text"].split("\n")
    body = lines[2:] if not record["section"].startswith("§") else lines[1:]
    out: list[tuple[int, str]] = []
    for pos, line in enumerate(body):
        line = line.strip()
        if not line or _LIST_HEADER.match(line):
            continue
        line = line.lstrip("-•· ").strip()
        pieces = _SENTENCE.split(line) if len(line) > 300 else [line]
        out.extend((pos, p.strip()) for p in pieces if len(p.strip()) > 2)
    return out



def _short(text: str, limit: int = 140) -> str:
    text = text.strip().rstrip(".;:")
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    return cut.rstrip(",;:") + "…"


def _years_label(years: list[int]) -> str:
    return f"{years[0]}-{years[-1]}" if len(years) > 2 and years == list(range(years[0], years[-1] + 1)) \
        else ", ".join(str(y) for y in years)


@dataclass
class _Draft:
    """A bullet before numbering: its text (unmarked), the hit it cites and its fact marks."""
    score: float
    rank: int
    text: str
    hit: Hit
    kind: str = "info"
    years: list[int] = field(default_factory=list)
    realised: float | None = None
    fact: object | None = None
    parts: tuple[str, list[str]] | None = None  # a list's whole lead-in sentence and items, translated one by one


_PARENTHESIS = re.compile(r"(.*\S) \(([^()]+)\)")
_SEPARATORS = (" – ", "; ", ": ")
_PRINTED = re.compile(r"\d+(?:[.,]\d+)*")


def _printed(text: str) -> list[str]:
    """Numbers as printed, the decimal/thousands mark made one: '83303' must not come back as '83,303'."""
    return sorted(n.replace(",", ".") for n in _PRINTED.findall(text))


_NAME_RUN = re.compile(r"[A-ZÀ-Ý][\w'’]*(?:[ \t]+[A-ZÀ-Ý][\w'’]*)*")
_YEARS = re.compile(r"\b(?:19|20)\d\d\b")
OVERVIEW_QUOTE = 110  # characters an overview lead quotes of each item (the bullets give them whole)
_NAME_TAIL = re.compile(r"(?:[A-Z][a-zà-ÿ']+\s?){2,3}$")  # "assessore all'Innovazione, Alessandro Delli Noci"
_ARTICLE = re.compile(r"^(?:il|la|del|della|dell')\s*", re.I)  # before a person's title, in Italian only
MAX_NAMED = 3  # activities naming what the question names, listed together in one bullet


def _as_subject(mention: str) -> str:
    """An Italian mention as the object of a sentence: "del sindaco X" -> "il sindaco X"."""
    for of, article in (("della ", "la "), ("dello ", "lo "), ("del ", "il "), ("dell'", "l'")):
        if mention.lower().startswith(of):
            return article + mention[len(of):]
    return mention


def _date_in(text: str, language: str) -> str:
    """A date quoted from a passage ("7 novembre 2024"), with its month named in the answer's language."""
    m = DATE_PATTERN.fullmatch(text.strip())
    if m is None:
        return text
    day, month, year = m.groups()
    italian = [name.lower() for name in prompts.messages("it")["months"]]
    name = prompts.messages(language)["months"][italian.index(month.lower())]
    if not day:
        return prompts.text(language, "date_month_year", month=name, year=year) if year else name
    return prompts.text(language, "date_day_year" if year else "date_day", day=day, month=name, year=year)


def _count_in(text: str, language: str) -> str:
    """A head count quoted from a passage ("circa 25 persone"), in the answer's language."""
    m = COUNT_PATTERN.fullmatch(text.strip())
    if m is None:
        return text
    about, number, noun = m.groups()
    noun = prompts.messages(language)["count_nouns"].get(noun.lower(), noun)
    return prompts.text(language, "count_about", n=number, noun=noun) if about else f"{number} {noun}"


def named_terms(question: str) -> list[frozenset[str]]:
    """The names a question gives past its first word ("e.g. Torre Chianca", "the ZTL"), each as its
    Italian stems without generic words: the asker's own example is the most specific thing asked."""
    names = []
    for m in _NAME_RUN.finditer(question):
        run = m.group(0)
        if not question[: m.start()].strip(" \t\n¿¡\"'“«("):  # the question's first word is capitalised anyway
            run = run.split(None, 1)[1] if " " in run else ""
        toks = [w for w in words(run) if w not in GENERIC and w not in ALL_STOPWORDS and len(w) > 1]
        if toks:
            names.append(frozenset(_stemmer("it").stemWords(toks)))
    return names


def names_line(text: str, names: list[frozenset[str]]) -> bool:
    """True when the line contains every word of one of the question's names."""
    if not names:
        return False
    toks = set(analyze(text, "it"))
    return any(name <= toks for name in names)


def english_of(text: str, translations: Translations, labels: dict[str, str] | None = None) -> str | None:
    """The approved English of a bullet's Italian text, which may join several translated lines
    ("objective – attività: activity", "a; b", "label: value", "text (objective)"); None if a part lacks one."""
    labels = labels or {}
    if text in labels:
        return labels[text]
    whole = translations.translate(text)
    if whole is not None and _printed(whole) == _printed(text):
        return whole
    for sep in _SEPARATORS:
        if sep in text:
            head, tail = text.split(sep, 1)
            en_head, en_tail = english_of(head, translations, labels), english_of(tail, translations, labels)
            if en_head is not None and en_tail is not None:
                return f"{en_head}{sep}{en_tail}"
    m = _PARENTHESIS.fullmatch(text)
    if m:
        inner, outer = english_of(m.group(1), translations, labels), english_of(m.group(2), translations, labels)
        if inner is not None and outer is not None:
            return f"{inner} ({outer})"
    return None


class Composer:
    def __init__(self, scorer: EvidenceScorer, facts: PlanFacts | None = None,
                 records: dict[str, dict] | None = None,
                 translations: Callable[[], Translations] | None = None,
                 italian: Callable[[], Translations] | None = None) -> None:
        self.scorer = scorer
        self.facts = facts or PlanFacts()
        self.records = records or {}
        self.translations = translations  # the current approved translations (a TranslationStore)
        self.italian = italian  # the approved Italian of English-only pages (City4Age)
        self._labels = {prompts.text("it", k): prompts.text("en", k) for k in ("activity", "operational")}
        self._analysed: dict[str, frozenset[str]] = {}
        self._items: dict[tuple[int, str], tuple[frozenset[str], frozenset[str]]] = {}
        self._asks: dict[tuple[str, str], _Asked] = {}
        self._lines: dict[str, list[tuple[int, str, frozenset[str]]]] = {}

    def lines_of(self, record: dict) -> list[tuple[int, str, frozenset[str]]]:
        """Candidate lines with their analysed tokens; a passage never changes within an index."""
        cached = self._lines.get(record["id"])
        if cached is None:
            lang = record.get("language", "it")
            cached = [(pos, line, frozenset(analyze(line, lang))) for pos, line in candidate_lines(record)]
            self._lines[record["id"]] = cached
        return cached

    def _query_stems(self, query_terms: list[str]) -> set[str]:
        stems = set()
        for term in query_terms:
            for w in words(term):
                if w in GENERIC:
                    continue
                stems.add(_stemmer("it").stemWord(w))
                stems.add(_stemmer("en").stemWord(w))
        return stems

    def _score(self, text: str, language: str, stems: set[str]) -> float:
        toks = self._analysed.get(text)
        if toks is None:  # objectives and activities recur across questions: analyse each once
            toks = self._analysed[text] = frozenset(analyze(text, language))
        return sum(self.scorer.idf([t]) for t in toks & stems) / max(1.0, len(toks)) ** 0.5

    def pick_lines(self, question: str, record: dict, stems: set[str]) -> list[tuple[float, str]]:
        wants_number = bool(_QUANTITY.search(question))
        scored = []
        for pos, line, toks in self.lines_of(record):
            # Length-normalised like BM25: a short line naming the asked thing beats a long one touching it.
            score = sum(self.scorer.idf([t]) for t in toks & stems) / max(1.0, len(toks)) ** 0.5
            if wants_number:
                score *= 2.0 if re.search(r"\d", line) else 0.5
            score += 0.3 if pos == 0 else 0.0  # the passage's own statement (objective, first sentence)
            scored.append((score, line))
        scored.sort(key=lambda x: -x[0])
        return scored

    # --- one clean bullet per passage ---------------------------------------------------------
    def _draft(self, question: str, rank: int, hit: Hit, stems: set[str], analysis: Analysis,
               language: str, names: list[frozenset[str]] | None = None) -> _Draft | None:
        rec = hit.record
        names = names or []
        facts = self.facts.of(rec["id"])
        plan = next((f for f in facts if isinstance(f, PlanObjective)), None)
        result = next((f for f in facts if isinstance(f, ResultObjective)), None)
        area = next((f for f in facts if isinstance(f, AreaResult)), None)
        figures = [f for f in facts if isinstance(f, Figure)]
        lists = [f for f in facts if isinstance(f, ListFact)]
        if plan is not None:
            acts = [a for a in plan.activities if a.passage == rec["id"]]
            statement = self._score(plan.text, "it", stems) + 0.3
            if analysis.year:
                marked = [a for a in acts if analysis.year in a.years]
                if marked:
                    text = "; ".join(a.text for a in marked)
                    return _Draft(statement + 2.0, rank, f"{text} ({plan.text})" if len(marked) == 1 else text,
                                  hit, "planned", [analysis.year], fact=plan)
            best = max(acts, key=lambda a: self._score(a.text, "it", stems), default=None)
            text = plan.text
            years = plan.period
            score = statement
            naming = [a for a in acts if names_line(a.text, names)][:MAX_NAMED]
            if naming:  # every activity naming what the question names, not the shortest on-topic one
                joined = "; ".join(a.text for a in naming)
                score = max([score, *(self._score(a.text, "it", stems) for a in naming)])
                years = sorted({y for a in naming for y in a.years}) or years
                return _Draft(score, rank, f"{plan.text} – {prompts.text('it', 'activity')}: {joined}", hit,
                              "planned", years, fact=plan)
            if best is not None:
                act_score = self._score(best.text, "it", stems)
                if act_score > 0 and not near_duplicate(content_words(best.text), content_words(plan.text)):
                    text = f"{plan.text} – {prompts.text('it', 'activity')}: {best.text}"
                    score = max(score, act_score)
                    years = best.years or years
            return _Draft(score, rank, text, hit, "planned", years, fact=plan)
        if result is not None:
            items = sorted(result.operational,
                           key=lambda o: (not names_line(o, names), -self._score(o, "it", stems)))[:2]
            text = result.text
            extra = [o for o in items if not near_duplicate(content_words(o), content_words(text))]
            if extra:
                text = f"{text} – {prompts.text('it', 'operational')}: {'; '.join(extra)}"
            score = max([self._score(result.text, "it", stems) + 0.3] + [self._score(o, "it", stems) for o in items])
            return _Draft(score, rank, text, hit, "done", [2023], result.realised, fact=result)
        if area is not None:
            ranked = self.pick_lines(question, rec, stems)
            best_line = strip_label(ranked[0][1]) if ranked else ""
            if area.realised is None:
                text = self._unmeasured(area, language)
                return _Draft((ranked[0][0] if ranked else 0) + 0.3, rank, text, hit, "done", [2023], None, fact=area)
            line = re.sub(r"\s*\(\d[\d,]*%\)$", "", best_line)
            text = prompts.text(language, "area_result", name=self._name(area.name, language),
                                pct=format_percent(area.realised, language))
            if line and not line.startswith("MEDIA"):
                text = f"{text} – {self._name(re.sub(r'^[0-9.]+ ', '', line), language)}"
            named = self._named_objective(area, line)
            if named is not None and named.operational and language == "it":  # an objective of the area: its 2023 work
                text = f"{text} – {prompts.text('it', 'operational')}: {'; '.join(named.operational[:2])}"
            return _Draft((ranked[0][0] if ranked else 0) + 0.3, rank, text, hit, "done", [2023], area.realised,
                          fact=area)
        if figures:  # as printed, with the unit added to an amount
            text = "; ".join(f"{f.label}: {f.printed} ({f.display(language)})" if f.money else
                             f"{f.label}: {f.display(language)}" for f in figures)
            return _Draft(self._score(text, rec.get("language", "it"), stems) + 0.5, rank, text, hit, fact=figures)
        ranked = self.pick_lines(question, rec, stems)
        if not ranked:
            return None
        score, line = ranked[0]
        lst = next((f for f in lists if line.rstrip().endswith(":") and f.intro.endswith(line.strip())), None)
        if lst is None and lists and any(self._score(i, "it", stems) > 0 for f in lists for i in f.items):
            lst = lists[0]
            line = lst.intro
        if lst is not None:  # a list is never cut at its lead-in
            intro = line.split('. ')[-1]
            line = f"{_short(intro, 220)}: {'; '.join(lst.items)}"
            return _Draft(score + 0.5, rank, line, hit, fact=lst, parts=(intro, list(lst.items)))
        return _Draft(score, rank, strip_label(line), hit)

    def _asked(self, question: str, language: str) -> _Asked:
        """What a yes/no question asks about: the content words of its first question (known ones are looked
        for in the item; a word the documents never use, "night" in "is there a night bus?", cannot be named by
        any item), and its glossary terms."""
        found = self._asks.get((question, language))
        if found is not None:  # a lead asks this several times per answer
            return found
        asked = question.split("?")[0]  # the question, not the chatter after it ("…orari? lavoro in centro e…")
        terms = [w for w in self.scorer.content_terms(asked) if not _YEARS.fullmatch(w)]  # a year is the frame
        entries = tuple(tuple(frozenset(words(g)) for g in entry) for entry in expand(asked).entries)
        glossary = {w for entry in entries for g in entry for w in g}
        known = [w for w in terms if w in glossary or self.scorer.known(w, language)]
        found = (known, entries, len(terms) - len(known))
        if len(self._asks) >= ASKED_CACHE:
            self._asks.clear()
        self._asks[(question, language)] = found
        return found

    def _names(self, draft: _Draft, asked: _Asked, language: str) -> bool:
        """The item names at least two thirds of the asked words, in Italian or in its reviewed English (a
        glossary term counts for the words of the entry: "ZTL" for "zona a traffico limitato")."""
        terms, _, unknown = asked
        if not terms:
            return not unknown
        named, things = self._named(draft.text, asked)
        # A word no document uses may be a synonym ("abroad" for "international") or the very point ("night"
        # in "is there a night bus?"): with one, the item must name at least two asked things to be trusted.
        return named * 3 >= len(terms) * 2 and (not unknown or things >= 2)

    def _named(self, text: str, asked: _Asked) -> tuple[int, int]:
        """How many of the asked words a text names, in Italian or in its reviewed English, and how many
        things: the words of one glossary term ("strisce blu") are one thing."""
        terms, entries, _ = asked
        tokens, item_words = self._item(text)
        things: dict[str, int] = {}  # a named word -> its glossary entry (or its own position)
        for i, w in enumerate(terms):
            entry = next((n for n, e in enumerate(entries) if any(w in g for g in e)
                          and any(g <= item_words for g in e)), None)
            if entry is not None:
                things[w] = -1 - entry
            elif _stemmer("it").stemWord(w) in tokens or _stemmer("en").stemWord(w) in tokens:
                things[w] = i
        return len(things), len(set(things.values()))

    def _quoted(self, draft: _Draft, asked: _Asked) -> str:
        """The part of an item a yes/no lead quotes: the objective, or its activity when that is what names the
        question's words (a traffic plan listed under a tourism objective is quoted as the traffic plan)."""
        sep = f" – {prompts.text('it', 'activity' if draft.kind == 'planned' else 'operational')}: "
        if sep not in draft.text:
            return draft.text
        head, tail = draft.text.split(sep, 1)
        named_head, named_tail = self._named(head, asked)[0], self._named(tail, asked)[0]
        # A 2023 percentage belongs to the objective: its operational labels ("Adoption of the PUMS") are
        # quoted only when the objective names nothing asked, or "Adoption… 100%" would read as done.
        if draft.kind == "planned":
            return tail if named_tail > named_head else head
        return tail if named_head == 0 and named_tail > 0 else head

    def _item(self, text: str) -> tuple[frozenset[str], frozenset[str]]:
        """An item's stems (Italian and, from its reviewed English, English) and words: the leads test the same
        few items against the question many times."""
        key = (id(self.translations() if self.translations is not None else None), text)
        found = self._items.get(key)
        if found is None:
            english = self.english(text) or ""
            found = (frozenset(analyze(text, "it")) | frozenset(analyze(english, "en")),
                     frozenset(words(f"{text} {english}")))
            if len(self._items) >= ITEM_CACHE:
                self._items.clear()  # the corpus's items are a few thousand; a changed corpus starts over
            self._items[key] = found
        return found

    def english(self, text: str) -> str | None:
        """The reviewed English of an Italian text (a line, a name, a joined bullet), or None."""
        if self.translations is None:
            return None
        return english_of(text, self.translations(), self._labels)

    def _shown_as(self, draft: _Draft, key: frozenset[str], language: str) -> list[frozenset[str]]:
        """The words a previous answer showed this draft with: its own, and in English its translation."""
        english = self._english_draft(draft) if language == "en" else None
        return [key, content_words(english)] if english else [key]

    def _role_people(self, passage: str, asked: _Asked, language: str) -> tuple[list[str], str | None]:
        """The people a passage names with a role the question asks about ("il sindaco X"), and its date."""
        mentions = [m for m in self.facts.of(passage) if isinstance(m, Mention)]
        people = [_as_subject(m.text) if language == "it" else self._english_person(m.text) for m in mentions
                  if m.kind == "person" and self._named(_ARTICLE.sub("", m.text), asked)[0] > 0]
        return people, next((m.text for m in mentions if m.kind == "date"), None) if people else None

    def _english_person(self, mention: str) -> str:
        """A person with their title in English ("Mayor Paolo Perrone"), or their name alone where the title
        has no reviewed English."""
        bare = _ARTICLE.sub("", mention)
        english = self.english(bare)
        if english is not None:
            return english
        name = _NAME_TAIL.search(bare)
        return name.group(0).strip() if name else bare

    def _english_draft(self, draft: _Draft) -> str | None:
        return self.english(draft.text) if draft.parts is None else self._english_list(*draft.parts)

    def _name(self, text: str, language: str) -> str:
        """A plan fact's name (area, objective, activity) in the answer's language where a translation exists."""
        return (self.english(text) or text) if language == "en" else text

    def _unmeasured(self, area: AreaResult, language: str) -> str:
        """An area the report gives no figure for, with the report's note (or the usual one)."""
        note = (self._name(area.note or "", language) or prompts.text(language, "not_measured_note")).rstrip(".")
        return prompts.text(language, "area_unmeasured", name=self._name(area.name, language), note=note)

    def _named_objective(self, area: AreaResult, line: str) -> ResultObjective | None:
        """The area's 2023 objective a line of the area table states (its words, not its number)."""
        key = content_words(re.sub(r"^[0-9.]+ ", "", line))
        return next((r for r in self.facts.results.values() if r.area == area.number
                     and near_duplicate(key, content_words(r.text), 0.8)), None) if len(key) > 2 else None

    def _mark(self, draft: _Draft, language: str) -> tuple[str, str | None]:
        """The bullet's text with its planned/done mark, and the Italian original when it was translated."""
        if draft.kind == "planned":
            marked = draft.years and draft.years != self._period(draft)
            head = prompts.text(language, "mark_planned_years", years=_years_label(draft.years)) if marked \
                else prompts.text(language, "mark_planned")
        elif draft.kind == "done" and not isinstance(draft.fact, AreaResult):
            head = prompts.text(language, "mark_done", pct=format_percent(draft.realised, language)) \
                if draft.realised is not None else prompts.text(language, "mark_done_unmeasured")
        else:
            head = ""
        line_language = draft.hit.record.get("language", "it")
        body = draft.text
        original = None
        if language == "en" and line_language != "en" and not isinstance(draft.fact, AreaResult):
            english = self._english_draft(draft)
            if english is not None and english != body:
                original = body
                body = f"{english} ({prompts.text('en', 'translated_from_italian')})"
            elif not isinstance(draft.fact, list):
                body = f"“{body}” ({prompts.text('en', 'original_wording')})"
        elif language == "it" and line_language == "en":  # the City4Age page exists in English only
            italian = self.italian().translate(body) if self.italian is not None else None
            if italian is not None and italian != body:
                original = body
                body = f"{italian} ({prompts.text('it', 'translated_from_english')})"
            else:
                body = f"“{body}” ({prompts.text('it', 'original_wording_english')})"
        return (f"{head}: {body}" if head else body), original

    def _english_list(self, intro: str, items: list[str]) -> str | None:
        """A list bullet in English: its lead-in is cut after translating (a cut Italian sentence has none)."""
        english = [self.english(t) for t in (intro, *items)]
        if any(e is None for e in english):
            return None
        return f"{_short(cast(str, english[0]), 220)}: {'; '.join(cast(list[str], english[1:]))}"

    @staticmethod
    def _period(draft: _Draft) -> list[int]:
        return draft.fact.period if isinstance(draft.fact, PlanObjective) else []

    # --- the answer ----------------------------------------------------------------------------
    def compose(self, question: str, language: str, hits: list[Hit], expansion_terms: list[str],
                evidence: Evidence, analysis: Analysis | None = None,
                previous: list[str] | None = None) -> Answer:
        """One bullet per passage (the distinct objectives of the topic), a lead from the facts."""
        analysis = analysis or analyse(question)
        stems = self._query_stems([question, *expansion_terms])
        seen = [content_words(p) for p in previous or []]
        if seen:  # a follow-up's passages come from the whole conversation; its bullets answer the new focus
            stems = self._query_stems([question, *expand(question).terms]) or stems
        # A follow-up may reach past the first five passages for one its previous answer did not show.
        pool = hits if seen else hits[:MAX_SOURCES]
        names = named_terms(question)
        drafts = [d for rank, hit in enumerate(pool)
                  if (d := self._draft(question, rank, hit, stems, analysis, language, names)) is not None]
        if analysis.has("who") and not seen:
            drafts = self._role_first(question, language, hits, drafts, stems, analysis, names)
        strongest = max((d.score for d in drafts[:MAX_SOURCES]), default=0.0)
        # The top passage is kept for its rank alone only when its own words name something asked: one that came
        # first by embedding similarity (an English twin of a general page) gives way to the passages that do.
        drafts = [d for d in drafts if d.score >= 0.35 * strongest
                  or (d.rank == 0 and self._score(d.text, d.hit.record.get("language", "it"), stems) > 0)]
        notes: list[str] = []
        lead, extra = self._lead(question, language, analysis, drafts[:MAX_SOURCES], notes)
        drafts = extra + drafts
        chosen: list[_Draft] = []
        for d in drafts:
            key = content_words(d.text)
            if any(near_duplicate(key, content_words(c.text)) for c in chosen):
                continue
            if seen and any(near_duplicate(k, old, 0.5) for k in self._shown_as(d, key, language) for old in seen):
                continue  # a follow-up answers the new focus, not the previous answer again
            if d.rank >= MAX_SOURCES and (chosen or not seen):
                continue  # passages past the first five only stand in for a follow-up's repeated ones
            chosen.append(d)
            if len(chosen) >= MAX_BULLETS:
                break
        cited_by_lead: list[_Draft] = []
        if not chosen and seen and drafts:  # nothing new: say so in the lead, no bullet repeats the last answer
            notes = ["follow-up: every passage found repeats the previous answer"]
            fact_lead, _ = self._lead(question, language, analysis, drafts[:MAX_SOURCES], notes)
            top = max((d for d in drafts if d.rank >= 0), key=lambda d: d.score, default=drafts[0])
            if any(n.startswith("count:") for n in notes):
                fact_lead = ""  # a count of objectives is no answer to the new focus: its best passage is
            said = fact_lead.rstrip(" :.") if fact_lead else self._mark(top, language)[0].rstrip(" .")
            lead = prompts.text(language, "lead_nothing_more", answer=said)
            cited_by_lead = [top] if not fact_lead else \
                [d for d in drafts[:MAX_SOURCES] if d.hit.record["id"] in {x.hit.record["id"] for x in drafts[:3]}]
        elif not chosen and drafts:
            chosen = drafts[:1]
        elif not extra and lead:  # the lead names only facts of the bullets actually shown (so cited)
            notes = []
            lead, _ = self._lead(question, language, analysis, chosen, notes)
        sources: list[Source] = []
        number: dict[str, int] = {}
        bullets: list[Bullet] = []
        for d in cited_by_lead:  # the lead's passages are cited even though no bullet shows them again
            rec = d.hit.record
            if rec["id"] not in number:
                number[rec["id"]] = len(sources) + 1
                sources.append(Source(number[rec["id"]], rec["id"], rec["document"], rec["title"], rec["section"],
                                      rec["text"], round(d.hit.score, 5), rec["metadata"]))
        if sources:
            lead += " " + "".join(f"[{s.n}]" for s in sources)
        for d in chosen:
            rec = d.hit.record
            text, original = self._mark(d, language)
            # Checked on the final (possibly translated) wording: an area line can restate a shown objective.
            if any(near_duplicate(content_words(text), content_words(b.text)) for b in bullets):
                continue
            if rec["id"] not in number:
                number[rec["id"]] = len(sources) + 1
                sources.append(Source(number[rec["id"]], rec["id"], rec["document"], rec["title"], rec["section"],
                                      rec["text"], round(d.hit.score, 5), rec["metadata"]))
            translated = isinstance(d.fact, (AreaResult, list)) or original
            line_language = language if translated else rec.get("language", "it")
            bullets.append(Bullet(text, number[rec["id"]], line_language, d.kind, list(d.years), d.realised,
                                  rec.get("language", "it") if original else None, original))
        if not lead:
            lead = prompts.text(language, "lead" if len(sources) > 1 else "lead_single")
            if language == "en" and all(s.metadata.get("language") == "en" for s in sources):
                lead = prompts.text("en", "lead_single").split(" (")[0].rstrip(":") + ":"
        return Answer(question, language, True, render(lead, bullets, sources, language), sources,
                      evidence={"score": evidence.score, "coverage": evidence.coverage, "dense": evidence.dense},
                      lead=lead, bullets=bullets, notes=notes)

    def _role_first(self, question: str, language: str, hits: list[Hit], drafts: list[_Draft], stems: set[str],
                    analysis: Analysis, names: list[frozenset[str]]) -> list[_Draft]:
        """A role asked ("who is the mayor?"): the retrieved passage naming a person with it comes first, even
        from past the first five (its words match, while the embedding prefers the general pages)."""
        asked = self._asked(question, language)
        if any(self._role_people(d.hit.record["id"], asked, language)[0] for d in drafts[:3]):
            return drafts
        for hit in hits:
            if self._role_people(hit.record["id"], asked, language)[0]:
                draft = self._draft(question, 0, hit, stems, analysis, language, names)
                if draft is not None:
                    return [draft, *(d for d in drafts if d.hit.record["id"] != hit.record["id"])]
        return drafts

    def _lead(self, question: str, language: str, analysis: Analysis, drafts: list[_Draft],
              notes: list[str]) -> tuple[str, list[_Draft]]:
        """The first sentence, from facts of the passages about to be cited (plus the area table for ranks)."""
        t = prompts.text
        limit = 140 if language == "it" else 70  # an English lead quotes as little Italian as it can

        def short(text: str) -> str:
            english = self._name(text, language)  # a translated name may be as long as an Italian lead's
            return _short(english, 140 if english != text else limit)

        hits_by_id = {d.hit.record["id"]: d.hit for d in drafts}
        if analysis.has("rank") and self.facts.measured_areas() and self.facts.overall:
            overall_pid = self.facts.overall[1]
            anchor = hits_by_id.get(overall_pid) or next((d.hit for d in drafts if any(
                isinstance(f, AreaResult) for f in self.facts.of(d.hit.record["id"]))), None)
            if anchor is not None or any(d.hit.record.get("metadata", {}).get("doc_kind") == "performance_report"
                                         for d in drafts):
                return self._rank_lead(analysis.words(question), language, drafts, notes)
        planned = max((d for d in drafts if d.kind == "planned"), key=lambda d: d.score, default=None)
        done = max((d for d in drafts if d.kind == "done" and isinstance(d.fact, ResultObjective)),
                   key=lambda d: d.score, default=None)
        top = drafts[0] if drafts else None
        if analysis.has("quantity") and top is not None:
            figures = next((d for d in drafts[:2] if isinstance(d.fact, list) and d.fact
                            and isinstance(d.fact[0], Figure)), None)
            if figures is not None:
                notes.append("figures: formatted from the cited page (the amount's unit is not printed; shown as €)")
                shown = ", ".join(f"{self._name(f.label, language).lower()} {f.display(language)}"
                                  for f in cast("list[Figure]", figures.fact))
                return t(language, "lead_quantity_figures", title=figures.hit.record["title"], figures=shown), []
            # "how many people took part?": a head count the passages give (with a "when", the date lead says both)
            count = next((m.text for d in drafts[:3] for m in self.facts.of(d.hit.record["id"])
                          if isinstance(m, Mention) and m.kind == "count" and "comuni" not in m.text), None)
            if count is not None and not analysis.has("when") and asks("head_count", analysis.words(question)):
                notes.append("quantity: the head count of the cited passage")
                return t(language, "lead_quantity_count", count=_count_in(count, language)), []
            fact = next((d.fact for d in drafts[:2] if isinstance(d.fact, AreaResult)), None)
            if fact is not None and asks_achievement(analysis.words(question)):
                if fact.realised is None:
                    note = (self._name(fact.note or "", language) or t(language, "not_measured_note")).rstrip(".")
                    return t(language, "lead_quantity_area_none", name=self._name(fact.name, language), note=note), []
                return t(language, "lead_quantity_area", name=self._name(fact.name, language),
                         pct=format_percent(fact.realised, language)), []
            # An amount asked ("how much is the tourist tax?", "how many km?") that no figure or area average
            # answers: a neutral lead (a "yes:" or "done:" about some objective would read as the answer),
            # first saying that no passage about to be cited gives a figure, when none does.
            rest, extra = self._lead(question, language, analysis.without("quantity", "status", "yesno"), drafts,
                                     notes)
            if any(re.search(r"\d", _YEARS.sub("", d.text)) for d in drafts if not isinstance(d.fact, AreaResult)):
                return rest, extra
            notes.append("quantity: no figure in the cited passages")
            return f"{t(language, 'lead_quantity_none')} {rest or t(language, 'lead')}", extra
        if analysis.has("who") and top is not None:
            # A role asked ("who is the mayor?") is answered by the person a passage names with that role, with
            # the passage's date: the documents' mayor of 2013 is not said to be today's.
            asked = self._asked(question, language)
            for d in drafts[:3]:
                role, date = self._role_people(d.hit.record["id"], asked, language)
                if role:
                    notes.append("who: the person named with the role asked")
                    return t(language, "lead_who_role", people=", ".join(dict.fromkeys(role)),
                             date=t(language, "lead_who_date", date=_date_in(date, language)) if date else ""), []
            # People of the best passage only: a name in a lesser one (the City Lab's speakers under a question
            # about the social services) would read as the answer.
            people = [m.text for d in drafts[:1] for m in self.facts.of(d.hit.record["id"])
                      if isinstance(m, Mention) and m.kind == "person"]
            lst = next((d.fact for d in drafts[:3] if isinstance(d.fact, ListFact)), None)
            if lst is not None:
                return t(language, "lead_who_list", items="; ".join(self._name(i, language) for i in lst.items)), []
            if people:
                if language == "en":  # "la prof.ssa X" -> "Prof. X" where a reviewed translation exists
                    people = [self._english_person(p) for p in people]
                return t(language, "lead_who_people", people=", ".join(dict.fromkeys(people))), []
        if analysis.has("when") and top is not None:
            mentions = [m for d in drafts[:3] for m in self.facts.of(d.hit.record["id"]) if isinstance(m, Mention)]
            date = next((m.text for m in mentions if m.kind == "date"), None)
            count = next((m.text for m in mentions if m.kind == "count" and "comuni" not in m.text), None)
            if date:
                return t(language, "lead_when", date=_date_in(date, language),
                         count=t(language, "lead_count", count=_count_in(count, language)) if count else ""), []
            # "When will the PUMS be adopted?": no passage gives a date, and a 2023 result or a 2025-2027 plan is
            # not one; say so first. ("When was … done?" is answered by the 2023 result: its lead follows.)
            if asks("future", analysis.words(question)) or not any(d.kind == "done" for d in drafts):
                notes.append("when: no date in the cited passages")
                rest, extra = self._lead(question, language, analysis.without("when", "status", "yesno"), drafts,
                                         notes)
                return f"{t(language, 'lead_when_none')} {rest or t(language, 'lead')}", extra
        if analysis.year and analysis.year >= 2025 and planned is not None:
            marked = [d for d in drafts if d.kind == "planned" and analysis.year in d.years
                      and d.years != self._period(d)]
            if marked:
                items = ", ".join(f"«{_short(d.text, 90)}»" if language == "it"
                                  else f"“{_short(self._name(d.text, language), 90)}”" for d in marked)
                return t(language, "lead_planned_year", year=analysis.year, items=items), []
            return t(language, "lead_planned_year_none", planned=short(planned.text)), []
        if done is not None:  # "still planned" only for a plan item about the same thing as the result
            related = [d for d in drafts if d.kind == "planned"
                       and near_duplicate(content_words(d.text), content_words(done.text), 0.3)]
            planned_same = max(related, key=lambda d: d.score, default=None)
        else:
            planned_same = planned
        if (analysis.has("status") or analysis.has("yesno")) and (planned or done):
            # "Yes:", "It is planned:" and "Partly:" only about an item that names what was asked: "is the ZTL
            # active at night?" is not answered yes by a study of the ZTL's rules.
            asked = self._asked(question, language)
            if not analysis.has("yesno"):  # "com'è andata…", "how did … go": unknown words frame a status question
                asked = (asked[0], asked[1], 0)
            would_say = bool((planned_same and done) or (done and done.realised is not None) or planned)
            done = done if done is not None and self._names(done, asked, language) else None
            planned_same = planned_same if done is not None else None
            planned = planned if planned is not None and self._names(planned, asked, language) else None
            def quoted(d: _Draft) -> str | None:  # an English lead quotes only a reviewed translation
                part = self._quoted(d, asked)
                return _short(part, 140) if language == "it" else \
                    (_short(english, 140) if (english := self.english(part)) else None)

            def answered(key: str, sentence: str) -> str:  # "Yes: the 2023 report…" to a yes/no question only
                if not analysis.has("yesno"):
                    return sentence
                return f"{t(language, 'answer_' + key)}: {sentence[:1].lower()}{sentence[1:]}"

            if planned_same and done:
                planned = planned_same
                pct = format_percent(done.realised, language) if done.realised is not None else "–"
                said = quoted(done), quoted(planned)
                return answered("partly", t(language, "lead_partly_unnamed", pct=pct) if None in said else
                                t(language, "lead_partly", done=said[0], planned=said[1], pct=pct)), []
            if done and done.realised is not None:
                pct = format_percent(done.realised, language)
                said_done = quoted(done)
                return answered("done", t(language, "lead_done", done=said_done, pct=pct) if said_done
                                else t(language, "lead_done_unnamed", pct=pct)), []
            if planned:
                said_planned = quoted(planned)
                return answered("planned", t(language, "lead_planned", planned=said_planned) if said_planned
                                else t(language, "lead_planned_unnamed")), []
            if would_say:
                notes.append("yes/no: no item about to be cited names what was asked")
                rest, extra = self._lead(question, language, analysis.without("status", "yesno"), drafts, notes)
                return f"{t(language, 'lead_not_direct')} {rest or t(language, 'lead')}", extra
        results = [d.fact for d in drafts if isinstance(d.fact, ResultObjective)]
        # An unmeasured area asked about ("e il commercio?" after a question on the 2023 results): say why there
        # is no figure, not a count; a yes/no or a plan question ("any help for small shops?") gets the overview.
        # A fragment of a few words is a follow-up, whatever its opening looks like.
        if results and all(r.realised is None for r in results) and not analysis.has("planned") \
                and (is_fragment(question) or not analysis.has("yesno")):
            unmeasured = next((a for a in self.facts.areas
                               if a.number == results[0].area and a.realised is None), None)
            if unmeasured is not None:
                note = (unmeasured.note or "").rstrip(".") if language == "it" and unmeasured.note \
                    else t(language, "not_measured_note")
                return t(language, "lead_quantity_area_none", name=self._name(unmeasured.name, language),
                         note=note), []
        n_plan = len({id(d.fact) for d in drafts if d.kind == "planned"})
        n_done = len({id(d.fact) for d in drafts if d.kind == "done" and isinstance(d.fact, ResultObjective)})
        if n_plan or n_done:
            named = self._overview_named(question, language, drafts, n_plan)
            if named is None:  # no plan item or result names what was asked: "cos'è City4Age?" (a page)
                return "", []
            notes.append("count: objectives among the cited passages")
            if named:
                return named, []

            def objectives(n: int) -> str:  # "un obiettivo", "3 obiettivi"
                return t(language, "objectives_one") if n == 1 else t(language, "objectives_many", n=n)

            if n_plan and n_done:
                return t(language, "lead_overview", planned=objectives(n_plan), done=objectives(n_done)), []
            if n_plan:
                return t(language, "lead_overview_plan", planned=objectives(n_plan)), []
            return t(language, "lead_overview_done", done=objectives(n_done)), []
        return "", []

    def _overview_named(self, question: str, language: str, drafts: list[_Draft], n_plan: int) -> str | None:
        """An overview that answers: what the plan provides and what 2023 achieved, each named by its best
        item that names something asked ("Il DUP 2025-2027 prevede tra l'altro «…»; nel 2023 «…» risulta
        realizzato al 100%"). "" when an English lead would have to quote Italian, or when no item names
        anything asked but the best passage is a plan item (the count of objectives is said instead); None
        when the best passage is a page's prose and no item names anything asked (no overview at all)."""
        t = prompts.text
        asked = self._asked(question, language)

        def on_topic(d: _Draft) -> bool:
            return not asked[0] or self._named(d.text, asked)[0] > 0

        planned = max((d for d in drafts if d.kind == "planned" and isinstance(d.fact, PlanObjective)
                       and on_topic(d)), key=lambda d: d.score, default=None)
        done = max((d for d in drafts if d.kind == "done" and isinstance(d.fact, ResultObjective) and on_topic(d)),
                   key=lambda d: d.score, default=None)
        if planned is None and done is None:
            best = drafts[0] if drafts else None
            return "" if best is not None and best.kind in ("planned", "done") else None

        def said(d: _Draft) -> str | None:
            part = self._quoted(d, asked)
            text = part if language == "it" else self.english(part)
            return _short(text, OVERVIEW_QUOTE) if text else None

        parts = []
        if planned is not None:
            if (name := said(planned)) is None:
                return ""
            also = t(language, "overview_also") if n_plan > 1 else ""
            parts.append(t(language, "overview_plan_part", planned=name, also=also))
        if done is not None:
            if (name := said(done)) is None:
                return ""
            parts.append(t(language, "overview_done_part", done=name, pct=format_percent(done.realised, language))
                         if done.realised is not None else t(language, "overview_done_part_unmeasured", done=name))
        joined = "; ".join(parts)
        return t(language, "lead_overview_named", parts=joined[:1].upper() + joined[1:]) if parts else ""

    def _rank_lead(self, question: str, language: str, drafts: list[_Draft],
                   notes: list[str]) -> tuple[str, list[_Draft]]:
        """Rank the areas by their 2023 average; the bullets then show the areas that explain it."""
        measured = [(a, a.realised) for a in self.facts.measured_areas() if a.realised is not None]
        assert self.facts.overall is not None  # the caller only ranks when the overall level is known
        overall, overall_pid = self.facts.overall
        table = self._hit_for(overall_pid, drafts)
        notes.append("rank: computed from the 2023 area averages of the cited report")
        extra: list[_Draft] = []
        if rank_direction(question) == "low":
            low, low_pct = min(measured, key=lambda m: m[1])
            lead = prompts.text(language, "lead_rank_low", name=self._name(low.name, language),
                                pct=format_percent(low_pct, language), overall=format_percent(overall, language))
            hit = self._hit_for(low.passage, drafts) or table
            for obj in sorted((o for o in self.facts.results.values() if o.area == low.number),
                              key=lambda o: (o.realised or 0)):
                extra.append(_Draft(9.0, -1, obj.text, hit, "done", [2023], obj.realised, fact=obj))
            return lead, extra[:3]
        full = [a for a, pct in measured if pct >= 100]
        rest = [a for a in self.facts.areas if a not in full]
        lead = prompts.text(language, "lead_rank_high", count=len(full), total=len(self.facts.areas),
                            names=", ".join(self._name(a.name, language) for a in full))
        if rest:
            shown = [f"{self._name(a.name, language)} ({format_percent(a.realised, language)})"
                     if a.realised is not None else f"{self._name(a.name, language)} (–)" for a in rest]
            lead += " " + prompts.text(language, "lead_rank_high_rest", rest="; ".join(shown))
        return lead, [_Draft(9.0, -1, prompts.text(language, "area_result", name=self._name(a.name, language),
                                                   pct=format_percent(a.realised, language)) if a.realised is not None
                             else self._unmeasured(a, language),
                             table, "done", [2023], a.realised, fact=a) for a in rest][:2]

    def _hit_for(self, passage_id: str, drafts: list[_Draft]) -> Hit:
        """The cited hit for a passage, or a synthetic one (score 0) when the table wasn't retrieved."""
        for d in drafts:
            if d.hit.record["id"] == passage_id:
                return d.hit
        record = self.records.get(passage_id)
        if record is None:
            return drafts[0].hit
        return Hit(passage_id, record, 0.0, 0.0, 0.0, None, None)
