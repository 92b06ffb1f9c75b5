"""Webhook mode: the FastAPI app receives Telegram's updates at POST /telegram/webhook.

Active only when TELEGRAM_WEBHOOK_URL is set (with TELEGRAM_BOT_TOKEN and TELEGRAM_WEBHOOK_SECRET).
`install(app)` mounts the route (sibyl.server does it for `sibyl serve`; api/ never imports bot/). The
router's lifespan starts the same Application as `sibyl telegram`, minus the poller, on the app's services, and
registers the webhook in the background, retrying with backoff while Telegram is unreachable (the web chat
starts anyway; /readyz shows the state); Telegram's X-Telegram-Bot-Api-Secret-Token header authenticates
each call.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import random
import re
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from typing import Annotated

from fastapi import APIRouter, FastAPI, Header, HTTPException, Request
from telegram import Update

log = logging.getLogger("sibyl.telegram")
PATH = "/telegram/webhook"
_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")  # what setWebhook accepts as secret_token


def _service(app: FastAPI):
    """The conversation service of the app's services (sibyl.services, built by the app's lifespan)."""
    services = getattr(app.state, "services", None)
    if services is None:
        raise RuntimeError("the webhook needs the app's services (sibyl.services.build_services) in app.state")
    return services.conversation


@dataclass
class WebhookState:
    """What /readyz shows about the webhook: registering (first try), retrying (Telegram unreachable or
    refusing), registered."""

    state: str = "registering"
    attempts: int = 0
    last_error: str | None = None
    next_retry_seconds: float | None = None

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


RETRY_FIRST_SECONDS = 1.0
RETRY_MAX_SECONDS = 60.0
STARTUP_WAIT_SECONDS = 10.0  # how long startup waits for the first registration before serving without it


async def register_until_done(app: FastAPI, application, url: str, secret: str, state: WebhookState) -> None:
    """getMe, commands, setWebhook, start -- retried with exponential backoff (and jitter, so replicas do not
    retry in step) until Telegram answers; the web chat serves meanwhile."""
    from bot.app import register_commands

    delay = RETRY_FIRST_SECONDS
    while True:
        state.attempts += 1
        try:
            await application.initialize()  # getMe; a no-op once it succeeded
            await register_commands(application)
            await application.bot.set_webhook(url, secret_token=secret, allowed_updates=Update.ALL_TYPES)
            await application.start()
        except Exception as exc:  # noqa: BLE001 - network, Telegram errors, a wrong token: all retried
            state.state, state.last_error = "retrying", f"{type(exc).__name__}: {exc}"[:200]
            wait = delay * random.uniform(0.8, 1.2)
            state.next_retry_seconds = round(wait, 1)
            log.warning("Telegram webhook not registered (attempt %d, %s); retrying in %.1f s",
                        state.attempts, type(exc).__name__, wait)
            await asyncio.sleep(wait)
            delay = min(delay * 2, RETRY_MAX_SECONDS)
            continue
        app.state.telegram = application
        state.state, state.last_error, state.next_retry_seconds = "registered", None, None
        log.info("Telegram webhook registered for @%s", application.bot.username)
        return


@asynccontextmanager
async def lifespan(app: FastAPI):
    settings = app.state.settings
    app.state.telegram = None
    app.state.telegram_webhook = None
    if not settings.telegram_webhook_url:
        yield
        return
    secret = settings.telegram_webhook_secret.get_secret_value() if settings.telegram_webhook_secret else ""
    if not _SECRET.match(secret):  # a configuration error: refuse to start, unlike an unreachable Telegram
        raise RuntimeError("TELEGRAM_WEBHOOK_SECRET must be set: 1-256 characters A-Z, a-z, 0-9, _ or -")
    from bot.app import build_application

    application = build_application(settings, _service(app), app.state.services.cpu_limiter)
    app.state.telegram_secret = secret
    state = app.state.telegram_webhook = WebhookState()
    registering = asyncio.create_task(
        register_until_done(app, application, settings.telegram_webhook_url, secret, state))
    # Usually Telegram answers at once: serve with the webhook registered. If not, serve anyway.
    await asyncio.wait({registering}, timeout=STARTUP_WAIT_SECONDS)
    try:
        yield
    finally:
        registering.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await registering
        app.state.telegram = None
        if application.running:
            await application.stop()
        await application.shutdown()  # a no-op when initialize never succeeded


router = APIRouter(lifespan=lifespan)


def install(app: FastAPI) -> None:
    """Mount POST /telegram/webhook (active when TELEGRAM_WEBHOOK_URL is set) on an app whose lifespan
    puts the services in app.state (api.app.create_app; sibyl.server does this)."""
    app.include_router(router)


@router.post(PATH, include_in_schema=False)
async def telegram_webhook(
    request: Request,
    secret_token: Annotated[str | None, Header(alias="X-Telegram-Bot-Api-Secret-Token")] = None,
) -> dict:
    """Queue one update for the Application; 200 quickly so Telegram does not resend it."""
    application = getattr(request.app.state, "telegram", None)
    if application is None:
        if getattr(request.app.state, "telegram_webhook", None) is not None:  # still registering: Telegram retries
            raise HTTPException(503, "the Telegram bot is starting; retry shortly", headers={"Retry-After": "5"})
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
