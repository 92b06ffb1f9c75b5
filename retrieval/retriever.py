"""Hybrid retrieval: dense (the Chroma collection) and BM25, fused by reciprocal rank."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from langchain_core.embeddings import Embeddings

from retrieval.config import ConfigSource, as_config
from retrieval.glossary import Expansion, expand
from retrieval.index import LoadedIndex
from retrieval.lexical import analyze_query


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

    def where(self) -> dict | None:
        clauses = []
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
        if self.document and record["document"] != self.document:
            return False
        if self.area is not None and meta.get("area") != int(self.area):
            return False
        if self.year is not None and not meta.get(f"year_{int(self.year)}"):
            return False
        return True


class HybridRetriever:
    def __init__(self, index: LoadedIndex, embeddings: Embeddings, config: ConfigSource) -> None:
        self.index = index
        self.config = as_config(config)
        self.embeddings = embeddings
        self._query_cache: OrderedDict[str, list[float]] = OrderedDict()

    def embed_query(self, text: str) -> list[float]:
        vector = self._query_cache.get(text)
        if vector is None:
            vector = self.embeddings.embed_query(text)
            self._query_cache[text] = vector
            if len(self._query_cache) > 512:
                self._query_cache.popitem(last=False)
        return vector

    def search(self, query: str, k: int | None = None, filters: Filters | None = None,
               expansion: Expansion | None = None) -> list[Hit]:
        k = k or self.config.top_k
        filters = filters or Filters()
        expansion = expansion if expansion is not None else expand(query)
        depth = max(self.config.candidates, k)

        dense_query = query
        if expansion.italian and self.config.dense_expansion:
            # e5 is multilingual, but adding the documents' own wording anchors short English questions.
            dense_query = f"{query} ({'; '.join(expansion.italian[:3])})"
        # Ids and distances only: the passages are already in memory (index.records), and asking
        # Chroma for documents and metadatas too doubles the cost of the query.
        found = self.index.collection.query(query_embeddings=[self.embed_query(dense_query)], n_results=depth,
                                            where=filters.where(), include=["distances"])
        dense_ranked = [(cid, 1.0 - float(distance)) for cid, distance in zip(found["ids"][0], found["distances"][0])]

        tokens = analyze_query(" ".join([query, *expansion.terms]))
        scores = self.index.lexical.scores(tokens)
        ids = self.index.lexical.ids
        order = np.argsort(-scores)
        lexical_ranked = []
        for i in order:
            if scores[i] <= 0 or len(lexical_ranked) >= depth:
                break
            record = self.index.records.get(ids[i])
            if record is not None and filters.matches(record):
                lexical_ranked.append((ids[i], float(scores[i])))

        fused: dict[str, float] = {}
        dense_info = {cid: (rank, sim) for rank, (cid, sim) in enumerate(dense_ranked)}
        lex_info = {cid: (rank, sc) for rank, (cid, sc) in enumerate(lexical_ranked)}
        rrf = self.config.rrf_k
        for cid, (rank, _) in dense_info.items():
            fused[cid] = fused.get(cid, 0.0) + self.config.dense_weight / (rrf + rank + 1)
        for cid, (rank, _) in lex_info.items():
            fused[cid] = fused.get(cid, 0.0) + self.config.lexical_weight / (rrf + rank + 1)
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
