"""What every handler gets: a typed CallbackContext whose bot_data is the bot's services.

As in python-telegram-bot's contexttypes example, the Application is built with `ContextTypes`, so a
handler reads `context.bot_data.conversation` (typed) instead of a dict key.
"""

from __future__ import annotations

import asyncio
import functools
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import anyio
from telegram.ext import Application, CallbackContext, ContextTypes, ExtBot

from bot.prefs import ChatPreferences
from sibyl.backoffice.cases import Cases
from sibyl.conversation import ConversationService
from sibyl.ratelimit import Notices, RateLimited, RateLimiter
from sibyl.services import cpu_slots
from sibyl.settings import Settings
from sibyl.store import Store
from sibyl.voice import VoiceService

CHANNEL = "telegram"


def chat_key(chat_id: int) -> str:
    """The conversation store's external key for a chat (sessions and preferences alike)."""
    return f"{CHANNEL}:{chat_id}"


class ChatLimiter:
    """Per-chat question budget: the one rate limiter (sibyl.ratelimit) keyed by chat. Every refused question
    gets a 'wait N seconds' notice, up to ten a minute (a flood of questions is not answered by a flood)."""

    def __init__(self, spec: str) -> None:
        self.questions = RateLimiter(spec, namespace="telegram")
        self.notices = Notices("10/minute", namespace="telegram-notice")

    def allow(self, chat_id: int) -> bool:
        return self.questions.allow(str(chat_id))

    def wait_seconds(self, chat_id: int) -> int | None:
        """None when the chat may ask now (the question is counted), else the seconds until it may."""
        try:
            self.questions.check(str(chat_id))
        except RateLimited as exc:
            return exc.retry_after
        return None

    def should_warn(self, chat_id: int) -> bool:
        return self.notices.should_warn(str(chat_id))


T = TypeVar("T")


@dataclass
class BotServices:
    """The Application's bot_data: the shared conversation service and the bot's own per-chat state."""

    conversation: ConversationService
    settings: Settings
    prefs: ChatPreferences
    limiter: ChatLimiter
    # One answer at a time per chat, in arrival order (follow-ups and /lingua depend on it).
    locks: defaultdict[int, asyncio.Lock] = field(default_factory=lambda: defaultdict(asyncio.Lock))
    voice: VoiceService | None = None  # speech in and out (issue 16), built on first use
    cases: Cases | None = None  # "talk to a person" opens a URP case (issue 15)
    # Answering, transcribing and speaking are CPU-bound: the same few slots as the HTTP channels when the bot
    # runs in the API's process (webhook), its own otherwise (polling).
    cpu: anyio.CapacityLimiter = field(default_factory=cpu_slots)

    @classmethod
    def create(cls, settings: Settings, conversation: ConversationService,
               cpu: anyio.CapacityLimiter | None = None) -> BotServices:
        """From an already-built conversation service (the composition root's), plus the bot's own parts."""
        return cls(conversation, settings, ChatPreferences(conversation.store),
                   ChatLimiter(settings.telegram_rate_limit),
                   cases=Cases(conversation.store.engine, settings.case_retention_days), cpu=cpu or cpu_slots())

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Blocking CPU work (an answer, a transcription, a voice note) off the event loop, within the limiter."""
        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs), limiter=self.cpu)

    @property
    def store(self) -> Store:
        return self.conversation.store


class BotContext(CallbackContext[ExtBot[Any], dict[Any, Any], dict[Any, Any], BotServices]):
    """The `context` argument of every handler (bot_data typed as BotServices)."""


BotApplication = Application[ExtBot[Any], BotContext, dict[Any, Any], dict[Any, Any], BotServices, Any]


def context_types(services: BotServices) -> ContextTypes[BotContext, dict[Any, Any], dict[Any, Any], BotServices]:
    """ContextTypes whose bot_data is `services` itself. python-telegram-bot makes bot_data by calling the
    bot_data type without arguments, so a factory returning the already-built services stands in for it."""
    factory = cast("type[BotServices]", lambda: services)
    return ContextTypes(context=BotContext, bot_data=factory)
