"""The API's dependencies: the process's services (sibyl.services, built once by the app's lifespan)
and their parts through `Depends`, the client key and the per-client rate limit."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from retrieval.pipeline import Pipeline
from sibyl.conversation import ConversationService
from sibyl.ratelimit import RateLimited
from sibyl.services import Services
from sibyl.settings import Settings
from sibyl.store import Store

__all__ = ["RateLimited", "Services", "client_key", "rate_limit"]  # RateLimited: for the error handlers


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
