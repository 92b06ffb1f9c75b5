"""Every failure becomes JSON {"detail", "code"} with a 4xx status a client can act on; never a bare 500."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.deps import RateLimited, client_key
from retrieval.pipeline import BadQuestion
from sibyl.observability import annotate
from sibyl.store import UnknownMessage, UnknownSession

log = logging.getLogger(__name__)


def error(status: int, code: str, detail: str, headers: Mapping[str, str] | None = None, **extra) -> JSONResponse:
    return JSONResponse({"detail": detail, "code": code, **extra}, status_code=status, headers=headers)


MAX_ERRORS = 10  # a body with 200k unknown keys must not get a 25 MB answer
MAX_FIELD_CHARS = 80


def _field(loc) -> str:
    parts = [str(p) for p in loc if p != "body"]
    name = ".".join(parts) or "body"
    return name if len(name) <= MAX_FIELD_CHARS else name[:MAX_FIELD_CHARS - 1] + "…"


def readable(errors: Sequence[Any]) -> list[dict]:
    """Pydantic's error list without the input echo (it may be huge or private): field + message, the first
    MAX_ERRORS only, field names shortened (a client-chosen key can be any length)."""
    return [{"field": _field(e.get("loc", ())), "message": str(e.get("msg", "invalid value"))[:200],
             "type": e.get("type")}
            for e in errors[:MAX_ERRORS]]


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return error(400, "invalid_json", "The request body is not valid JSON.")
    if any(e.get("type") == "model_attributes_type" or e.get("type") == "dict_type" for e in errors
           if tuple(e.get("loc", ())) == ("body",)):
        return error(400, "invalid_json", "The request body must be a JSON object.")
    items = readable(errors)
    if any(e["type"] == "missing" and e["field"] == "body" for e in items):
        return error(400, "invalid_json", "The request body is missing: send a JSON object.")
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in items)
    if len(errors) > len(items):
        detail += f"; and {len(errors) - len(items)} more problems"
    return error(422, "validation_error", f"Invalid request: {detail}.", errors=items, errors_total=len(errors))


async def bad_question(request: Request, exc: BadQuestion) -> JSONResponse:
    return error(422, "bad_question", str(exc))


async def unknown_session(request: Request, exc: UnknownSession) -> JSONResponse:
    return error(404, "unknown_session",
                 "Unknown or expired session_id: start a new conversation by sending no session_id.")


async def unknown_message(request: Request, exc: UnknownMessage) -> JSONResponse:
    return error(404, "unknown_message", "Unknown message_id: it is not an answer in this session.")


async def rate_limited(request: Request, exc: RateLimited) -> JSONResponse:
    annotate(refused="rate_limited", client=client_key(request))  # who is refused, on the request's log line
    return error(429, "rate_limited", f"Too many requests (limit {exc.limit}); retry in {exc.retry_after} s.",
                 headers={"Retry-After": str(exc.retry_after)}, retry_after=exc.retry_after)


async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    codes = {404: "not_found", 405: "method_not_allowed", 413: "too_large", 415: "unsupported_media_type",
             503: "not_ready"}
    detail = exc.detail if isinstance(exc.detail, str) else "Request failed."
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"Nothing at {request.url.path}; the endpoints are listed at /docs."
    elif exc.status_code == 405 and detail == "Method Not Allowed":
        detail = f"{request.method} is not allowed on {request.url.path}; see /docs."
    return error(exc.status_code, codes.get(exc.status_code, "http_error"), detail, headers=exc.headers)


async def backend_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """The index server (Chroma) or the database is unreachable: temporary, so 503 + Retry-After."""
    log.warning("backend unavailable on %s %s: %s", request.method, request.url.path, type(exc).__name__)
    return error(503, "unavailable", "The service is temporarily unavailable; please retry shortly.",
                 headers={"Retry-After": "5"}, retry_after=5)


async def unexpected(request: Request, exc: Exception) -> JSONResponse:
    """Last resort: log the traceback, tell the client without leaking internals."""
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error(500, "internal_error", "Something went wrong on our side; please try again.")


def install(app: FastAPI) -> None:
    # Starlette types every handler as taking a plain Exception (it cannot tie the handler's parameter to the
    # class it is registered for), so a handler for a subclass needs the ignore.
    app.add_exception_handler(RequestValidationError, validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(BadQuestion, bad_question)  # type: ignore[arg-type]
    app.add_exception_handler(UnknownSession, unknown_session)  # type: ignore[arg-type]
    app.add_exception_handler(UnknownMessage, unknown_message)  # type: ignore[arg-type]
    app.add_exception_handler(RateLimited, rate_limited)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, http_error)  # type: ignore[arg-type]
    for exc_type in (httpx.TransportError, ConnectionError, sqlalchemy.exc.OperationalError):
        app.add_exception_handler(exc_type, backend_unavailable)
    app.add_exception_handler(Exception, unexpected)
