"""The composition root: the one place that builds Sibyl's long-lived objects from the settings.

Every entry point calls `build_services(settings)` once per process: the API's lifespan (which also
serves the Telegram webhook), `sibyl telegram` (long polling) and the CLI commands that converse.
Commands that only search or answer (`sibyl ask`, `search`, `eval`) call `build_pipeline(settings)`,
the same first step without the database. Tests inject a pipeline (tests/fakes.py) to run the
channels without an index.

Layers look down only: retrieval/ (config and hooks passed in) <- sibyl/ (store, conversation, back
office, this root) <- api/ and bot/ (adapters, which never import each other; sibyl/server.py mounts
the bot's webhook on the API app).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import anyio

from retrieval.config import RetrievalHooks
from retrieval.index import IndexStore
from retrieval.pipeline import Pipeline
from retrieval.translations import TranslationStore
from sibyl import observability
from sibyl.backoffice.accounts import Operators
from sibyl.backoffice.cases import Cases
from sibyl.backoffice.documents import DocumentManager
from sibyl.backoffice.faq import VerifiedAnswers, VerifiedFirst
from sibyl.backoffice.offices import Directory
from sibyl.conversation import ConversationService
from sibyl.ratelimit import RateLimiter
from sibyl.settings import Settings
from sibyl.store import Store
from sibyl.voice import VoiceService

T = TypeVar("T")


def cpu_slots() -> anyio.CapacityLimiter:
    # Answering is CPU-bound: a few threads per process (not the default 40) keep the GIL from
    # thrashing under load, and the rest wait in order, which keeps tail latency close to the median.
    return anyio.CapacityLimiter(max(1, min(4, os.cpu_count() or 1)))


@dataclass
class BackOffice:
    """The URP operators' services: accounts and audit, document jobs, the login throttle."""

    operators: Operators
    documents: DocumentManager
    # Login attempts per client address, counted before any password hashing (argon2: 64 MiB, ~0.1 s).
    login_limiter: RateLimiter
    # Logins waiting for a hash slot wait here, not in a thread of the shared pool.
    login_slots: anyio.CapacityLimiter


@dataclass
class Services:
    settings: Settings
    pipeline: Pipeline
    store: Store
    conversation: ConversationService
    rate_limiter: RateLimiter
    backoffice: BackOffice | None = None
    translations: TranslationStore | None = None  # shipped + data-directory English lines (operator review)
    voice: VoiceService | None = None  # speech in and out (issue 16); the ASR model loads on first use
    cases: Cases | None = None  # citizens' requests for a person (issue 15): web handoff, Telegram, console
    offices: Directory | None = None  # the offices directory a decline names (issue 15)
    faq: VerifiedAnswers | None = None  # the URP's verified answers and blocked passages (issue 15)
    cpu_limiter: anyio.CapacityLimiter = field(default_factory=cpu_slots)

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run blocking pipeline/store work off the event loop, within the CPU limiter (every channel)."""
        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs), limiter=self.cpu_limiter)

    def close(self) -> None:
        self.store.engine.dispose()


def build_pipeline(settings: Settings, build_if_missing: bool = True,
                   hooks: RetrievalHooks | None = None) -> Pipeline:
    """The loaded pipeline, with the index metrics hooked in; builds the index first when there is none."""
    index = IndexStore(settings, hooks=hooks or observability.retrieval_hooks())
    if index.current() is None:
        if not build_if_missing:
            index.load()  # raises IndexMissing with a clear message
        index.ingest()
    pipeline = Pipeline(settings, index)
    pipeline.warm()
    return pipeline


def build_backoffice(settings: Settings, pipeline: Pipeline, store: Store) -> BackOffice:
    operators = Operators.from_settings(settings, engine=store.engine)

    def audit_job(job) -> None:
        operators.audit(job.username, f"{job.kind}_{job.state}",
                        {"job": job.id, "document": job.document, "message": job.message,
                         "generation": job.generation})

    return BackOffice(operators, DocumentManager(pipeline, settings.upload_max_bytes, on_finish=audit_job),
                      RateLimiter(settings.operator_login_rate_limit, settings.rate_limit_storage),
                      anyio.CapacityLimiter(settings.operator_login_concurrency))


def build_services(settings: Settings, *, pipeline: Pipeline | None = None, store: Store | None = None,
                   backoffice: bool = True) -> Services:
    """Slow (loads the index, builds it if missing): call once per process, off the event loop.

    `pipeline`/`store` are for tests (a fake pipeline, a shared store); `backoffice=False` skips the
    operator services (the Telegram poller has no console).
    """
    pipeline = pipeline if pipeline is not None else build_pipeline(settings)
    store = store if store is not None else Store.from_settings(settings)
    # Verified answers are matched with the pipeline's own (cached) e5 query vectors; a test double has none.
    embed = (lambda text: pipeline.retriever.embed_query(text)) if hasattr(pipeline, "retriever") else None
    faq = VerifiedAnswers(store.engine, embed, settings.faq_match_threshold)
    offices = Directory(store.engine)
    return Services(
        settings=settings,
        pipeline=pipeline,
        store=store,
        conversation=ConversationService(cast(Pipeline, VerifiedFirst(pipeline, faq)), store,
                                         settings.context_turns, office_pointer=offices.pointer),
        rate_limiter=RateLimiter(settings.rate_limit, settings.rate_limit_storage),
        faq=faq,
        backoffice=build_backoffice(settings, pipeline, store) if backoffice else None,
        translations=TranslationStore.under(settings.corpus_dir, settings.data_dir) if backoffice else None,
        voice=VoiceService.from_settings(settings),  # cheap: no model is loaded here
        cases=Cases(store.engine, settings.case_retention_days),
        offices=offices,
    )
