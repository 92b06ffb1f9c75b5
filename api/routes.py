"""JSON endpoints: chat, search, feedback, documents, UI strings, health. No retrieval logic here."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from api.deps import PipelineDep, RateLimit, ServicesDep
from api.models import (
    ChatRequest,
    ChatResponse,
    DocumentOut,
    DocumentsResponse,
    ErrorResponse,
    FeedbackRequest,
    FeedbackResponse,
    Health,
    Language,
    Ready,
    SearchRequest,
    SearchResponse,
)
from api.web import ui_strings as load_ui
from retrieval.retriever import Filters

log = logging.getLogger(__name__)

ERRORS: dict[int | str, dict[str, Any]] = {status: {"model": ErrorResponse} for status in (400, 404, 422, 429)}

api = APIRouter(prefix="/api", tags=["api"], responses=ERRORS)
health = APIRouter(tags=["health"])


@api.post("/chat", response_model=ChatResponse, dependencies=[RateLimit])
async def chat(body: ChatRequest, services: ServicesDep) -> dict:
    """Answer a message in its conversation (a new one without session_id); follow-ups use the context."""
    reply = await services.run(services.conversation.reply, body.message, session_id=body.session_id,
                               channel="web", language=body.language, language_hint=body.language_hint)
    return reply.to_dict()


@api.post("/search", response_model=SearchResponse, dependencies=[RateLimit])
async def search(body: SearchRequest, services: ServicesDep) -> dict:
    """The passages retrieved for a query (same object as `sibyl search --json`)."""
    f = body.filters
    filters = Filters(document=f.document, area=f.area, year=f.year) if f else None
    # through the service's pipeline: passages the URP blocked are left out, as in answers
    result = await services.run(services.conversation.pipeline.search, body.query, k=body.k,
                                language=body.language, filters=filters)
    return result.to_dict()


@api.post("/feedback", response_model=FeedbackResponse, dependencies=[RateLimit])
async def feedback(body: FeedbackRequest, services: ServicesDep) -> FeedbackResponse:
    """👍 (1) or 👎 (-1) on one answer, optionally with a comment, for the URP to review. One current vote per
    session and answer: a second one changes it (a comment sent alone with the same vote is added to it)."""
    fb = await services.run(services.store.add_feedback, body.session_id, body.message_id, body.rating,
                            body.comment, channel="web", voter=f"web:{body.session_id}")
    return FeedbackResponse(id=fb.id)


@api.get("/documents", response_model=DocumentsResponse)
async def documents(pipeline: PipelineDep) -> DocumentsResponse:
    """The indexed documents, from the manifest of the index generation being served."""
    manifest = pipeline.index.manifest
    built = manifest.get("built_at")
    docs = [DocumentOut(id=d.get("id", key), title=d.get("title", key), language=d.get("language", ""),
                        chunks=int(d.get("chunks", 0)), source_file=d.get("source_file"), ingested_at=built)
            for key, d in manifest.get("documents", {}).items()]
    return DocumentsResponse(generation=manifest["generation"], documents=docs)


@api.get("/ui/{lang}", response_model=dict[str, str])
async def ui_strings(lang: Language) -> dict[str, str]:
    """The web chat's strings in one language (prompts/ui.<lang>.toml)."""
    return load_ui(lang)


@health.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is up (no dependency checked)."""
    return Health(status="ok")


@health.get("/readyz", response_model=Ready, responses={503: {"model": Ready}})
async def readyz(request: Request, services: ServicesDep):
    """The index is loaded and answers a real search, and the database responds."""
    pipeline = services.pipeline
    try:
        hits = (await services.run(pipeline.search, "Lecce", k=1)).hits
        await services.run(_ping, services.store)
    except Exception as exc:  # readiness reports, it does not crash
        log.warning("not ready: %s", exc)
        return JSONResponse(Ready(status="unavailable", detail=type(exc).__name__).model_dump(), status_code=503)
    if not hits:
        return JSONResponse(Ready(status="unavailable", detail="search returned nothing").model_dump(),
                            status_code=503)
    manifest = pipeline.index.manifest
    webhook = getattr(request.app.state, "telegram_webhook", None)  # bot.webhook: set in webhook mode
    return Ready(status="ready", generation=manifest["generation"], chunks=manifest.get("chunks"),
                 telegram=webhook.as_dict() if webhook is not None else None)



def _ping(store) -> None:
    with store.engine.connect() as conn:
        conn.execute(text("SELECT 1"))
