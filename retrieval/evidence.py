"""How well the retrieved passages cover the question: the basis for answering or abstaining.

Two signals, both in 0..1: lexical coverage (the IDF-weighted share of the question's content
words found in the top passages, directly or through the glossary) and dense similarity of the
best passage rescaled between two calibration points. Words the corpus has never seen weigh the
most, which is what pushes "ricetta del pasticciotto" or "World Cup" below the threshold.

An English question is read against each passage's Italian and English words (``record["en"]``, the
reviewed translation the index stored): ``score(..., language="en")`` uses those bilingual token
sets and their document frequencies; Italian questions see the Italian ones only, as before.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from retrieval.glossary import Expansion
from retrieval.lexical import ALL_STOPWORDS, _stemmer, analyze, query_words, words

TOP = 3  # coverage is read in each of the best passages: scattered words across passages are not evidence
# Words that appear in almost any question to a city assistant and carry no topic.
GENERIC = set(
    [
        "lecce", "leccese", "comune", "citta", "city", "municipality", "municipal", "council", "town",
        "amministrazione", "administration", "fa", "fanno", "fare", "fatto", "facendo", "prevede", "previsto",
        "previsti", "prevista", "previste", "sono", "ci", "c", "e", "stato", "stata", "stati", "do", "does", "doing",
        "done", "doing", "plan", "plans", "planned", "planning", "there", "any", "anything", "what", "whats", "which",
        "who", "how", "much", "many", "is", "are", "was", "were", "being", "been", "will", "would", "city's", "lecce's",
        "cosa", "quali", "quale", "qual", "come", "quanto", "quanta", "quanti", "quante", "chi", "dove", "quando",
        "perche", "about", "tell", "me", "please", "per", "favore", "puoi", "potete", "can", "could", "know", "sapere",
        "dimmi", "iniziative", "initiative", "initiatives", "progetto", "piano", "piani", "novita", "news",
        "interventi", "intervento", "attivita",
        "activities", "activity", "nel", "nella", "nei", "sul", "sulla", "al", "alla", "del", "della", "dei", "delle",
        "the", "improve", "improving", "happen", "happened", "happening", "move", "moving", "install", "installing",
        "collect", "collected", "reach", "reached", "make", "making", "get", "getting", "give", "provide", "providing",
        "offer", "offering", "support", "supporting", "manage", "managing", "help", "helping", "according", "page",
        "pages", "document", "documents", "novita", "news", "nuovo", "nuova", "nuovi", "nuove", "new", "ogni", "every",
        # Folded adverbs and modals a question carries around its topic ("si può…", "qui", "still", "actually").
        "puo", "possono", "posso", "qui", "qua", "gia", "ancora", "cosi", "sara", "saranno", "adesso", "ora", "oggi",
        "still", "actually", "really", "just", "also", "too", "here", "now", "today",
        "pensa", "pensare", "pensando", "think", "thinking", "servono", "serve", "need", "needs", "vorrei", "want",
        "ke", "xke", "cmq", "nn", "pk",  # chat spellings ("ke fa il comune x…")
        # How far something got is the question's frame, not its topic ("what did Lecce achieve on transport?").
        "achieve", "achieved", "achievement", "realizzato", "realizzata", "realizzati", "raggiunto", "raggiunti",
    ]
)


@dataclass
class Evidence:
    coverage: float
    dense: float
    score: float
    missing: list[str]
    uncovered: list[str] = field(default_factory=list)  # required focus the passages never name


class EvidenceScorer:
    def __init__(self, records: dict[str, dict], dense_low: float = 0.78, dense_high: float = 0.90,
                 lexical_weight: float = 0.65, unknown_weight: float = 0.5) -> None:
        self.dense_low = dense_low
        self.dense_high = dense_high
        self.lexical_weight = lexical_weight
        self.unknown_weight = unknown_weight
        self._tokens: dict[str, set[str]] = {}
        for cid, rec in records.items():
            self._tokens[cid] = set(analyze(rec["text"], rec.get("language", "it")))
        self._idf = _idf(self._tokens)
        self._max_idf = math.log(1 + max(len(records), 1))
        # Italian and English words of the translated passages, for English questions.
        self._tokens_en = {cid: toks | set(analyze(records[cid]["en"]["text"], "en")) if "en" in records[cid] else toks
                           for cid, toks in self._tokens.items()}
        self._idf_en = _idf(self._tokens_en) if any("en" in r for r in records.values()) else self._idf

    def _view(self, language: str) -> tuple[dict[str, set[str]], dict[str, float]]:
        return (self._tokens_en, self._idf_en) if language == "en" else (self._tokens, self._idf)

    def idf(self, stems: list[str], language: str = "it") -> float:
        idf = self._view(language)[1]
        known = [idf[s] for s in stems if s in idf]
        return min(known) if known else self._max_idf

    def content_terms(self, question: str) -> list[str]:
        return [w for w in query_words(question) if w not in ALL_STOPWORDS and w not in GENERIC and len(w) > 1]

    def known(self, term: str, language: str = "it") -> bool:
        idf = self._view(language)[1]
        return any(s in idf for s in (_stemmer("it").stemWord(term), _stemmer("en").stemWord(term)))

    def uncovered(self, phrases: list[str], hit_ids: list[str], top: int = 3, language: str = "it") -> list[str]:
        """Required focus phrases (a desk service, a street name) whose words no top passage contains."""
        view = self._view(language)[0]
        tokens: set[str] = set()
        for cid in hit_ids[:top]:
            tokens |= view.get(cid, set())
        out = []
        for phrase in phrases:
            content = [w for w in words(phrase) if w not in ALL_STOPWORDS] or words(phrase)
            if not all(_stemmer("it").stemWord(w) in tokens or _stemmer("en").stemWord(w) in tokens for w in content):
                out.append(phrase)
        return out

    def score(self, question: str, hit_ids: list[str], top_dense: float, expansion: Expansion,
              required: list[str] | None = None, language: str = "it") -> Evidence:
        # Coverage is read passage by passage (the best of the top few): words scattered over
        # several passages are not evidence, but the best answer need not be ranked first.
        glossary_words = {w for term in expansion.matched for w in words(term)}
        tokens, idf = self._view(language)
        terms = []
        for term in self.content_terms(question):
            stems = list({_stemmer("it").stemWord(term), _stemmer("en").stemWord(term)})
            weight = self.idf(stems, language)
            if not any(s in idf for s in stems) and term not in glossary_words:
                # A word the documents never use and the glossary doesn't know: often chatter
                # ("mia mamma", "passano ogni…"), sometimes the real topic ("football"): it counts, less.
                weight *= self.unknown_weight
            terms.append((term, stems, weight))
        total = sum(weight for _, _, weight in terms)
        italian = [set(analyze(t, "it")) for t in expansion.italian]
        coverage, missing = 0.0, [term for term, _, _ in terms]
        for cid in hit_ids[:TOP]:
            passage_tokens = tokens.get(cid, set())
            expanded_hits = glossary_words if any(t & passage_tokens for t in italian) else set()
            covered = 0.0
            gaps = []
            for term, stems, weight in terms:
                if any(s in passage_tokens for s in stems) or term in expanded_hits:
                    covered += weight
                else:
                    gaps.append(term)
            share = covered / total if total else 0.0
            if share > coverage or cid == hit_ids[0]:
                coverage, missing = share, gaps
        dense = (top_dense - self.dense_low) / (self.dense_high - self.dense_low)
        dense = min(1.0, max(0.0, dense))
        score = self.lexical_weight * coverage + (1 - self.lexical_weight) * dense
        uncovered = self.uncovered(required or [], hit_ids, language=language)
        return Evidence(round(coverage, 3), round(dense, 3), round(score, 3), missing, uncovered)


def _idf(tokens: dict[str, set[str]]) -> dict[str, float]:
    df: dict[str, int] = {}
    for toks in tokens.values():
        for t in toks:
            df[t] = df.get(t, 0) + 1
    n = max(len(tokens), 1)
    return {t: math.log(1 + n / c) for t, c in df.items()}
