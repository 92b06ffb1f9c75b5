"""Hybrid retrieval: dense (the Chroma collection) and BM25, fused by reciprocal rank.

An English question also meets the English text of translated passages (``<passage>#en`` in the
collection, and in a second BM25 index over every passage plus the twins): per passage and per side the
better of its two ranks counts, then RRF, so a passage is one hit whichever language matched. Italian questions see
the Italian side only (their ranking is what it was before the translations), still with one query embedding.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings

from retrieval.config import ConfigSource, as_config
from retrieval.glossary import Expansion, expand
from retrieval.index import EN_SUFFIX, LoadedIndex
from retrieval.lexical import LexicalIndex, analyze_query

# Weight of each glossary-terms vector (Italian, English) beside the question's. The collection holds
# both languages, so the question is nudged towards the documents' words in both: on the dev set this
# matches the MRR of embedding "question (terms)" as one long text; the Italian terms alone lost 0.02.
EXPANSION_WEIGHT = 0.35
# The glossary is finite (a few hundred term groups); the bound only guards against a runaway glossary.
TERM_CACHE_SIZE = 4096
RARE_SHARE = 0.05  # a word at most this share of passages use is specific enough to look for when missed


@dataclass
class Hit:
    id: str
    record: dict
    score: float  # fused
    dense: float  # cosine similarity, 0 when the passage was not in the dense list
    lexical: float  # raw BM25
    dense_rank: int | None
    lexical_rank: int | None


@dataclass
class Filters:
    document: str | None = None
    area: int | None = None
    year: int | None = None
    # Passage ids never returned (operator-blocked passages; the app passes them in, retrieval stores nothing).
    exclude: frozenset[str] = frozenset()

    def where(self) -> dict | None:
        clauses: list[dict[str, Any]] = []
        if self.document:
            clauses.append({"document": self.document})
        if self.area is not None:
            clauses.append({"area": int(self.area)})
        if self.year is not None:
            clauses.append({f"year_{int(self.year)}": True})
        if not clauses:
            return None
        return clauses[0] if len(clauses) == 1 else {"$and": clauses}

    def matches(self, record: dict) -> bool:
        meta = record["metadata"]
        if self.exclude and record["id"] in self.exclude:
            return False
        if self.document and record["document"] != self.document:
            return False
        if self.area is not None and meta.get("area") != int(self.area):
            return False
        return self.year is None or bool(meta.get(f"year_{int(self.year)}"))


class HybridRetriever:
    def __init__(self, index: LoadedIndex, embeddings: Embeddings, config: ConfigSource) -> None:
        self.index = index
        self.config = as_config(config)
        self.embeddings = embeddings
        self._query_cache: OrderedDict[str, list[float]] = OrderedDict()
        # Glossary terms' vectors: finite, never evicted; each entry's are computed at ingest (index.term_vectors).
        self._term_cache: dict[str, np.ndarray] = dict(index.term_vectors) if index is not None else {}

    def embed_query(self, text: str) -> list[float]:
        vector = self._query_cache.get(text)
        if vector is None:
            vector = self.embeddings.embed_query(text)
            self._query_cache[text] = vector
            if len(self._query_cache) > 512:
                self._query_cache.popitem(last=False)
        return vector

    def dense_vector(self, query: str, expansion: Expansion) -> list[float]:
        """The question's own vector, nudged towards the glossary terms it names.

        e5 is multilingual, but the documents' own wording anchors short English questions. The terms get
        their own vectors, cached (the glossary is finite), so a question costs one short embedding: embedding
        "question (term; term; term)" instead made every query about twice as long (and costly).
        """
        vector = self.embed_query(query)
        terms = expansion.dense if self.config.dense_expansion else ()
        if not terms:
            return vector
        blended = np.asarray(vector, dtype=np.float32)
        for text in terms:
            blended += EXPANSION_WEIGHT * self._terms_vector(text)
        return (blended / (np.linalg.norm(blended) or 1.0)).tolist()

    def _terms_vector(self, terms: str) -> np.ndarray:
        vector = self._term_cache.get(terms)
        if vector is None:
            vector = np.asarray(self.embeddings.embed_query(terms), dtype=np.float32)
            if len(self._term_cache) < TERM_CACHE_SIZE:
                self._term_cache[terms] = vector
        return vector

    def search(self, query: str, k: int | None = None, filters: Filters | None = None,
               expansion: Expansion | None = None, language: str = "it", rescue: bool = False) -> list[Hit]:
        """`language`: the question's; "en" adds the English passages to both sides. `rescue`: also rank the
        passages holding a specific word of the question that the best ones lack (see _missed)."""
        k = k or self.config.top_k
        english = language == "en" and self.index.lexical_en is not None
        filters = filters or Filters()
        expansion = expansion if expansion is not None else expand(query)
        depth = max(self.config.candidates, k)

        dense_ranked = self._dense(self.dense_vector(query, expansion), filters,
                                   depth * 2 if self.index.lexical_en is not None else depth)
        dense_info = _best_ranks(dense_ranked, english, depth)

        tokens = analyze_query(" ".join([query, *expansion.terms]))
        lexical = self.index.lexical_en if english and self.index.lexical_en is not None else self.index.lexical
        lex_info = _best_ranks(self._lexical(lexical, tokens, filters, depth * 2 if english else depth),
                               english, depth)

        fused: dict[str, float] = {}
        rrf = self.config.rrf_k
        for cid, (rank, _) in dense_info.items():
            fused[cid] = fused.get(cid, 0.0) + self.config.dense_weight / (rrf + rank + 1)
        for cid, (rank, _) in lex_info.items():
            fused[cid] = fused.get(cid, 0.0) + self.config.lexical_weight / (rrf + rank + 1)
        best = sorted(fused.items(), key=lambda kv: -kv[1])[:k]
        rescued = self._missed(lexical, query, {cid for cid, _ in best}, filters) if rescue else []
        if rescued:
            for rank, (cid, score) in enumerate(rescued):
                fused[cid] = fused.get(cid, 0.0) + self.config.lexical_weight / (rrf + rank + 1)
                lex_info.setdefault(cid, (len(lex_info), score))
            best = sorted(fused.items(), key=lambda kv: -kv[1])[:k]
        hits = []
        for cid, score in best:
            record = self.index.records.get(cid)
            if record is None:
                continue
            d_rank, d_sim = dense_info.get(cid, (None, 0.0))
            l_rank, l_score = lex_info.get(cid, (None, 0.0))
            hits.append(Hit(cid, record, score, d_sim, l_score, d_rank, l_rank))
        return hits

    def _missed(self, lexical: LexicalIndex, query: str, top: set[str], filters: Filters) -> list[tuple[str, float]]:
        """Passages holding a specific word of the question (one few passages use: "City4Age") that none of the
        best passages holds, best first. A question in Italian about an English-only page can lose it to pages
        that repeat a common word ("progetto") and sit closer in the embedding. Only a search that would
        otherwise be declined asks for this: promoting every rare word costs the ranking elsewhere."""
        found: dict[str, float] = {}
        limit = max(1, round(RARE_SHARE * len(lexical.ids)))
        for token in dict.fromkeys(analyze_query(query)):
            scores = lexical.scores([token])
            holders = np.nonzero(scores > 0)[0]
            if not 0 < len(holders) <= limit or any(_passage(lexical.ids[i]) in top for i in holders):
                continue
            for i in holders:
                pid = _passage(lexical.ids[i])
                record = self.index.records.get(pid)
                if record is not None and filters.matches(record):
                    found[pid] = max(found.get(pid, 0.0), float(scores[i]))
        return sorted(found.items(), key=lambda kv: -kv[1])

    def _dense(self, vector: list[float], filters: Filters, n: int) -> list[tuple[str, float]]:
        """(id, cosine) best first, at most `n`: the collection holds the English twins too, so the caller
        asks twice its depth to keep `depth` passages of each side."""
        vectors = self.index.vectors
        if vectors is None:
            # Ids and distances only: the passages are already in memory (index.records), and asking
            # Chroma for documents and metadatas too doubles the cost of the query.
            found = self.index.collection.query(query_embeddings=[vector], n_results=n, where=filters.where(),
                                                include=["distances"])
            return [(cid, 1.0 - float(distance))
                    for cid, distance in zip(found["ids"][0], found["distances"][0], strict=True)
                    if _passage(cid) not in filters.exclude]
        ranked: list[tuple[str, float]] = []
        for cid, similarity in vectors.ranked(vector):
            record = self.index.records.get(_passage(cid))
            if record is not None and filters.matches(record):
                ranked.append((cid, similarity))
                if len(ranked) >= n:
                    break
        return ranked

    def _lexical(
        self, lexical: LexicalIndex, tokens: list[str], filters: Filters, depth: int
    ) -> list[tuple[str, float]]:
        scores = lexical.scores(tokens)
        ids = lexical.ids
        ranked: list[tuple[str, float]] = []
        for i in np.argsort(-scores):
            if scores[i] <= 0 or len(ranked) >= depth:
                break
            record = self.index.records.get(_passage(ids[i]))
            if record is not None and filters.matches(record):
                ranked.append((ids[i], float(scores[i])))
        return ranked


def _passage(cid: str) -> str:
    return cid.removesuffix(EN_SUFFIX)


def _best_ranks(ranked: list[tuple[str, float]], english: bool, depth: int) -> dict[str, tuple[int, float]]:
    """Passage id -> (rank, score), ranks counted over distinct passages: an English twin and its original
    count once, at the better (first) place; without `english` the twins are skipped."""
    out: dict[str, tuple[int, float]] = {}
    for cid, score in ranked:
        if not english and cid.endswith(EN_SUFFIX):
            continue
        pid = _passage(cid)
        if pid not in out and len(out) < depth:
            out[pid] = (len(out), score)
    return out
