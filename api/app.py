"""The FastAPI application: `create_app(settings)` builds it; `sibyl serve` serves it with the Telegram
webhook mounted (sibyl.server; api/ never imports bot/).

The services (pipeline, store, conversation, limiters, back office) come from the composition root
(sibyl.services.build_services), once per process in the lifespan, and reach the endpoints through
dependencies (api.deps). Other features plug in here with one line each (`app.include_router(...)`,
`app.add_middleware(...)`), or from outside as an `extensions` callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.concurrency import run_in_threadpool
from starlette.middleware.gzip import GZipMiddleware

from api import documents, errors, handoff, middleware, routes, stream, voice, web
from api import operator as operator_console
from api.operator.deps import Console
from sibyl.observability import install_observability, process_exiting
from sibyl.services import Services, build_services
from sibyl.settings import Settings, get_settings
from sibyl.store import Store

log = logging.getLogger(__name__)


async def purge_once(store: Store) -> None:
    try:
        deleted = await run_in_threadpool(store.purge)
        if deleted:
            log.info("retention purge deleted %d messages", deleted)
    except Exception:  # a failed purge must not stop the service; the next run retries
        log.exception("retention purge failed")


async def purge_periodically(store: Store, every_seconds: float) -> None:
    """Delete messages past retention every `every_seconds` (personal data minimisation)."""
    while True:
        await asyncio.sleep(every_seconds)
        await purge_once(store)


@asynccontextmanager
async def lifespan(app: FastAPI):
    settings: Settings = app.state.settings
    services: Services = await run_in_threadpool(app.state.build_services, settings)
    app.state.services = services
    app.state.operator_console = Console.of(services) if services.backoffice is not None else None
    await purge_once(services.store)  # before serving: nothing past retention is ever shown
    purge = asyncio.create_task(purge_periodically(services.store, settings.purge_interval_minutes * 60))
    try:
        yield
    finally:
        purge.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await purge
        services.close()
        process_exiting()


def create_app(settings: Settings | None = None, *,
               build: Callable[[Settings], Services] = build_services,
               extensions: Iterable[Callable[[FastAPI], None]] = ()) -> FastAPI:
    """`build` makes the services in the lifespan (tests pass one with a fake pipeline); each of
    `extensions` adds routes to the app (sibyl.server mounts the Telegram webhook this way)."""
    settings = settings or get_settings()
    app = FastAPI(
        title="Sibyl – Comune di Lecce",
        summary="Citizen assistant over the City of Lecce's plan documents: cited answers in Italian and English.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.build_services = build
    errors.install(app)
    # Innermost first: the operator upload check and CORS wrap the body limit. Uploads have their own,
    # larger limit (with room for the multipart framing; api.operator checks the declared size first).
    middleware.install_body_limit(app, settings, path_limits={
        f"{operator_console.PREFIX}/documenti": settings.upload_max_bytes + 128 * 1024, **voice.body_limit(settings)})
    if settings.cors_origin_list:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origin_list, allow_methods=["GET", "POST"],
                           allow_headers=["Content-Type"], max_age=600)
    app.include_router(routes.api)
    app.include_router(routes.health)
    app.include_router(stream.router)  # POST /api/chat/stream (server-sent events)
    app.include_router(handoff.router)  # POST /api/handoff: talk to a person (issue 15)
    voice.install(app)  # POST /api/voice, GET /api/tts (issue 16)
    web.mount(app)
    app.include_router(documents.router)  # GET /documenti/<id>: the cited documents, public (issue 17)
    operator_console.install(app)  # URP operator console under /operatore
    for extend in extensions:
        extend(app)
    # Pages, scripts and JSON gzipped for clients that accept it (chat.js 32 KB -> about 10 KB); Starlette leaves
    # text/event-stream alone, so /api/chat/stream still sends each token as it is written.
    app.add_middleware(GZipMiddleware, minimum_size=1024)
    install_observability(app, settings)  # JSON request log lines + GET /metrics (sibyl.observability)
    middleware.install_spread_connections(app, settings)  # several workers: crowded ones ask clients to reconnect
    middleware.install_proxy_headers(app, settings)  # outermost: everything after sees the real client
    return app
