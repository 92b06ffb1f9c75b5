"""Is every sentence of a model answer supported by the sources it cites?

The grounding checks (retrieval.grounding) catch bad citations, invented numbers and the wrong
language, but not an invented claim without a number ("the City will build a light metro [1]").
Here each sentence is checked on its own:

- it cites at least one given source, or it is a fixed phrase (the lead, the URP pointer);
- its content words (stemmed it/en, accents folded) are covered by the cited passages, their
  glossary equivalents and their reviewed English translations;
- its numbers sit on a cited line that speaks of the same thing (a percentage moved from one
  objective to another is caught), and a negation is in the source too;
- its meaning is close to one line of the cited passages (e5 cosine, both sides embedded alike).

Plain values in, plain values out: nothing here imports the app, the API or the settings.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from retrieval.glossary import load_glossary
from retrieval.grounding import CITATION, LIST_MARKER, NUMBER, URP, citations, number_forms
from retrieval.lexical import ALL_STOPWORDS, stemmer, words
from retrieval.text import fold

log = logging.getLogger(__name__)

# Calibrated on tests/data/support_cases.jsonl (faithful paraphrases vs. inventions, it/en): below
# MIN_COVERAGE a sentence is unsupported; at FULL_COVERAGE it needs MIN_SIMILARITY to its best line,
# in between the stricter PARTIAL_SIMILARITY (invented claims built from a passage's own words sat at
# coverage 0.5-0.71 and similarity 0.84-0.888; paraphrases mostly above 0.89 there).
MIN_COVERAGE = 0.5
FULL_COVERAGE = 0.75
MIN_SIMILARITY = 0.84
PARTIAL_SIMILARITY = 0.89
# A fully covered sentence with at least half its content words on ONE line of the source ("anchored")
# is supported without the e5 comparison: on the labelled set the 0.84 similarity never rejected a fully
# covered sentence (lowest 0.85; recombined words score high on e5 too), and one sentence embedding costs
# ~25 ms of CPU, the whole budget of a check. Partly covered sentences (where e5 decided every case) and
# sentences stitched from words scattered over several lines still get the e5 check.
ANCHOR_SHARE = 0.5

# Words that frame an answer rather than claim anything ("according to the document, the City...").
GLUE = set(
    [
        "comune", "comuni", "comunale", "comunali", "citta", "city", "town", "municipality", "municipal", "lecce",
        "leccese", "council", "amministrazione", "administration", "documento", "documenti", "document", "documents",
        "fonte", "fonti", "source", "sources", "relazione", "report", "secondo", "according", "riporta", "riportano",
        "riportato", "riportata", "reports", "reported", "indica", "indicano", "indicato", "indicates", "indicated",
        "mention", "mentions", "menziona", "menzionano", "cita", "citano", "cites", "inoltre", "also", "additionally",
        "furthermore", "moreover", "infatti", "ovvero", "cioe", "ecco", "here", "esempio", "example", "particolare",
        "particular", "particularly", "including", "incluso", "inclusi", "tra", "among", "altre", "altri", "altro",
        "other", "others", "diversi", "diverse", "various", "vari", "varie", "alcune", "alcuni", "several", "some",
        "punto", "point", "riguardo", "regarding", "tema", "topic", "quanto", "concerns", "concerning", "dice", "says",
        "say", "states", "stated", "afferma", "tratta", "deals", "riguarda", "regards", "tal", "tale", "such", "cosi",
        "thus", "therefore", "quindi", "dunque", "pertanto",
    ]
)
NEGATIONS = {"non", "mai", "nessun", "nessuno", "nessuna", "neanche", "nemmeno", "not", "never", "no",
             "none", "nor", "neither", "nothing", "niente", "nulla", "without", "senza", "nt"}
_ABBREVIATIONS = {"ecc", "es", "n", "nr", "art", "artt", "pag", "pagg", "p", "dott", "dott.ssa", "sig", "sigg",
                  "prof", "ing", "avv", "arch", "geom", "e.g", "i.e", "etc", "no", "vs", "dr", "mr", "mrs", "ms",
                  "st", "fig", "cfr", "ca", "c.d.s", "d.g.c", "d.lgs", "s.p.a", "loc", "v", "vol"}
_BULLET = re.compile(r"^[ \t]*(?:[-*•·–]|\d{1,2}[.)])[ \t]+")
_BOUNDARY = re.compile(r"(?<=[.!?…])[\"'”»)]*[ \t]+")
_YEAR = re.compile(r"(?:19|20)\d\d")
_PERCENT = re.compile(r"(\d+(?:[.,]\d+)*)\s*(?:%|per ?cento|percent)", re.IGNORECASE)
_CITATIONS_AHEAD = re.compile(r"(?:\s*" + CITATION.pattern + r")+", re.IGNORECASE)


# --- sentences ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Span:
    start: int
    end: int
    text: str
    bullet: bool = False


def split_sentences(text: str) -> list[Span]:
    """Sentences of an answer with their offsets: bullets and lines are sentences, long lines are split
    at '. ' before a capital, and a citation written after the full stop stays with its sentence."""
    spans: list[Span] = []
    pos = 0
    for line in text.splitlines(keepends=True):
        base, pos = pos, pos + len(line)
        body = line.rstrip("\r\n")
        if not body.strip():
            continue
        bullet = _BULLET.match(body)
        start = bullet.end() if bullet else len(body) - len(body.lstrip())
        seg = start
        for m in _BOUNDARY.finditer(body, start):
            nxt = body[m.end():m.end() + 1]
            word = re.search(r"(\S+)[.!?…][\"'”»)]*$", body[seg:m.start() + 1] if m.start() >= seg else "")
            if word and word.group(1).lower().lstrip("([") in _ABBREVIATIONS:
                continue
            if not nxt or not (nxt.isupper() or nxt.isdigit() or nxt in "[“\"«'"):
                continue
            spans.append(Span(base + seg, base + m.start(), body[seg:m.start()], bool(bullet)))
            seg = m.end()
        end = len(body.rstrip())
        if end > seg:
            spans.append(Span(base + seg, base + end, body[seg:end], bool(bullet)))
    # "… gli autobus. [1] Inoltre …": the markers after a full stop belong to the sentence before it.
    out: list[Span] = []
    for span in spans:
        lead = _CITATIONS_AHEAD.match(span.text)
        if lead and out and out[-1].end <= span.start and text[out[-1].end:span.start].strip() == "":
            prev = out[-1]
            cut = lead.end()
            out[-1] = Span(prev.start, span.start + cut, text[prev.start:span.start + cut], prev.bullet)
            rest = span.text[cut:]
            skip = len(rest) - len(rest.lstrip())
            if rest.strip():
                out.append(Span(span.start + cut + skip, span.end, rest.strip(), span.bullet))
            continue
        out.append(span)
    return out


# --- words -------------------------------------------------------------------------------------
def _forms(word: str) -> set[str]:
    return {word, stemmer("it").stemWord(word), stemmer("en").stemWord(word)}


def _numberless(text: str) -> str:
    return NUMBER.sub(" ", CITATION.sub(" ", text))


def content_words(text: str) -> list[str]:
    """Folded words that carry a claim: no function words, no answer framing, no numbers, no negations."""
    return [w for w in words(_numberless(text).replace("’", "'"))
            if len(w) > 1 and w not in ALL_STOPWORDS and w not in GLUE and w not in NEGATIONS and not w.isdigit()]


def _stems(text: str) -> set[str]:
    out: set[str] = set()
    for w in words(_numberless(text)):
        if len(w) > 1 and not w.isdigit():
            out |= _forms(w)
    return out


def _numbers(text: str) -> set[str]:
    out: set[str] = set()
    for token in NUMBER.findall(CITATION.sub(" ", text)):
        out |= number_forms(token)
    return out


def _percents(text: str) -> set[str]:
    out: set[str] = set()
    for token in _PERCENT.findall(text):
        out |= number_forms(token)
    return out


def _negated(text: str) -> bool:
    return any(w in NEGATIONS for w in words(text.replace("n't", " nt")))


@lru_cache(maxsize=1)
def _glossary_terms() -> list[tuple[re.Pattern, tuple[str, ...]]]:
    return [(pattern, tuple(it + en)) for it, en, pattern, _ in load_glossary()]


def glossary_equivalents(text: str) -> list[str]:
    """The other terms of every glossary entry the text mentions ("trasporto pubblico" -> "TPL", "bus")."""
    folded = fold(text)
    return [t for pattern, terms in _glossary_terms() if pattern.search(folded) for t in terms]


@lru_cache(maxsize=1)
def default_translator() -> Callable[[str], str | None] | None:
    """retrieval.translations' lookup when that module is there (reviewed English of the Italian lines)."""
    try:
        from retrieval import translations
    except ImportError:
        return None
    translate = getattr(translations, "translate", None)
    if callable(translate):
        return translate
    loader = getattr(getattr(translations, "Translations", None), "load", None)
    folder = Path(__file__).resolve().parents[1] / "corpus" / "translations" / "en"
    if loader is None or not folder.is_dir():
        return None
    try:
        return loader(folder).translate
    except Exception as exc:  # a half-written translations file must not break answering
        log.warning("translations not used by the support check: %s", exc)
        return None


# --- passages ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Passage:
    """One numbered source as the model saw it."""

    n: int
    id: str
    text: str
    language: str = "it"


@dataclass
class _Lines:
    texts: list[str]
    stems: list[set[str]]
    numbers: list[set[str]]
    percents: list[set[str]]
    negated: list[bool]
    vocabulary: set[str]
    vectors: np.ndarray | None = None


def passage_lines(text: str) -> list[str]:
    """Title, section parts and body lines (bullets stripped), prose split into sentences."""
    out: list[str] = []
    for raw in text.split("\n"):
        line = _BULLET.sub("", raw).strip()
        for part in line.split(" › "):
            pieces = [sp.text for sp in split_sentences(part)] if len(part) > 300 else [part]
            out.extend(p.strip() for p in pieces if re.search(r"[^\W\d_]", p))
    return out


# --- the check ---------------------------------------------------------------------------------
@dataclass
class SentenceSupport:
    start: int
    end: int
    text: str
    cited: list[int]
    fixed: bool = False
    coverage: float | None = None
    anchor: float | None = None  # share of the content words found on the best single cited line
    similarity: float | None = None
    supported: bool = False
    reason: str | None = None

    @property
    def claims(self) -> bool:
        """A supported, cited sentence: what makes an answer an answer."""
        return self.supported and not self.fixed and bool(self.cited)

    def scores(self) -> dict:
        """Diagnostics without the sentence's words (they may be an invention)."""
        return {"cited": self.cited, "fixed": self.fixed, "coverage": self.coverage, "anchor": self.anchor,
                "similarity": self.similarity,
                "supported": self.supported, "reason": self.reason}


@dataclass
class SupportReport:
    text: str
    sentences: list[SentenceSupport] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def unsupported(self) -> list[SentenceSupport]:
        return [s for s in self.sentences if not s.supported]

    @property
    def answers(self) -> bool:
        """What is left still answers: at least one supported sentence with a citation besides fixed phrases."""
        return any(s.claims for s in self.sentences)

    @property
    def points_to_urp(self) -> bool:
        return any(s.supported and URP.search(s.text) for s in self.sentences)

    def kept_text(self) -> str:
        """The answer with the unsupported sentences cut out, layout kept, emptied bullet lines removed."""
        out, pos = [], 0
        for s in self.unsupported:
            out.append(self.text[pos:s.start])
            pos = s.end
        out.append(self.text[pos:])
        lines = []
        for line in "".join(out).split("\n"):
            line = re.sub(r"[ \t]{2,}", " ", line).rstrip()
            if _BULLET.sub("", line).strip() or not line.strip():
                lines.append(line if _BULLET.sub("", line).strip() else "")
        return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()

    def to_dict(self) -> dict:
        return {"sentences": len(self.sentences), "unsupported": len(self.unsupported),
                "ms": round(self.seconds * 1000, 1), "scores": [s.scores() for s in self.sentences]}


class SupportChecker:
    """Sentence-by-sentence support of a model answer by the passages it cites.

    `embeddings`: a LangChain Embeddings (e5) or None for the lexical checks only; both sentences and
    source lines go through `embed_documents` (the same 'passage: ' prefix on both sides: a symmetric
    comparison, and one batched call per answer). Source-line vectors are cached per passage.
    `translate`: Italian line -> reviewed English or None. `fixed`: texts from prompts/ (lead, URP
    pointer, the model's "I don't know" rule) whose words alone make a sentence that needs no citation.
    """

    def __init__(self, embeddings=None, translate: Callable[[str], str | None] | None = None,
                 fixed: Iterable[str] = (), min_coverage: float = MIN_COVERAGE,
                 min_similarity: float = MIN_SIMILARITY, full_coverage: float = FULL_COVERAGE,
                 partial_similarity: float = PARTIAL_SIMILARITY, anchor_share: float = ANCHOR_SHARE,
                 cache_size: int = 4096) -> None:
        self.embeddings = embeddings
        self.translate = translate
        self.min_coverage = min_coverage
        self.min_similarity = min_similarity
        self.full_coverage = full_coverage
        self.partial_similarity = partial_similarity
        self.anchor_share = anchor_share
        fixed = list(fixed)
        self._fixed_exact = {" ".join(words(t)) for t in fixed}
        self._fixed_stems: set[str] = set()
        self._fixed_numbers: set[str] = set()
        for t in fixed:
            self._fixed_stems |= _stems(t)
            self._fixed_numbers |= _numbers(t)
        self._cache: dict[tuple[str, int], _Lines] = {}
        self._cache_size = cache_size

    # -- passages, analysed once ----------------------------------------------------------------
    def _lines(self, passage: Passage) -> _Lines:
        key = (passage.id, hash(passage.text))
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        texts = passage_lines(passage.text)
        if self.translate is not None and passage.language != "en":
            english = []
            for line in texts:
                try:
                    en = self.translate(line)
                except Exception:  # noqa: BLE001 - a broken entry must not break answering
                    en = None
                if en and en != line:
                    english.append(en)
            texts = texts + english
        vocabulary: set[str] = set()
        for t in [*texts, *glossary_equivalents(passage.text)]:
            vocabulary |= _stems(t)
        lines = _Lines(texts, [_stems(t) for t in texts], [_numbers(t) for t in texts],
                       [_percents(t) for t in texts], [_negated(t) for t in texts], vocabulary)
        if len(self._cache) >= self._cache_size:
            self._cache.pop(next(iter(self._cache)))
        self._cache[key] = lines
        return lines

    def _vectors(self, lines: _Lines) -> np.ndarray:
        if lines.vectors is None:
            lines.vectors = _normalised(self.embeddings.embed_documents(lines.texts))
        return lines.vectors

    def warm(self, passages: Iterable[Passage]) -> None:
        """Analyse and embed passages ahead of time (e.g. the whole corpus at start-up)."""
        for p in passages:
            lines = self._lines(p)
            if self.embeddings is not None:
                self._vectors(lines)

    # -- one answer -----------------------------------------------------------------------------
    def check(self, text: str, passages: Iterable[Passage], question: str = "") -> SupportReport:
        started = time.perf_counter()
        by_n = {p.n: p for p in passages}
        free_numbers = _numbers(question)
        spans = split_sentences(text)
        results: list[SentenceSupport] = []
        for i, span in enumerate(spans):
            cited = sorted(set(citations(span.text)))
            if not cited and span.text.rstrip().endswith(":"):
                # "Il Comune prevede:" introducing bullets: it stands on what the bullets cite
                following = [c for s in spans[i + 1:] if s.bullet for c in citations(s.text)]
                cited = sorted(set(following))
            results.append(SentenceSupport(span.start, span.end, span.text, cited))
        pending: list[tuple[SentenceSupport, list[_Lines]]] = []
        for s in results:
            if not s.cited or self._is_fixed(s.text):
                s.fixed = self._is_fixed(s.text)
                s.supported = s.fixed
                s.reason = None if s.fixed else "no citation"
                continue
            given = [by_n[n] for n in s.cited if n in by_n]
            if len(given) != len(s.cited):
                s.reason = "cites a source not given"
                continue
            lines = [self._lines(p) for p in given]
            s.reason = self._lexical(s, lines, free_numbers)
            if s.reason is not None:
                continue
            if (s.coverage or 0) >= self.full_coverage and (s.anchor or 0) >= self.anchor_share:
                s.supported = True  # anchored on one line: lexically as close as the e5 check would require
            else:
                pending.append((s, lines))
        self._semantic(pending)
        return SupportReport(text, results, time.perf_counter() - started)

    def _is_fixed(self, sentence: str) -> bool:
        """The lead or a pointer to the URP: only the prompts' own words (and numbers), no claim."""
        if " ".join(words(CITATION.sub(" ", sentence))) in self._fixed_exact:
            return True
        stems = [_forms(w) for w in content_words(sentence)]
        return all(f & self._fixed_stems for f in stems) and _numbers(sentence) <= self._fixed_numbers

    def _lexical(self, s: SentenceSupport, lines: list[_Lines], free_numbers: set[str]) -> str | None:
        """Coverage of the content words, numbers on a line about the same thing, negation in the source."""
        vocabulary = set().union(*(ln.vocabulary for ln in lines))
        content = content_words(s.text)
        forms = [_forms(w) for w in content]
        covered = [bool(f & vocabulary) for f in forms]
        s.coverage = round(sum(covered) / len(covered), 3) if covered else 1.0
        if s.coverage < self.min_coverage:
            return "content not in the cited sources"
        sentence_stems = set().union(*forms) if forms else set()
        flat = [(ln, j) for ln in lines for j in range(len(ln.texts))]

        def overlap(ln: _Lines, j: int) -> int:
            return sum(1 for f in forms if f & ln.stems[j])

        best = max((overlap(ln, j) for ln, j in flat), default=0)
        s.anchor = round(best / len(forms), 3) if forms else 1.0
        best_lines = [(ln, j) for ln, j in flat if best and overlap(ln, j) == best]
        for token in NUMBER.findall(_numberless_citations(s.text)):
            value = number_forms(token)
            if value & free_numbers or _YEAR.fullmatch(token):
                continue  # a year dates the whole passage ("Obiettivi operativi 2023:"), not one line
            homes = [(ln, j) for ln, j in flat if value & ln.numbers[j]]
            if not homes:
                return "number not in the cited sources"
            if sentence_stems and not any(overlap(ln, j) for ln, j in homes):
                return "number from another fact"
        percents = _percents(s.text) - free_numbers
        if percents and best_lines:
            line_percents = set().union(*(ln.percents[j] for ln, j in best_lines))
            if line_percents and not (percents & line_percents):
                return "percentage from another fact"
        if _negated(s.text) and not any(ln.negated[j] for ln, j in flat if overlap(ln, j) >= max(1, best - 1)):
            return "negation not in the cited sources"
        return None

    def _semantic(self, pending: list[tuple[SentenceSupport, list[_Lines]]]) -> None:
        """e5 cosine between each sentence and its best cited line; one batched call for the sentences."""
        if not pending:
            return
        if self.embeddings is None:
            for s, _ in pending:
                s.supported = True
            return
        vectors = _normalised(self.embeddings.embed_documents([_plain(s.text) for s, _ in pending]))
        for (s, lines), v in zip(pending, vectors, strict=True):
            sims = np.concatenate([self._vectors(ln) @ v for ln in lines])
            s.similarity = round(float(sims.max()), 3) if sims.size else 0.0
            needed = self.min_similarity if (s.coverage or 0) >= self.full_coverage else self.partial_similarity
            s.supported = s.similarity >= needed
            s.reason = None if s.supported else "meaning not close to a cited line"


def _numberless_citations(text: str) -> str:
    return LIST_MARKER.sub(" ", CITATION.sub(" ", text))


def _plain(text: str) -> str:
    return " ".join(CITATION.sub(" ", _BULLET.sub("", text)).split())


def _normalised(vectors) -> np.ndarray:
    m = np.asarray(vectors, dtype=np.float32)
    if m.ndim == 1:
        m = m.reshape(1, -1)
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    return m / np.where(norms == 0, 1, norms)


# --- observers ---------------------------------------------------------------------------------
# Called with (dropped sentences, language, outcome "trimmed" | "extractive") when an answer had
# unsupported sentences; sibyl.observability adds a Prometheus counter here (no import from retrieval).
listeners: list[Callable[[int, str, str], None]] = []


def notify(dropped: int, language: str, outcome: str) -> None:
    for listener in listeners:
        try:
            listener(dropped, language, outcome)
        except Exception:
            log.exception("support listener failed")
