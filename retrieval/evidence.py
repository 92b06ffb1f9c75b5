"""How well the retrieved passages cover the question: the basis for answering or abstaining.

Two signals, both in 0..1: lexical coverage (the IDF-weighted share of the question's content
words found in the top passages, directly or through the glossary) and dense similarity of the
best passage rescaled between two calibration points. Words the corpus has never seen weigh the
most, which is what pushes "ricetta del pasticciotto" or "World Cup" below the threshold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from retrieval.glossary import Expansion
from retrieval.lexical import ALL_STOPWORDS, _stemmer, analyze, words


TOP = 1  # coverage is read in the best passage: scattered words across passages are not evidence
# Words that appear in almost any question to a city assistant and carry no topic.
GENERIC = set(
    """lecce leccese comune citta city municipality municipal council town amministrazione administration
    fa fanno fare fatto facendo prevede previsto previsti prevista previste sono ci c e stato stata stati
    do does doing done doing plan plans planned planning there any anything what whats which who how much many
    is are was were being been will would city's lecce's cosa quali quale qual come quanto quanta quanti quante
    chi dove quando perche about tell me please per favore puoi potete can could know sapere dimmi
    iniziative initiative initiatives progetto interventi intervento attivita activities activity
    nel nella nei sul sulla al alla del della dei delle the
    improve improving happen happened happening move moving install installing collect collected reach reached
    make making get getting give provide providing offer offering support supporting manage managing help helping
    according page pages document documents""".split()
)


@dataclass
class Evidence:
    coverage: float
    dense: float
    score: float
    missing: list[str]


class EvidenceScorer:
    def __init__(self, records: dict[str, dict], dense_low: float = 0.78, dense_high: float = 0.90,
                 lexical_weight: float = 0.65) -> None:
        self.dense_low = dense_low
        self.dense_high = dense_high
        self.lexical_weight = lexical_weight
        self._tokens: dict[str, set[str]] = {}
        df: dict[str, int] = {}
        for cid, rec in records.items():
            toks = set(analyze(rec["text"], rec.get("language", "it")))
            self._tokens[cid] = toks
            for t in toks:
                df[t] = df.get(t, 0) + 1
        n = max(len(records), 1)
        self._idf = {t: math.log(1 + n / c) for t, c in df.items()}
        self._max_idf = math.log(1 + n)

    def idf(self, stems: list[str]) -> float:
        known = [self._idf[s] for s in stems if s in self._idf]
        return min(known) if known else self._max_idf

    def content_terms(self, question: str) -> list[str]:
        return [w for w in words(question) if w not in ALL_STOPWORDS and w not in GENERIC and len(w) > 1]

    def score(self, question: str, hit_ids: list[str], top_dense: float, expansion: Expansion) -> Evidence:
        passage_tokens: set[str] = set()
        for cid in hit_ids[:TOP]:
            passage_tokens |= self._tokens.get(cid, set())
        expanded_hits = {
            w
            for term in expansion.matched
            for w in words(term)
        } if any(set(analyze(t, "it")) & passage_tokens for t in expansion.italian) else set()
        total = covered = 0.0
        missing = []
        for term in self.content_terms(question):
            stems = list({_stemmer("it").stemWord(term), _stemmer("en").stemWord(term)})
            weight = self.idf(stems)
            total += weight
            if any(s in passage_tokens for s in stems) or term in expanded_hits:
                covered += weight
            else:
                missing.append(term)
        coverage = covered / total if total else 0.0
        dense = (top_dense - self.dense_low) / (self.dense_high - self.dense_low)
        dense = min(1.0, max(0.0, dense))
        score = self.lexical_weight * coverage + (1 - self.lexical_weight) * dense
        return Evidence(round(coverage, 3), round(dense, 3), round(score, 3), missing)
