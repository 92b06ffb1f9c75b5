"""Operator search: the pipeline's hybrid retrieval plus the filters an office needs (objective,
% realised), the query's stems (which words match; api/operator/present.py highlights them) and the
facets to fill the filter menus."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from retrieval.glossary import expand
from retrieval.lexical import ALL_STOPWORDS, stemmer
from retrieval.retriever import Filters
from retrieval.text import fold

WORD = re.compile(r"\w+", re.UNICODE)
DEPTH = 2000  # at most this many candidates ranked before the post-filters (objective, % realised)
# Relevance cut-off. Each passage gets the chat's own evidence score (share of the query's content words it
# contains, plus e5 similarity above its calibrated floor; retrieval/evidence.py), read for that passage alone.
# A passage below the chat's abstention threshold would not be enough for the chat to answer, so it is not
# shown either; nor is one under half the best passage's score (a far weaker match than the top one).
RELATIVE = 0.5
HIGH, MEDIUM = 0.75, 0.5  # evidence at or above: "molto pertinente", "pertinente"; below: "poco pertinente"


class BadFilter(ValueError):
    """A filter value that cannot be read; `key` names its text in prompts/operator.*.toml (the message is
    the English fallback, for logs)."""

    def __init__(self, message: str, key: str = "") -> None:
        super().__init__(message)
        self.key = key


@dataclass
class ConsoleQuery:
    q: str
    document: str | None = None
    area: int | None = None
    objective: str | None = None
    year: int | None = None
    realised_min: float | None = None
    realised_max: float | None = None
    sort: str = "relevance"  # or "area"
    k: int = 20

    @classmethod
    def parse(cls, q: str, document: str = "", area: str = "", objective: str = "", year: str = "",
              realised_min: str = "", realised_max: str = "", sort: str = "relevance", k: int = 20) -> ConsoleQuery:
        """From raw form strings; '' means no filter. `area` may be 'document|N' to pin the area's document."""
        doc = document.strip() or None
        area_no = None
        if area.strip():
            a_doc, _, a_no = area.strip().rpartition("|")
            try:
                area_no = int(a_no)
            except ValueError:
                raise BadFilter("area must be a number", "reason_area_number") from None
            if a_doc:
                if doc and doc != a_doc:
                    raise BadFilter("the area belongs to another document", "reason_area_document")
                doc = a_doc
        objective_no = objective.strip() or None
        if objective_no and not re.fullmatch(r"\d+(\.\d+)*", objective_no):
            raise BadFilter("objective must look like 4 or 4.2", "reason_objective")
        try:
            year_no = int(year) if year.strip() else None
        except ValueError:
            raise BadFilter("year must be a number", "reason_year") from None
        lo, hi = _percent(realised_min), _percent(realised_max)
        if lo is not None and hi is not None and lo > hi:
            raise BadFilter("the minimum % realised is above the maximum", "reason_realised_order")
        if sort not in ("relevance", "area"):
            raise BadFilter("sort must be 'relevance' or 'area'", "reason_sort")
        return cls(q, doc, area_no, objective_no, year_no, lo, hi, sort, k)

    @property
    def filters(self) -> Filters:
        return Filters(document=self.document, area=self.area, year=self.year)

    def post_filtered(self) -> bool:
        return bool(self.objective) or self.realised_min is not None or self.realised_max is not None


def _percent(value: str) -> float | None:
    value = (value or "").strip().rstrip("%").replace(",", ".")
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        raise BadFilter("% realised must be a number between 0 and 100", "reason_realised") from None
    if not 0 <= number <= 100:
        raise BadFilter("% realised must be a number between 0 and 100", "reason_realised")
    return number


def realised_value(meta: dict) -> float | None:
    raw = str(meta.get("realised") or "").replace(",", ".").strip()
    try:
        return float(raw)
    except ValueError:
        return None


def objectivematches(meta: dict, objective: str) -> bool:
    value = str(meta.get("objective") or "")
    return value == objective or value.startswith(objective + ".")


@dataclass
class ConsoleHit:
    id: str
    rank: int
    score: float
    document: str
    title: str
    section: str
    text: str
    metadata: dict
    relevance: float = 1.0  # the passage's own evidence score, 0..1

    @property
    def area(self) -> int | None:
        return self.metadata.get("area")

    @property
    def relevance_level(self) -> str:
        """'high', 'medium' or 'low': the console shows a plain label, not the fused rank score."""
        return "high" if self.relevance >= HIGH else "medium" if self.relevance >= MEDIUM else "low"


@dataclass
class ConsoleResult:
    query: ConsoleQuery
    language: str
    hits: list[ConsoleHit] = field(default_factory=list)
    terms: set[str] = field(default_factory=set)
    cut: int = 0  # passages left out as not relevant enough


def query_stems(text: str) -> set[str]:
    stems = set()
    for word in (fold(w) for w in WORD.findall(text)):
        if word in ALL_STOPWORDS or (len(word) < 2 and not word.isdigit()):
            continue
        stems.add(stemmer("it").stemWord(word))
        stems.add(stemmer("en").stemWord(word))
    return stems


def matches(word: str, stems: set[str]) -> bool:
    """Whether a passage word shares an Italian or English stem with the query."""
    w = fold(word)
    if w in ALL_STOPWORDS:
        return False
    return stemmer("it").stemWord(w) in stems or stemmer("en").stemWord(w) in stems


def _area_key(hit: ConsoleHit) -> tuple:
    meta = hit.metadata
    objective = tuple(int(p) for p in str(meta.get("objective") or "").split(".") if p.isdigit())
    return (meta.get("area") is None, hit.document, meta.get("area") or 0, objective, hit.rank)


def console_search(pipeline, query: ConsoleQuery) -> ConsoleResult:
    """Raises BadQuestion for an empty or too long query (the pipeline's own check)."""
    # Objective and % realised are not index filters: rank every passage so none that matches is cut off.
    depth = min(max(len(pipeline.index.records), query.k), DEPTH) if query.post_filtered() else query.k
    result = pipeline.search(query.q, k=depth, filters=query.filters)
    stems = query_stems(result.query)
    candidates = [h for h in result.hits if _passes(query, h.record["metadata"])]
    relevance = _relevance(pipeline, result.query, result.language, candidates)
    floor = max(pipeline.config.abstain_threshold, RELATIVE * max(relevance.values(), default=0.0))
    kept = [h for h in candidates if relevance[h.id] >= floor][: query.k]
    hits = [ConsoleHit(h.id, rank, h.score, h.record["document"], h.record["title"], h.record["section"],
                       h.record["text"], h.record["metadata"], relevance[h.id]) for rank, h in enumerate(kept, 1)]
    cut = sum(1 for h in candidates if relevance[h.id] < floor)
    if query.sort == "area":
        hits.sort(key=_area_key)
    return ConsoleResult(query, result.language, hits, stems, cut)


def _passes(query: ConsoleQuery, meta: dict) -> bool:
    """The filters the index cannot apply: objective and % realised."""
    if query.objective and not objectivematches(meta, query.objective):
        return False
    if query.realised_min is None and query.realised_max is None:
        return True
    value = realised_value(meta)
    return (value is not None and (query.realised_min is None or value >= query.realised_min)
            and (query.realised_max is None or value <= query.realised_max))


def _relevance(pipeline, text: str, language: str, hits: list) -> dict[str, float]:
    """Each hit's evidence score as if it were the only passage found (the chat's measure and scale;
    about 0.1 ms a passage)."""
    expansion = expand(text)
    return {h.id: pipeline.scorer.score(text, [h.id], h.dense, expansion, [], language).score for h in hits}


@dataclass
class Facets:
    documents: list[tuple[str, str]]  # (id, title)
    areas: list[tuple[str, str]]  # ('document|N', label)
    objectives: list[str]
    years: list[int]


def facets(pipeline) -> Facets:
    """Filter menus from what the current index holds (an uploaded document appears at once)."""
    docs = pipeline.index.manifest.get("documents", {})
    areas: dict[str, str] = {}
    objectives: set[str] = set()
    years: set[int] = set()
    for rec in pipeline.index.records.values():
        meta = rec["metadata"]
        if meta.get("area") is not None:
            title = docs.get(rec["document"], {}).get("title", rec["document"])
            short = "DUP" if meta.get("doc_kind") == "dup" else title
            label = f"{short} · {meta['area']}. {meta.get('area_name', '')}"
            areas.setdefault(f"{rec['document']}|{meta['area']}", label)
        if meta.get("objective"):
            objectives.add(str(meta["objective"]))
        for key in meta:
            if key.startswith("year_") and key[5:].isdigit():
                years.add(int(key[5:]))
    def area_sort(item):
        doc, _, n = item[0].rpartition("|")
        return (docs.get(doc, {}).get("parser") != "dup", doc, int(n))
    def objective_sort(value: str):
        return tuple(int(p) for p in value.split(".") if p.isdigit())
    return Facets(sorted(((d, info.get("title", d)) for d, info in docs.items()), key=lambda x: x[1].lower()),
                  sorted(areas.items(), key=area_sort), sorted(objectives, key=objective_sort), sorted(years))


def passage(pipeline, chunk_id: str) -> dict | None:
    return pipeline.index.records.get(chunk_id)
