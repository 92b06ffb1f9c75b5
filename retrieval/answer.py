"""Extractive, grounded answers: a lead sentence, verbatim evidence lines with [n] markers, sources.

Nothing here writes a fact: every bullet is a line copied from a cited passage, numbers included.
In an English answer, Italian lines stay verbatim and are marked as the original Italian wording.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

import prompts
from retrieval.evidence import GENERIC, Evidence, EvidenceScorer
from retrieval.lexical import _stemmer, analyze, words
from retrieval.retriever import Hit

MAX_SOURCES = 3
MAX_BULLETS = 5
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-ZÀ-Ý“\"'])")
_LIST_HEADER = re.compile(r"^(Attività|Obiettivi operativi di sviluppo 2023|Media di realizzazione per area|Obiettivi strategici .*):$")
_QUANTITY = re.compile(r"\b(quant[oaie]|how (many|much)|number of|numero|percentuale|percentage|livello|level|media|average|%)", re.I)


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

    def to_dict(self) -> dict:
        out = asdict(self)
        for s in out["sources"]:
            s.pop("metadata", None)
        return out


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
    out = []
    for pos, line in enumerate(body):
        line = line.strip()
        if not line or _LIST_HEADER.match(line):
            continue
        line = line.lstrip("-•· ").strip()
        pieces = _SENTENCE.split(line) if len(line) > 300 else [line]
        out.extend((pos, p.strip()) for p in pieces if len(p.strip()) > 2)
    return out


def _same_line(a: set[str], b: set[str]) -> bool:
    """The same activity quoted by two passages ("6.5 Politiche…" and "Obiettivo … 6.5: Politiche…")."""
    return len(a & b) / (len(a | b) or 1) >= 0.75


class Composer:
    def __init__(self, scorer: EvidenceScorer) -> None:
        self.scorer = scorer
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

    def compose(self, question: str, language: str, hits: list[Hit], expansion_terms: list[str],
                evidence: Evidence) -> Answer:
        """Best lines first; sources are numbered in the order the bullets first cite them."""
        stems = self._query_stems([question, *expansion_terms])
        picked: list[tuple[float, int, str, Hit]] = []
        for rank, hit in enumerate(hits[:MAX_SOURCES]):
            ranked = self.pick_lines(question, hit.record, stems)
            if not ranked:
                continue
            best = ranked[0][0]
            picked.append((best, rank, ranked[0][1], hit))
            picked += [(score, rank, line, hit) for score, line in ranked[1:2] if best > 0.3 and score >= 0.7 * best]
        # Passages that only brush the question (a weak best line) are not cited.
        strongest = max((p[0] for p in picked), default=0.0)
        picked = [p for p in picked if p[1] == 0 or p[0] >= 0.4 * strongest]
        # Retrieval order leads (it is the better judge of relevance); for "how many / how much"
        # questions a passage whose best line carries a number comes first.
        wants_number = bool(_QUANTITY.search(question))
        picked.sort(key=lambda x: (not (wants_number and x[0] > 0 and re.search(r"\d", x[2])), x[1], -x[0]))
        sources: list[Source] = []
        number: dict[str, int] = {}
        bullets: list[str] = []
        seen_lines: list[set[str]] = []
        for _, _, line, hit in picked:
            key = set(words(line))
            if len(bullets) >= MAX_BULLETS or any(_same_line(key, seen) for seen in seen_lines):
                continue
            rec = hit.record
            if rec["id"] not in number:
                number[rec["id"]] = len(sources) + 1
                sources.append(Source(number[rec["id"]], rec["id"], rec["document"], rec["title"], rec["section"],
                                      rec["text"], round(hit.score, 5), rec["metadata"]))
            seen_lines.append(key)
            bullets.append(self._bullet(line, rec.get("language", "it"), language, number[rec["id"]]))
        lead = prompts.text(language, "lead" if len(sources) > 1 else "lead_single")
        if language == "en" and all(s.metadata.get("language") == "en" for s in sources):
            lead = prompts.text("en", "lead_single").split(" (")[0] + ":"
        parts = [lead, "", *bullets, "", prompts.text(language, "sources_heading") + ":"]
        parts += [f"[{s.n}] {source_label(s, language)}" for s in sources]
        return Answer(question, language, True, "\n".join(parts), sources,
                      evidence={"score": evidence.score, "coverage": evidence.coverage, "dense": evidence.dense})

    @staticmethod
    def _bullet(line: str, line_language: str, answer_language: str, n: int) -> str:
        if answer_language == "en" and line_language != "en":
            return f"- “{line}” ({prompts.text('en', 'original_wording')}) [{n}]"
        return f"- {line} [{n}]"
