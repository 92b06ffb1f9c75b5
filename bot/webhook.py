"""Webhook mode: the FastAPI app receives Telegram's updates at POST /telegram/webhook.

Active only when TELEGRAM_WEBHOOK_URL is set (with TELEGRAM_BOT_TOKEN and TELEGRAM_WEBHOOK_SECRET).
The router's lifespan starts the same Application as `sibyl telegram`, minus the poller, and
registers the webhook; Telegram's X-Telegram-Bot-Api-Secret-Token header authenticates each call.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import APIRouter, FastAPI, Header, HTTPException, Request
from telegram import Update

log = logging.getLogger("sibyl.telegram")
PATH = "/telegram/webhook"
_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")  # what setWebhook accepts as secret_token


def _service(app: FastAPI, settings):
    """The API's conversation service (api.deps.Services, built by the app's lifespan), else our own."""
    services = getattr(app.state, "services", None)
    for found in (getattr(app.state, "telegram_service", None), getattr(services, "conversation", None)):
        if found is not None and hasattr(found, "reply"):
            return found
    from retrieval.pipeline import Pipeline
    from sibyl.conversation import ConversationService
    from sibyl.store import Store

    pipeline = getattr(app.state, "pipeline", None) or Pipeline.open(settings)
    return ConversationService(pipeline, Store.from_settings(settings))


@asynccontextmanager
async def lifespan(app: FastAPI):
    from sibyl.settings import get_settings

    settings = getattr(app.state, "settings", None) or get_settings()
    app.state.telegram = None
    if not settings.telegram_webhook_url:
        yield
        return
    secret = settings.telegram_webhook_secret.get_secret_value() if settings.telegram_webhook_secret else ""
    if not _SECRET.match(secret):
        raise RuntimeError("TELEGRAM_WEBHOOK_SECRET must be set: 1-256 characters A-Z, a-z, 0-9, _ or -")
    from bot.app import build_application, register_commands

    application = build_application(settings, _service(app, settings))
    async with application:  # initialize (getMe) ... shutdown
        await register_commands(application)
        await application.bot.set_webhook(settings.telegram_webhook_url, secret_token=secret,
                                          allowed_updates=Update.ALL_TYPES)
        await application.start()
        app.state.telegram = application
        app.state.telegram_secret = secret
        log.info("Telegram webhook registered for @%s", application.bot.username)
        try:
            yield
        finally:
            app.state.telegram = None
            await application.stop()


router = APIRouter(lifespan=lifespan)


@router.post(PATH, include_in_schema=False)
async def telegram_webhook(
    request: Request,
    secret_token: Annotated[str | None, Header(alias="X-Telegram-Bot-Api-Secret-Token")] = None,
) -> dict:
    """Queue one update for the Application; 200 quickly so Telegram does not resend it."""
    application = getattr(request.app.state, "telegram", None)
    if application is None:
        raise HTTPException(404, "the Telegram webhook is not enabled (TELEGRAM_WEBHOOK_URL)")
    if not secret_token or not hmac.compare_digest(secret_token.encode(), request.app.state.telegram_secret.encode()):
        raise HTTPException(403, "wrong or missing X-Telegram-Bot-Api-Secret-Token")
    try:
        data = json.loads(await request.body())
        update = Update.de_json(data, application.bot)
    except Exception as exc:  # noqa: BLE001 - a malformed update is dropped, never retried forever
        log.warning("dropping malformed webhook update: %s: %s", type(exc).__name__, exc)
        raise HTTPException(400, "malformed update") from None
    await application.update_queue.put(update)
    return {"ok": True}
