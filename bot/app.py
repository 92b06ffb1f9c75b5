"""The Telegram channel: the one place that builds the python-telegram-bot Application and registers
its handlers (bot/handlers/, one module per concern), for long polling and webhook mode alike.

Thin by design: every question goes to the same ConversationService as the web chat (so the
same question gets the same answer and sources), keyed by `telegram:<chat_id>` for context.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from signal import Signals
from typing import Any

import anyio
from telegram import Bot, BotCommand, BotCommandScopeDefault, MenuButtonWebApp, Update, WebAppInfo
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, InlineQueryHandler, MessageHandler, filters

from bot import logs, texts
from bot.callbacks import Handoff, ShowUrp
from bot.context import BotApplication, BotServices, context_types
from bot.handlers import callbacks, commands, errors, handoff, inline, messages, voice
from bot.net import ResilientRateLimiter, UpdatesRequest
from sibyl.conversation import ConversationService
from sibyl.observability import telegram_update_processor
from sibyl.settings import Settings

log = logging.getLogger("sibyl.telegram")

CONCURRENT_UPDATES = 8  # across chats; within a chat answers keep arrival order (BotServices.locks)


class MissingToken(ValueError):
    """TELEGRAM_BOT_TOKEN is not set."""


def api_urls(base: str | None) -> dict[str, Any]:
    """TELEGRAM_API_BASE_URL ('http://host:8081' or '…/bot') to python-telegram-bot's base_url/base_file_url."""
    if not base:
        return {}
    root = base.strip().rstrip("/")
    if root.endswith("/bot"):
        root = root[: -len("/bot")]
    return {"base_url": f"{root}/bot", "base_file_url": f"{root}/file/bot"}


def _token(settings: Settings) -> str:
    token = settings.telegram_bot_token.get_secret_value().strip() if settings.telegram_bot_token else ""
    if not token:
        raise MissingToken("TELEGRAM_BOT_TOKEN is not set: create a bot with @BotFather and set its token")
    logs.protect(token)
    return token


def commands_menu(lang: str) -> list[BotCommand]:
    language = "lingua" if lang == "it" else "language"
    return [BotCommand("start", texts.text(lang, "cmd_start")), BotCommand("help", texts.text(lang, "cmd_help")),
            BotCommand(language, texts.text(lang, "cmd_language")), BotCommand("urp", texts.text(lang, "cmd_urp"))]


async def register_commands(application: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """The command menu in Italian (default and 'it' users) and English ('en' users)."""
    bot = application.bot
    await bot.set_my_commands(commands_menu("it"), scope=BotCommandScopeDefault())
    for lang in texts.LANGUAGES:
        await bot.set_my_commands(commands_menu(lang), scope=BotCommandScopeDefault(), language_code=lang)
    await register_profile(application)
    log.info("Telegram bot @%s ready", bot.username)


PROFILE_ATTEMPTS = 4  # the profile is cosmetic: a Bot API that keeps failing is logged, the bot still starts


async def register_profile(application: Application[Any, Any, Any, Any, Any, Any], *,
                           first_delay: float = 1.0) -> bool:
    """The bot's description and short description (it default, it, en) and, when the site's public address is
    HTTPS, a menu button opening the web chat as a Web App; retried with backoff like the webhook registration."""
    bot, delay = application.bot, first_delay
    services = application.bot_data
    base = services.settings.public_base_url if isinstance(services, BotServices) else None
    for attempt in range(1, PROFILE_ATTEMPTS + 1):
        try:
            for lang in (None, *texts.LANGUAGES):
                await bot.set_my_description(texts.text(lang or "it", "description"), language_code=lang)
                await bot.set_my_short_description(texts.text(lang or "it", "short_description"),
                                                   language_code=lang)
            if base and base.startswith("https://"):  # Telegram opens Web Apps over HTTPS only
                await bot.set_chat_menu_button(menu_button=MenuButtonWebApp(
                    texts.text("it", "menu_button"), WebAppInfo(f"{base}/embed?lang=it")))
            return True
        except Exception as exc:  # noqa: BLE001 - network, Telegram errors: retried, then logged
            if attempt == PROFILE_ATTEMPTS:
                log.warning("Telegram bot profile not set after %d attempts: %s", attempt, type(exc).__name__)
                return False
            await asyncio.sleep(delay)
            delay *= 2
    return False


def build_application(settings: Settings, conversation: ConversationService,
                      cpu: anyio.CapacityLimiter | None = None) -> BotApplication:
    """One Application over an already-built conversation service (the caller's, e.g. a composition root's),
    for polling or webhook alike; `cpu`: the process's CPU limiter, shared with its other channels. Raises
    MissingToken."""
    services = BotServices.create(settings, conversation, cpu)
    builder = (
        Application.builder().token(_token(settings))
        .context_types(context_types(services))
        .rate_limiter(ResilientRateLimiter())
        .concurrent_updates(telegram_update_processor(CONCURRENT_UPDATES))  # one log line + metrics per update
        .get_updates_request(UpdatesRequest(connection_pool_size=1))
        .post_init(register_commands)
    )
    urls = api_urls(settings.telegram_api_base_url)
    if urls:
        builder = builder.base_url(urls["base_url"]).base_file_url(urls["base_file_url"])
    application = builder.build()
    register_handlers(application)
    return application


def register_handlers(application: BotApplication) -> None:
    """Commands, then text, then media (first match wins within the group); buttons by their decoded data,
    anything undecodable last; the error handler."""
    new_messages = filters.UpdateType.MESSAGE  # not edits, not channel posts
    application.add_handler(CommandHandler("start", commands.start, filters=new_messages))
    application.add_handler(CommandHandler("help", commands.help_command, filters=new_messages))
    application.add_handler(CommandHandler(list(commands.LANGUAGE_COMMANDS), commands.language_command,
                                           filters=new_messages))
    application.add_handler(CommandHandler("urp", commands.urp, filters=new_messages))
    application.add_handler(CommandHandler(list(handoff.COMMANDS), handoff.person_command, filters=new_messages))
    application.add_handler(CommandHandler(list(voice.SPOKEN_COMMANDS), voice.spoken_command, filters=new_messages))
    application.add_handler(MessageHandler(new_messages & filters.COMMAND, commands.unknown_command))
    application.add_handler(MessageHandler(new_messages & filters.TEXT, messages.on_text))
    # An edited question is answered again, saying so (issue 17: nothing silently dropped).
    application.add_handler(MessageHandler(filters.UpdateType.EDITED_MESSAGE & filters.TEXT & ~filters.COMMAND,
                                           messages.on_text))
    application.add_handler(MessageHandler(new_messages & voice.AUDIO_IN, voice.on_voice))  # before MEDIA
    application.add_handler(MessageHandler(new_messages & messages.MEDIA, messages.unsupported))
    for kind, handler in callbacks.BY_BUTTON:
        application.add_handler(CallbackQueryHandler(handler, pattern=callbacks.pattern(kind)))
    application.add_handler(CallbackQueryHandler(handoff.on_button, pattern=callbacks.pattern(Handoff)))
    application.add_handler(CallbackQueryHandler(commands.urp_button, pattern=callbacks.pattern(ShowUrp)))
    application.add_handler(InlineQueryHandler(inline.on_inline_query))  # @bot domanda in any chat (issue 17)
    application.add_handler(CallbackQueryHandler(callbacks.refuse))
    application.add_error_handler(errors.on_error)


def run_polling(application: BotApplication, *, poll_timeout: float = 30,
                stop_signals: Sequence[Signals] | None = None, use_default_signals: bool = True) -> None:
    """Long polling until stopped (Ctrl-C, SIGTERM, or `application.stop_running()`)."""
    if use_default_signals:
        application.run_polling(allowed_updates=Update.ALL_TYPES, poll_interval=0, timeout=int(poll_timeout),
                                bootstrap_retries=3)
    else:
        application.run_polling(allowed_updates=Update.ALL_TYPES, poll_interval=0, timeout=int(poll_timeout),
                                bootstrap_retries=3, stop_signals=stop_signals)


async def check_token(settings: Settings) -> str:
    """getMe with the configured token; returns the bot's @username. Raises MissingToken, InvalidToken or
    NetworkError."""
    async with Bot(_token(settings), **api_urls(settings.telegram_api_base_url)) as bot:
        return bot.username


__all__ = ["build_application", "register_commands", "run_polling", "check_token", "api_urls", "MissingToken"]
