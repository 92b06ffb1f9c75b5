"""Plan facts: a typed model of the plan documents, read back from the index's passage records.

The passages are the parsers' output laid out as text (retrieval/corpus.py), so the facts are
rebuilt from them at load in a few milliseconds: no extra file in the index generation, and every
fact keeps the id of the passage it comes from, so an answer built from facts can cite it.

What is kept: DUP areas, objectives and activities with their planned years (the ■ marks), the
2023 report's objectives with their % realised and operational objectives, the area averages and
the overall level, and from prose pages the labelled figures ("Investimenti: 15659005" -> euro),
dates, people with their title and the lists introduced by a colon (complete, items included).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, cast

from retrieval.chunks import body_lines

# Table labels of the DUP/report cells that carry no content for a citizen.
_LABEL = re.compile(
    r"^(?:OB\.\s*TRASV\.\s*-\s*|Benessere\s+(?:Sociale|Ambientale|Istituzionale|Economico)"
    r"(?:\s+e\s+(?:Sociale|Ambientale|Istituzionale|Economico))?\s*[:.]\s*)",
    re.IGNORECASE,
)
_KIND = re.compile(r"\s*\((attività di (?:sviluppo|miglioramento))(?:;\s*anni ([\d, ]+))?\)\s*$")
_YEARS_ONLY = re.compile(r"\s*\(anni ([\d, ]+)\)\s*$")
_FIGURE = re.compile(r"^[•\-·]?\s*([A-ZÀ-Ý][\wÀ-ÿ ]{2,30}):\s*(\d[\d.,]*)\s*$")
_MONEY_LABEL = re.compile(r"investiment|finanziament|import|budget|spes|costo|euro", re.IGNORECASE)
DATE_PATTERN = re.compile(
    r"\b(?:(\d{1,2})\s+)?(gennaio|febbraio|marzo|aprile|maggio|giugno|luglio|agosto|settembre|ottobre|"
    r"novembre|dicembre)(?:\s+(\d{4}))?\b", re.IGNORECASE)
_PERSON = re.compile(
    r"\b((?:il |la |del |della |dell['’])?(?:Dott\.(?:ssa)?|Dr\.|prof\.(?:ssa)?|Prof\.(?:ssa)?|sindaco|"
    r"assessore(?:[\w '’]*,)?|Ing\.|Avv\.|Arch\.))\s*((?:[A-Z][a-zà-ÿ']+\s?){2,3})")
COUNT_PATTERN = re.compile(r"\b(circa|about|around)?\s*(\d+)\s+(persone|partecipanti|comuni|people|participants)\b",
                           re.IGNORECASE)


def strip_label(text: str) -> str:
    """'Benessere Ambientale: X (attività di sviluppo)' -> 'X'; 'OB. TRASV. - X' -> 'X'."""
    text = _KIND.sub("", text.strip())
    text = _YEARS_ONLY.sub("", text)
    return _LABEL.sub("", text).strip().rstrip(" .;")


def percent(value: str | None) -> float | None:
    """'99,52' -> 99.52; '/' or None -> None."""
    if not value or value == "/":
        return None
    try:
        return float(value.replace(",", "."))
    except ValueError:
        return None


def format_percent(value: float, language: str) -> str:
    text = f"{value:.2f}"
    return (text.replace(".", ",") if language == "it" else text) + "%"


def format_number(value: float, language: str) -> str:
    text = f"{value:,.0f}"
    return text.replace(",", ".") if language == "it" else text


@dataclass
class Activity:
    text: str
    kind: str | None
    years: list[int]
    passage: str


@dataclass
class PlanObjective:
    """A DUP strategic objective (planned: the document's period, or the marked years)."""
    number: str
    area: int
    area_name: str
    text: str
    passages: list[str]
    activities: list[Activity] = field(default_factory=list)
    period: list[int] = field(default_factory=list)


@dataclass
class ResultObjective:
    """A 2019-2024 mandate objective as reported for 2023, with the % of its operational objectives."""
    number: str
    area: int
    area_name: str
    text: str
    operational: list[str]
    realised: float | None
    passage: str


@dataclass
class AreaResult:
    number: int
    name: str
    realised: float | None
    starred: bool
    note: str | None
    passage: str


@dataclass
class Figure:
    """A labelled number of a page; `money` when the label names an amount (the page prints no unit)."""
    label: str
    value: float
    money: bool
    passage: str
    printed: str = ""

    def display(self, language: str) -> str:
        """An amount with its unit and separators; any other number exactly as the page prints it."""
        if self.money:
            return f"€ {format_number(self.value, language)}"
        return self.printed or format_number(self.value, language)


@dataclass
class ListFact:
    intro: str
    items: list[str]
    passage: str


@dataclass
class Mention:
    """A person (title + name), a date or a count found in a prose passage."""
    kind: str  # person | date | count
    text: str
    passage: str


@dataclass
class PlanFacts:
    plan: dict[str, PlanObjective] = field(default_factory=dict)
    results: dict[str, ResultObjective] = field(default_factory=dict)
    areas: list[AreaResult] = field(default_factory=list)
    overall: tuple[float, str] | None = None
    figures: list[Figure] = field(default_factory=list)
    lists: list[ListFact] = field(default_factory=list)
    mentions: list[Mention] = field(default_factory=list)
    by_passage: dict[str, list[object]] = field(default_factory=dict)

    def of(self, passage_id: str) -> list[object]:
        return self.by_passage.get(passage_id, [])

    def _index(self, passage: str, fact: object) -> None:
        bucket = self.by_passage.setdefault(passage, [])
        if fact not in bucket:
            bucket.append(fact)

    def measured_areas(self) -> list[AreaResult]:
        return [a for a in self.areas if a.realised is not None]


def _years(value: object) -> list[int]:
    """Metadata years come as a list or, from Chroma, as '2025,2026,2027'."""
    if isinstance(value, str):
        return [int(y) for y in re.findall(r"20\d\d", value)]
    return [int(y) for y in cast("Iterable[Any]", value or [])]


def _body(record: dict) -> list[str]:
    return body_lines(record["text"], record["section"])


def build_facts(records: dict[str, dict]) -> PlanFacts:
    """All facts of an index's records; unknown shapes simply contribute nothing."""
    facts = PlanFacts()
    for pid, rec in records.items():
        meta = rec.get("metadata", {})
        kind = meta.get("doc_kind")
        if kind == "dup" and meta.get("level") == "objective":
            _dup_objective(facts, pid, rec, meta)
        elif kind == "performance_report" and meta.get("level") == "objective":
            _report_objective(facts, pid, rec, meta)
        elif kind == "performance_report" and meta.get("level") == "area":
            _report_area(facts, pid, rec, meta)
        elif kind == "performance_report" and meta.get("realised") and meta.get("level") == "document":
            value = percent(meta["realised"])
            if value is not None:
                facts.overall = (value, pid)
        elif kind not in ("dup", "performance_report"):
            _prose(facts, pid, rec)
    facts.areas.sort(key=lambda a: a.number)
    return facts


def _dup_objective(facts: PlanFacts, pid: str, rec: dict, meta: dict) -> None:
    number = str(meta.get("objective", ""))
    obj = facts.plan.get(number)
    if obj is None:
        obj = PlanObjective(number, int(meta.get("area", 0)), str(meta.get("area_name", "")),
                            strip_label(str(meta.get("objective_text", ""))), [],
                            period=_years(meta.get("period_years")))
        facts.plan[number] = obj
    obj.passages.append(pid)
    facts._index(pid, obj)
    seen = {a.text.casefold() for a in obj.activities}
    for line in _body(rec):
        if not line.startswith("- "):
            continue
        raw = line[2:]
        m = _KIND.search(raw)
        years = [int(y) for y in re.findall(r"20\d\d", m.group(2))] if m and m.group(2) else []
        if not m:
            ym = _YEARS_ONLY.search(raw)
            years = [int(y) for y in re.findall(r"20\d\d", ym.group(1))] if ym else []
        text = strip_label(raw)
        if not text or text.casefold() in seen:
            continue
        seen.add(text.casefold())
        kind = m.group(1).split()[-1] if m else None
        obj.activities.append(Activity(text, kind, years, pid))


def _report_objective(facts: PlanFacts, pid: str, rec: dict, meta: dict) -> None:
    operational: list[str] = []
    for line in _body(rec):
        if line.startswith("- "):
            item = strip_label(line[2:])
            if item and item.casefold() not in {o.casefold() for o in operational}:
                operational.append(item)
    obj = ResultObjective(str(meta.get("objective", "")), int(meta.get("area", 0)), str(meta.get("area_name", "")),
                          strip_label(str(meta.get("objective_text", ""))), operational,
                          percent(meta.get("realised")), pid)
    facts.results[obj.number] = obj
    facts._index(pid, obj)


def _report_area(facts: PlanFacts, pid: str, rec: dict, meta: dict) -> None:
    starred = "*" in rec["section"]
    area = AreaResult(int(meta.get("area", 0)), str(meta.get("area_name", "")), percent(meta.get("realised")),
                      starred, meta.get("note"), pid)
    facts.areas.append(area)
    facts._index(pid, area)


def _prose(facts: PlanFacts, pid: str, rec: dict) -> None:
    body = _body(rec)
    for line in body:
        m = _FIGURE.match(line.strip())
        if m:
            raw = m.group(2).replace(".", "").replace(",", ".")
            try:
                value = float(raw)
            except ValueError:
                continue
            fig = Figure(m.group(1).strip(), value, bool(_MONEY_LABEL.search(m.group(1))), pid, m.group(2))
            facts.figures.append(fig)
            facts._index(pid, fig)
    # A line ending with ':' introduces a list: the following lines (or ';'-separated items) are its items.
    for i, line in enumerate(body):
        if not line.rstrip().endswith(":") or i + 1 >= len(body):
            continue
        items: list[str] = []
        for nxt in body[i + 1:]:
            items += [p.strip() for p in nxt.split(";") if p.strip()]
            if nxt.rstrip().endswith("."):
                break
        items = [it.rstrip(".") for it in items]
        if items:
            lst = ListFact(line.strip(), items, pid)
            facts.lists.append(lst)
            facts._index(pid, lst)
    text = " ".join(body)
    for m in _PERSON.finditer(text):
        mention = Mention("person", f"{m.group(1).strip()} {m.group(2).strip()}".strip(), pid)
        facts.mentions.append(mention)
        facts._index(pid, mention)
    for m in DATE_PATTERN.finditer(text):
        mention = Mention("date", m.group(0), pid)
        facts.mentions.append(mention)
        facts._index(pid, mention)
    for m in COUNT_PATTERN.finditer(text):
        mention = Mention("count", m.group(0).strip(), pid)
        facts.mentions.append(mention)
        facts._index(pid, mention)
