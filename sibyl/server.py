"""What `sibyl serve` runs: the API app with the Telegram webhook mounted on it.

The two adapters never import each other (api/ knows nothing of bot/): this entry point wires them,
and `uvicorn sibyl.server:create_app --factory` is what the workers and the container start.
"""

from __future__ import annotations

from fastapi import FastAPI

from api.app import create_app as create_api
from bot import webhook
from sibyl.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    """The web chat, HTTP API and operator console, plus POST /telegram/webhook (active when
    TELEGRAM_WEBHOOK_URL is set), all on the services the app's lifespan builds once."""
    return create_api(settings, extensions=[webhook.install])
