"""BM25 over the chunks (bm25s), with Italian/English stemming (PyStemmer) and accent folding."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

import bm25s
import numpy as np
import Stemmer

from retrieval.limits import QUERY_CHARS
from retrieval.text import fold, fold_head

_TOKEN = re.compile(r"[a-z0-9]+")

# Function words only: content words must stay searchable. Folded (no accents).
STOPWORDS = {
    "it": set(
        [
            "a", "ad", "al", "alla", "alle", "allo", "agli", "ai", "anche", "che", "chi", "ci", "con", "come", "cosa",
            "cui", "da", "dal", "dalla", "dalle", "dei", "del", "della", "delle", "dello", "degli", "di", "e", "ed",
            "gli", "ha", "hanno", "i", "il", "in", "la", "le", "lo", "ma", "ne", "nei", "nel", "nella", "nelle",
            "nello", "non", "o", "per", "piu", "poi", "quale", "quali", "quando", "quanto", "quanti", "quante",
            "questo", "questa", "questi", "queste", "quello", "quella", "se", "si", "sono", "su", "sua", "suo", "sue",
            "suoi", "sul", "sulla", "tra", "un", "una", "uno", "e", "essere", "stato", "stata", "sta", "stanno", "fa",
            "fare", "fatto", "ci", "c", "l", "d", "dell", "all", "dall", "nell", "sull", "quello", "cosa", "cos",
            "qual", "quale", "come", "dove", "perche", "mi", "ti", "vi", "mio", "tuo",
        ]
    ),
    "en": set(
        [
            "a", "an", "the", "and", "or", "of", "to", "in", "on", "at", "for", "by", "with", "from", "about", "as",
            "is", "are", "was", "were", "be", "been", "being", "do", "does", "did", "has", "have", "had", "what",
            "which", "who", "whom", "whose", "when", "where", "why", "how", "this", "that", "these", "those", "it",
            "its", "there", "their", "they", "them", "we", "our", "you", "your", "i", "me", "my", "can", "could",
            "would", "should", "will", "shall", "may", "might", "into", "any", "some", "such", "than", "then", "so",
            "if", "not", "no", "yes",
        ]
    ),
}
ALL_STOPWORDS = STOPWORDS["it"] | STOPWORDS["en"]


@lru_cache(maxsize=2)
def stemmer(language: str):
    """The Snowball stemmer of one language ('it', else English), one per process (PyStemmer)."""
    return Stemmer.Stemmer("italian" if language == "it" else "english")


_stemmer = stemmer  # the old private name, until every importer uses stemmer()


def words(text: str) -> list[str]:
    return _TOKEN.findall(fold(text))


def analyze(text: str, language: str) -> list[str]:
    """Tokens for a passage: folded, stopwords dropped, stemmed in the passage's language."""
    toks = [t for t in words(text) if t not in ALL_STOPWORDS and (len(t) > 1 or t.isdigit())]
    return stemmer(language).stemWords(toks)


def query_words(text: str) -> list[str]:
    """words() of a question's head (QUERY_CHARS): a question's cost must not grow with its length."""
    return _TOKEN.findall(fold_head(text, QUERY_CHARS))


def analyze_query(text: str) -> list[str]:
    """A question may be in either language and meets passages in both: stem it both ways."""
    toks = [t for t in query_words(text) if t not in ALL_STOPWORDS and (len(t) > 1 or t.isdigit())]
    it = stemmer("it").stemWords(toks)
    en = stemmer("en").stemWords(toks)
    out: list[str] = []
    for a, b in zip(it, en, strict=True):
        out.append(a)
        if b != a:
            out.append(b)
    return out


class LexicalIndex:
    def __init__(self, retriever: bm25s.BM25, ids: list[str]) -> None:
        self.retriever = retriever
        self.ids = ids
        self._vocab = set(retriever.vocab_dict) if hasattr(retriever, "vocab_dict") else set()

    @classmethod
    def build(cls, ids: list[str], texts: list[str], languages: list[str]) -> LexicalIndex:
        tokens = [analyze(t, lang) or ["_empty_"] for t, lang in zip(texts, languages, strict=True)]
        retriever = bm25s.BM25()
        retriever.index(tokens, show_progress=False)
        return cls(retriever, list(ids))

    def save(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.retriever.save(str(path), show_progress=False)
        (path / "ids.json").write_text(json.dumps(self.ids), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> LexicalIndex:
        retriever = bm25s.BM25.load(str(path), show_progress=False)
        ids = json.loads((path / "ids.json").read_text(encoding="utf-8"))
        return cls(retriever, ids)

    def scores(self, query_tokens: list[str]) -> np.ndarray:
        known = [t for t in query_tokens if t in self._vocab]
        if not known:
            return np.zeros(len(self.ids), dtype=np.float32)
        return np.asarray(self.retriever.get_scores(known), dtype=np.float32)
