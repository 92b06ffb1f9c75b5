"""Per-process shared state (one pipeline, one store, one conversation service) and its dependencies.

The lifespan in api.app builds a `Services` once; endpoints receive its parts through `Depends`,
so tests and other channels can build the same objects without the web layer.
"""

from __future__ import annotations

import functools
import math
import os
import time
from dataclasses import dataclass, field
from typing import Annotated, Callable, TypeVar

import anyio
from fastapi import Depends, Request
from limits import RateLimitItem, parse_many
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from starlette.requests import HTTPConnection

from retrieval.pipeline import Pipeline
from sibyl.conversation import ConversationService
from sibyl.settings import Settings
from sibyl.store import Store


class RateLimited(Exception):
    """The client sent more requests than the configured limit allows."""

    def __init__(self, retry_after: int, limit: str) -> None:
        super().__init__(limit)
        self.retry_after = retry_after
        self.limit = limit


class ClientRateLimiter:
    """Per-client moving-window limits (the `limits` library); memory:// or a shared redis:// storage."""

    def __init__(self, spec: str, storage_uri: str = "memory://") -> None:
        self.items: list[RateLimitItem] = parse_many(spec) if spec.strip() else []
        self.limiter = MovingWindowRateLimiter(storage_from_string(storage_uri)) if self.items else None

    def check(self, key: str) -> None:
        if self.limiter is None:
            return
        for item in self.items:
            if not self.limiter.test(item, "sibyl-api", key):
                reset_at, _ = self.limiter.get_window_stats(item, "sibyl-api", key)
                raise RateLimited(max(1, math.ceil(reset_at - time.time())), str(item))
        for item in self.items:
            self.limiter.hit(item, "sibyl-api", key)


T = TypeVar("T")


@dataclass
class Services:
    settings: Settings
    pipeline: Pipeline
    store: Store
    conversation: ConversationService
    rate_limiter: ClientRateLimiter
    # Answering is CPU-bound: a few threads per process (not the default 40) keep the GIL from
    # thrashing under load, and the rest wait in order, which keeps tail latency close to the median.
    cpu_limiter: anyio.CapacityLimiter = field(
        default_factory=lambda: anyio.CapacityLimiter(max(1, min(4, os.cpu_count() or 1))))

    async def run(self, fn: Callable[..., T], *args, **kwargs) -> T:
        """Run blocking pipeline/store work off the event loop, within the CPU limiter."""
        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs), limiter=self.cpu_limiter)

    @classmethod
    def build(cls, settings: Settings) -> "Services":
        """Slow (loads the index, builds it if missing): call once per process, off the event loop."""
        pipeline = Pipeline.open(settings)
        store = Store.from_settings(settings)
        return cls(settings, pipeline, store, ConversationService(pipeline, store),
                   ClientRateLimiter(settings.rate_limit, settings.rate_limit_storage))

    def close(self) -> None:
        self.store.engine.dispose()


# The dependencies are `async def` on purpose: FastAPI runs plain `def` dependencies in the
# thread pool, one hop each, which costs more than these lookups themselves.
async def get_services(request: Request) -> Services:
    return request.app.state.services


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_pipeline(services: Annotated[Services, Depends(get_services)]) -> Pipeline:
    return services.pipeline


async def get_store(services: Annotated[Services, Depends(get_services)]) -> Store:
    return services.store


async def get_conversation(services: Annotated[Services, Depends(get_services)]) -> ConversationService:
    return services.conversation


def client_key(request: HTTPConnection) -> str:
    """The client's address: the one client-IP helper (rate limits, operator audit, log lines). Behind the
    proxies listed in SIBYL_TRUSTED_PROXIES it is already the forwarded client (api.middleware); a forwarded
    header from anyone else is ignored."""
    return request.client.host if request.client else "unknown"


async def rate_limit(request: Request, services: Annotated[Services, Depends(get_services)]) -> None:
    services.rate_limiter.check(client_key(request))  # in memory: microseconds; no thread hop


ServicesDep = Annotated[Services, Depends(get_services)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
PipelineDep = Annotated[Pipeline, Depends(get_pipeline)]
StoreDep = Annotated[Store, Depends(get_store)]
ConversationDep = Annotated[ConversationService, Depends(get_conversation)]
RateLimit = Depends(rate_limit)
