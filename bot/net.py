"""Talking to the Bot API robustly: flood control, transient network errors, malformed updates."""

from __future__ import annotations

import asyncio
import logging

from telegram import Update
from telegram.error import BadRequest, NetworkError, TimedOut
from telegram.ext import AIORateLimiter
from telegram.request import HTTPXRequest

log = logging.getLogger("sibyl.telegram")


class ResilientRateLimiter(AIORateLimiter):
    """python-telegram-bot's AIORateLimiter (which waits out RetryAfter and retries), plus a few
    retries with exponential backoff when the network fails before the request reached Telegram.

    Timeouts are not retried: the message may have been delivered, and a duplicate is worse.
    """

    def __init__(self, *, network_retries: int = 3, backoff: float = 0.5, **kwargs) -> None:
        kwargs.setdefault("max_retries", 3)
        super().__init__(**kwargs)
        self._network_retries = network_retries
        self._backoff = backoff

    async def process_request(self, callback, args, kwargs, endpoint, data, rate_limit_args):
        delay = self._backoff
        for attempt in range(self._network_retries + 1):
            try:
                return await super().process_request(callback, args, kwargs, endpoint, data, rate_limit_args)
            except (TimedOut, BadRequest):  # BadRequest subclasses NetworkError but will fail again
                raise
            except NetworkError as exc:
                if attempt == self._network_retries:
                    raise
                log.warning("Bot API %s failed (%s); retry %d/%d in %.1fs", endpoint, exc, attempt + 1,
                            self._network_retries, delay)
                await asyncio.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover


class UpdatesRequest(HTTPXRequest):
    """getUpdates transport that replaces an update python-telegram-bot cannot parse by an empty one.

    Otherwise one malformed update fails the whole batch, the offset never advances and the
    bot fetches the same batch forever.
    """

    async def post(self, url, *args, **kwargs):  # type: ignore[misc]  # final upstream; this is the seam
        result = await super().post(url, *args, **kwargs)
        if not url.endswith("/getUpdates") or not isinstance(result, list):
            return result
        clean = []
        for raw in result:
            try:
                Update.de_json(raw, None)
                clean.append(raw)
            except Exception as exc:  # noqa: BLE001 - any parse failure means: skip this update
                update_id = raw.get("update_id") if isinstance(raw, dict) else None
                log.warning("skipping malformed update %s: %s: %s", update_id, type(exc).__name__, exc)
                if isinstance(update_id, int):
                    clean.append({"update_id": update_id})  # keeps the offset moving past it
        return clean
