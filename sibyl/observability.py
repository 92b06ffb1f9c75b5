"""Structured JSON logs and Prometheus metrics, shared by every channel (web API, Telegram) and the index.

- `configure_logging(settings)`: one JSON object per line on stderr (structlog over the standard library,
  so uvicorn's and libraries' records come out the same way), with secrets scrubbed.
- `install_observability(app, settings)`: per-request log line + metrics middleware and `GET /metrics`.
- `record_answer(channel, answer)`: counts the reply and adds language/answered/sources to the current
  request's (or bot update's) log line. Message text only when `SIBYL_LOG_MESSAGES=true`.
- `observe_update(channel, kind)`: the same one-line-per-unit-of-work for a bot update;
  `telegram_update_processor(n)` applies it to every update of a python-telegram-bot Application.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from structlog.typing import Processor

# --- metrics ------------------------------------------------------------------------------------
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10, 30)

HTTP_REQUESTS = Counter("sibyl_http_requests", "HTTP requests by route template and status.",
                        ["method", "route", "status"])
HTTP_LATENCY = Histogram("sibyl_http_request_duration_seconds", "HTTP request latency by route template.",
                         ["method", "route"], buckets=_LATENCY_BUCKETS)
ANSWERS = Counter("sibyl_answers", "Replies by channel, language and outcome (answered, abstained or a canned reply).",
                  ["channel", "language", "outcome"])
UPDATES = Counter("sibyl_bot_updates", "Bot updates handled, by channel, kind and result.",
                  ["channel", "kind", "result"])
UPDATE_LATENCY = Histogram("sibyl_bot_update_duration_seconds", "Time to handle one bot update.", ["channel"],
                           buckets=_LATENCY_BUCKETS)
INDEX_CHUNKS = Gauge("sibyl_index_chunks", "Chunks in the index generation this process serves.",
                     multiprocess_mode="livemostrecent")
INDEX_DOCUMENTS = Gauge("sibyl_index_documents", "Documents in the index generation this process serves.",
                        multiprocess_mode="livemostrecent")
INDEX_BUILD_SECONDS = Gauge("sibyl_index_build_seconds", "How long the served generation took to ingest.",
                            multiprocess_mode="livemostrecent")
INDEX_LOADED_AT = Gauge("sibyl_index_loaded_timestamp_seconds", "When this process loaded its index generation.",
                        multiprocess_mode="livemostrecent")
LLM_UNSUPPORTED = Counter("sibyl_llm_unsupported_sentences",
                          "Model-answer sentences not supported by the sources they cite, by language and by what "
                          "was shown instead (outcome: trimmed = the rest of the model answer, extractive = the "
                          "extractive answer).", ["language", "outcome"])
INGEST_DURATION = Histogram("sibyl_ingest_duration_seconds", "Ingests (re-indexing) run by this process.",
                            buckets=(1, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 3600))

_OUTCOMES = {"greeting", "help", "chitchat", "injection"}


def index_loaded(manifest: dict) -> None:
    INDEX_CHUNKS.set(manifest.get("chunks", 0))
    INDEX_DOCUMENTS.set(len(manifest.get("documents", {})))
    INDEX_BUILD_SECONDS.set(manifest.get("ingest_seconds", 0))
    INDEX_LOADED_AT.set_to_current_time()


def ingest_finished(seconds: float) -> None:
    INGEST_DURATION.observe(seconds)


def retrieval_hooks():
    """The index metrics as callbacks for retrieval/ (which imports nothing of ours): pass to IndexStore/Pipeline."""
    from retrieval.config import RetrievalHooks

    return RetrievalHooks(index_loaded=index_loaded, ingest_finished=ingest_finished)


def _count_unsupported(dropped: int, language: str, outcome: str) -> None:
    LLM_UNSUPPORTED.labels(language if language in ("it", "en") else "other", outcome).inc(dropped)


def watch_llm_support() -> None:
    """Count the sentences the LLM support check drops (retrieval.support calls back; it imports nothing of ours)."""
    from retrieval import support

    if _count_unsupported not in support.listeners:
        support.listeners.append(_count_unsupported)


# --- logging ------------------------------------------------------------------------------------
# A Telegram bot token (123456789:AA...) can appear inside URLs that libraries log or put in errors.
_BOT_TOKEN = re.compile(r"(?<!\d)\d{5,}:[A-Za-z0-9_-]{30,}")  # also inside '/bot<token>/'
_SECRET_KEYS = ("token", "password", "secret", "api_key", "authorization", "cookie")
_secret_values: set[str] = set()
_log_messages = False
_configured = False
_HANDLER_MARK = "_sibyl_handler"

access_log = structlog.get_logger("sibyl.access")


def _scrub(text: str) -> str:
    text = _BOT_TOKEN.sub("[REDACTED]", text)
    for value in _secret_values:
        if value in text:
            text = text.replace(value, "[REDACTED]")
    return text


def _redact(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Last step before rendering: no token or password leaves the process in a log line."""
    for key, value in list(event.items()):
        if not isinstance(value, str):
            continue
        if value and any(s in key.lower() for s in _SECRET_KEYS):
            event[key] = "[REDACTED]"
        else:
            event[key] = _scrub(value)
    return event


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (test runners swap it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def configure_logging(settings=None, stream=None) -> None:
    """JSON (or plain text) lines for our loggers and every library's, at the configured level."""
    global _log_messages, _configured
    _configured = True
    watch_llm_support()
    level = getattr(settings, "log_level", "INFO")
    fmt = getattr(settings, "log_format", "json")
    _log_messages = bool(getattr(settings, "log_messages", False))
    _secret_values.clear()
    if settings is not None:
        for name in type(settings).model_fields:
            value = getattr(settings, name)
            if hasattr(value, "get_secret_value") and len(value.get_secret_value()) >= 4:
                _secret_values.add(value.get_secret_value())
        from urllib.parse import urlsplit

        for value in settings.model_dump().values():
            if isinstance(value, str) and "://" in value:
                password = urlsplit(value).password
                if password and len(password) >= 4:
                    _secret_values.add(password)

    pre_chain: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer = (structlog.processors.JSONRenderer(ensure_ascii=False) if fmt == "json"
                else structlog.dev.ConsoleRenderer(colors=False))
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level, *pre_chain, structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=pre_chain,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _redact,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    handler.setFormatter(formatter)
    setattr(handler, _HANDLER_MARK, True)
    root = logging.getLogger()
    for old in list(root.handlers):  # ours from an earlier call, or logging.basicConfig's plain one
        if getattr(old, _HANDLER_MARK, False) or (type(old) is logging.StreamHandler
                                                  and old.stream in (sys.stderr, sys.stdout)):
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "telegram", "telegram.ext"):
        lib = logging.getLogger(name)
        lib.handlers.clear()
        lib.propagate = True
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)  # our middleware logs each request
    for name in ("httpx", "httpx2", "httpcore"):  # INFO lines are full URLs: the Bot API's hold the token
        logging.getLogger(name).setLevel(logging.WARNING)


# --- one line per unit of work ------------------------------------------------------------------
_work: ContextVar[dict | None] = ContextVar("sibyl_work", default=None)


def record_answer(channel: str, answer: Any, latency: float | None = None) -> None:
    """Count one reply and describe it on the current request's or update's log line.

    Call it where the reply is made (the conversation service or the channel adapter), once per reply.
    """
    data = answer.to_dict() if hasattr(answer, "to_dict") else dict(answer)
    language = data.get("language") if data.get("language") in ("it", "en") else "other"
    intent = data.get("intent")
    outcome = "answered" if data.get("answered") else (intent if intent in _OUTCOMES else "abstained")
    ANSWERS.labels(channel, language, outcome).inc()
    fields = {"channel": channel, "language": language, "answered": bool(data.get("answered")),
              "outcome": outcome, "sources": len(data.get("sources") or []), "mode": data.get("mode")}
    if latency is not None:
        fields["answer_ms"] = round(latency * 1000, 1)
    if _log_messages:
        fields["question"] = data.get("question")
        fields["answer"] = data.get("answer")
    current = _work.get()
    if current is not None:
        current.update(fields)  # a dict shared with the middleware: survives thread-pool hops
    else:
        access_log.info("answer", **fields)


def annotate(**fields: Any) -> None:
    """Add fields (never message text or tokens) to the current request's or update's log line."""
    current = _work.get()
    if current is not None:
        current.update(fields)


@contextmanager
def observe_update(channel: str = "telegram", kind: str = "message", **fields: Any) -> Iterator[dict]:
    """Wrap the handling of one bot update: one log line and the update metrics, also on errors."""
    started = time.perf_counter()
    context = dict(fields)
    token = _work.set(context)
    result = "ok"
    try:
        yield context
    except BaseException as exc:
        result = "error"
        context["error"] = type(exc).__name__
        raise
    finally:
        elapsed = time.perf_counter() - started
        _work.reset(token)
        UPDATES.labels(channel, kind, result).inc()
        UPDATE_LATENCY.labels(channel).observe(elapsed)
        context.setdefault("channel", channel)
        (access_log.error if result == "error" else access_log.info)(
            "bot_update", kind=kind, result=result, latency_ms=round(elapsed * 1000, 1), **context)


def telegram_update_processor(max_concurrent_updates: int = 1):
    """For python-telegram-bot: `ApplicationBuilder().concurrent_updates(telegram_update_processor(8))`
    gives every update one `bot_update` log line and the update metrics, whatever handler runs."""
    from telegram.ext import SimpleUpdateProcessor

    class ObservedUpdateProcessor(SimpleUpdateProcessor):
        async def do_process_update(self, update, coroutine) -> None:
            chat = getattr(update, "effective_chat", None)
            fields = {"chat_type": chat.type} if chat is not None else {}
            with observe_update("telegram", telegram_update_kind(update), **fields):
                await coroutine

    return ObservedUpdateProcessor(max_concurrent_updates)


def telegram_update_kind(update) -> str:
    """A bounded label for an update: command, message, callback_query, edited_message, other."""
    message = getattr(update, "message", None)
    if message is not None:
        return "command" if str(message.text or "").startswith("/") else "message"
    for kind in ("callback_query", "edited_message", "inline_query", "my_chat_member"):
        if getattr(update, kind, None) is not None:
            return kind
    return "other"


# --- FastAPI / ASGI -----------------------------------------------------------------------------
class ObservabilityMiddleware:
    """Pure ASGI (streaming responses pass through untouched): metrics + one JSON line per HTTP request."""

    def __init__(self, app, settings=None) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan" and self.settings is not None:
            # uvicorn applies its own logging config after the app is built: take the handlers back
            configure_logging(self.settings)
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        context: dict = {}
        token = _work.set(context)

        async def send_status(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            elapsed = time.perf_counter() - started
            _work.reset(token)
            route = _route_template(scope)
            method = scope.get("method", "GET")
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_LATENCY.labels(method, route).observe(elapsed)
            log = access_log.warning if status >= 500 else access_log.info
            log("http_request", method=method, route=route, status=status,
                latency_ms=round(elapsed * 1000, 1), **context)


def _route_template(scope) -> str:
    """The matched route's template (/api/sessions/{id}), never the raw path: bounded label values."""
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return path if path else "<unmatched>"


async def metrics_endpoint():
    from starlette.responses import Response

    return Response(generate_latest(_registry()), media_type=CONTENT_TYPE_LATEST)


def _registry() -> CollectorRegistry:
    """This process's metrics; with several workers (`sibyl serve` sets PROMETHEUS_MULTIPROC_DIR for them)
    every worker's, summed: a scrape reaches one worker, and must not see only that worker's share."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def process_exiting() -> None:
    """A worker stops: its live gauges (the index it served) leave the summed view; its counters stay."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(os.getpid())


def install_observability(app, settings=None) -> None:
    """One call in `create_app`: the request middleware and `GET /metrics` (keep it off the public proxy)."""
    if not _configured:
        configure_logging(settings)
    app.add_middleware(ObservabilityMiddleware, settings=settings)
    app.add_api_route("/metrics", metrics_endpoint, methods=["GET"], include_in_schema=False)
