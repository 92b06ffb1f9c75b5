"""The Telegram channel: one python-telegram-bot Application with plain async handlers.

Thin by design: every question goes to the same ConversationService as the web chat (so the
same question gets the same answer and sources), keyed by `telegram:<chat_id>` for context.
"""

from __future__ import annotations

import asyncio
import html
import logging
from collections import defaultdict

from limits import parse, parse_many, storage, strategies
from telegram import (Bot, BotCommand, BotCommandScopeDefault, InlineKeyboardButton, InlineKeyboardMarkup,
                      LinkPreviewOptions, Message, ReplyParameters, Update)
from telegram.constants import ChatAction, ChatType, MessageEntityType, ParseMode
from telegram.error import TelegramError
from telegram.ext import (Application, ApplicationBuilder, CallbackQueryHandler, CommandHandler, ContextTypes,
                          MessageHandler, filters)

from bot import logs, render, texts
from bot.net import ResilientRateLimiter, UpdatesRequest
from bot.prefs import ChatPreferences
from retrieval.pipeline import BadQuestion
from sibyl.conversation import ConversationService
from sibyl.observability import telegram_update_processor
from sibyl.store import UnknownMessage, UnknownSession

log = logging.getLogger("sibyl.telegram")

CHANNEL = "telegram"
MAX_CALLBACK_DATA = 64  # bytes, Bot API limit
LANGUAGE_COMMANDS = ("lingua", "language")
MEDIA = (filters.Sticker.ALL | filters.PHOTO | filters.Document.ALL | filters.LOCATION | filters.VENUE
         | filters.VOICE | filters.AUDIO | filters.VIDEO | filters.VIDEO_NOTE | filters.ANIMATION
         | filters.CONTACT | filters.POLL | filters.Dice.ALL | filters.GAME)


class MissingToken(ValueError):
    """TELEGRAM_BOT_TOKEN is not set."""


def chat_key(chat_id: int) -> str:
    return f"{CHANNEL}:{chat_id}"


def api_urls(base: str | None) -> dict:
    """TELEGRAM_API_BASE_URL ('http://host:8081' or '…/bot') to python-telegram-bot's base_url/base_file_url."""
    if not base:
        return {}
    root = base.strip().rstrip("/")
    if root.endswith("/bot"):
        root = root[: -len("/bot")]
    return {"base_url": f"{root}/bot", "base_file_url": f"{root}/file/bot"}


class ChatLimiter:
    """Per-chat question budget (`limits` moving windows) and at most one 'slow down' notice a minute."""

    def __init__(self, spec: str) -> None:
        self.items = parse_many(spec) if spec else []
        self.limiter = strategies.MovingWindowRateLimiter(storage.MemoryStorage())
        self.notice = parse("1/minute")

    def allow(self, chat_id: int) -> bool:
        return all(self.limiter.hit(item, "telegram", str(chat_id)) for item in self.items)

    def should_warn(self, chat_id: int) -> bool:
        return self.limiter.hit(self.notice, "telegram-notice", str(chat_id))


class Sibyl:
    """What the handlers share, kept in `application.bot_data["sibyl"]`."""

    def __init__(self, service: ConversationService, rate_limit: str) -> None:
        self.service = service
        self.store = service.store
        self.prefs = ChatPreferences(service.store)
        self.limiter = ChatLimiter(rate_limit)
        self.locks: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)


def _sibyl(context: ContextTypes.DEFAULT_TYPE) -> Sibyl:
    return context.bot_data["sibyl"]


# --- languages -------------------------------------------------------------------------------
async def ui_language(update: Update, context: ContextTypes.DEFAULT_TYPE) -> str:
    """The chat's fixed language if any, else the user's Telegram language (it/en), else Italian."""
    chat = update.effective_chat
    if chat is not None:
        fixed = await asyncio.to_thread(_sibyl(context).prefs.language, chat_key(chat.id))
        if fixed:
            return fixed
    user = update.effective_user
    return texts.pick_language(user.language_code if user else None)


async def send_text(context: ContextTypes.DEFAULT_TYPE | Bot, chat_id: int, body_html: str, *,
                    reply_to: int | None = None, reply_markup=None) -> list[Message]:
    """Send HTML, split under Telegram's limit; the keyboard goes with the last part."""
    bot = context if isinstance(context, Bot) else context.bot
    parts = render.split_html(body_html)
    sent = []
    for i, part in enumerate(parts):
        sent.append(await bot.send_message(
            chat_id, part, parse_mode=ParseMode.HTML,
            reply_markup=reply_markup if i == len(parts) - 1 else None,
            reply_parameters=(ReplyParameters(reply_to, allow_sending_without_reply=True)
                              if reply_to and i == 0 else None),
            link_preview_options=LinkPreviewOptions(is_disabled=True)))
    return sent


async def send_plain(update: Update, context: ContextTypes.DEFAULT_TYPE, plain: str) -> None:
    """A prompt text (escaped) as a reply; in groups it quotes the message it answers."""
    message = update.effective_message
    chat = update.effective_chat
    if chat is None:
        return
    quote = message.message_id if message is not None and chat.type != ChatType.PRIVATE else None
    await send_text(context, chat.id, html.escape(plain), reply_to=quote)


# --- commands --------------------------------------------------------------------------------
async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    lang = await ui_language(update, context)
    user = update.effective_user
    name = user.first_name if user and user.first_name else ""
    await send_plain(update, context, texts.text(lang, "start", name=name, example=texts.text(lang, "example"))
                     .replace(" !", "!"))


async def help_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await send_plain(update, context, texts.text(await ui_language(update, context), "help"))


async def urp(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await send_plain(update, context, texts.text(await ui_language(update, context), "urp"))


async def language_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    chat = update.effective_chat
    if chat is None:
        return
    sibyl = _sibyl(context)
    choice = (context.args[0].lower() if context.args else "")
    key = chat_key(chat.id)
    if choice in texts.LANGUAGES or choice == "auto":
        async with sibyl.locks[chat.id]:  # a question sent right after must see the new language
            await asyncio.to_thread(sibyl.prefs.set_language, key, None if choice == "auto" else choice)
    if choice in texts.LANGUAGES:
        await send_plain(update, context, texts.text(choice, "language_set"))
    elif choice == "auto":
        lang = texts.pick_language(update.effective_user.language_code if update.effective_user else None)
        await send_plain(update, context, texts.text(lang, "language_auto"))
    else:
        lang = await ui_language(update, context)
        fixed = await asyncio.to_thread(sibyl.prefs.language, key)
        await send_plain(update, context, texts.text(lang, "language_usage",
                                                     current=fixed or texts.text(lang, "language_current_auto")))


async def unknown_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.effective_message
    if message is None or (update.effective_chat.type != ChatType.PRIVATE
                           and not _command_for_us(message, context.bot.username)):
        return
    await send_plain(update, context, texts.text(await ui_language(update, context), "unknown_command"))


def _command_for_us(message: Message, username: str) -> bool:
    """In groups, '/cmd@OtherBot' is for another bot; '/cmd' and '/cmd@Us' may be for us."""
    first = (message.text or "").split()[0] if message.text else ""
    target = first.partition("@")[2]
    return not target or target.lower() == (username or "").lower()


# --- questions -------------------------------------------------------------------------------
def addressed_text(message: Message, bot_id: int, username: str) -> str | None:
    """The question if the message is for the bot: any private message; in groups only when the bot
    is mentioned (the mention is removed) or the message replies to one of the bot's messages."""
    text = message.text or ""
    if message.chat.type == ChatType.PRIVATE:
        return text
    mentioned = False
    for entity, value in message.parse_entities([MessageEntityType.MENTION, MessageEntityType.TEXT_MENTION]).items():
        if (entity.type == MessageEntityType.MENTION and value.lower() == f"@{username}".lower()) or (
                entity.type == MessageEntityType.TEXT_MENTION and entity.user and entity.user.id == bot_id):
            mentioned = True
            if entity.type == MessageEntityType.MENTION:
                text = text.replace(value, " ")
    replied = message.reply_to_message
    if mentioned or (replied is not None and replied.from_user is not None and replied.from_user.id == bot_id):
        return " ".join(text.split())
    return None


async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.effective_message
    question = addressed_text(message, context.bot.id, context.bot.username)
    if question is None:
        return  # a group conversation among members: not ours to answer or repeat
    quote = message.message_id if message.chat.type != ChatType.PRIVATE else None
    await answer_question(update, context, question, reply_to=quote)


async def answer_question(update: Update, context: ContextTypes.DEFAULT_TYPE, question: str, *,
                          reply_to: int | None = None, asked: bool = False) -> None:
    sibyl = _sibyl(context)
    chat_id = update.effective_chat.id
    if not sibyl.limiter.allow(chat_id):
        if sibyl.limiter.should_warn(chat_id):
            await send_text(context, chat_id, html.escape(texts.text(await ui_language(update, context),
                                                                       "rate_limited")), reply_to=reply_to)
        return
    async with sibyl.locks[chat_id]:  # one answer at a time per chat, in arrival order: follow-ups need it
        key = chat_key(chat_id)
        typing = asyncio.create_task(_keep_typing(context, chat_id))
        try:
            language = await asyncio.to_thread(sibyl.prefs.language, key)
            payload = await asyncio.to_thread(sibyl.service.reply, question, channel=CHANNEL, language=language,
                                              external_key=key)
        except BadQuestion as exc:
            await send_text(context, chat_id, html.escape(str(exc)), reply_to=reply_to)
            return
        finally:
            typing.cancel()
        await send_text(context, chat_id, render.answer_html(payload, asked=question if asked else None),
                        reply_to=reply_to, reply_markup=answer_keyboard(payload))


async def _keep_typing(context: ContextTypes.DEFAULT_TYPE, chat_id: int) -> None:
    """'typing…' until the answer is ready (Telegram shows it for about five seconds per call)."""
    try:
        while True:
            await context.bot.send_chat_action(chat_id, ChatAction.TYPING)
            await asyncio.sleep(4.5)
    except asyncio.CancelledError:
        raise
    except TelegramError as exc:  # cosmetic: never fail an answer for it
        log.debug("typing action failed: %s", exc)


def _button(text: str, data: str) -> InlineKeyboardButton:
    if len(data.encode()) > MAX_CALLBACK_DATA:
        raise ValueError(f"callback data over {MAX_CALLBACK_DATA} bytes: {data!r}")
    return InlineKeyboardButton(text, callback_data=data)


def answer_keyboard(payload: dict, feedback: bool = True) -> InlineKeyboardMarkup:
    """📄 Sources, 👍, 👎 and one row per suggested question. Callback data carries only the stored
    message id (and a suggestion's index): the rest is read back from the store or the keyboard."""
    mid = payload["message_id"]
    lang = payload.get("language") or "it"
    first = []
    if payload.get("sources"):
        first.append(_button(texts.text(lang, "sources_button"), f"src:{mid}"))
    if feedback:
        first += [_button("👍", f"fb:+1:{mid}"), _button("👎", f"fb:-1:{mid}")]
    rows = [first] if first else []
    rows += [[_button(s, f"sq:{i}:{mid}")] for i, s in enumerate(payload.get("suggestions") or [])]
    return InlineKeyboardMarkup(rows)


# --- buttons ---------------------------------------------------------------------------------
async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    sibyl = _sibyl(context)
    kind, _, rest = (query.data or "").partition(":")
    chat = update.effective_chat
    stored = None
    if kind in ("src", "fb", "sq") and chat is not None:
        mid = rest.rpartition(":")[2]
        stored = await asyncio.to_thread(_owned_message, sibyl, mid, chat.id)
    if stored is None:
        lang = await ui_language(update, context)
        await query.answer(texts.text(lang, "button_expired"), show_alert=True)
        return
    lang = stored.language or "it"
    accessible = query.message is not None and query.message.is_accessible
    if kind == "src":
        await query.answer()
        await send_text(context, chat.id, render.sources_html(stored.sources or [], lang),
                        reply_to=query.message.message_id if accessible else None)
    elif kind == "fb":
        rating = 1 if rest.startswith("+1:") else -1
        await asyncio.to_thread(sibyl.store.add_feedback, stored.session_id, stored.id, rating, None, CHANNEL)
        await query.answer(texts.text(lang, "feedback_up" if rating > 0 else "feedback_down"))
        if accessible and query.message.reply_markup:  # one vote per answer: drop the thumbs
            keep = [[b for b in row if not (b.callback_data or "").startswith("fb:")]
                    for row in query.message.reply_markup.inline_keyboard]
            await query.edit_message_reply_markup(InlineKeyboardMarkup([row for row in keep if row]))
    else:
        text = _button_text(query.message, query.data) if accessible else None
        if not text:
            await query.answer(texts.text(lang, "button_expired"), show_alert=True)
            return
        await query.answer()
        await answer_question(update, context, text, asked=True)


def _owned_message(sibyl: Sibyl, message_id: str, chat_id: int):
    """The stored answer a button refers to, only if it belongs to this chat's conversations."""
    message = sibyl.store.get_message(message_id)
    if message is None or message.role != "assistant":
        return None
    session = sibyl.store.get_session(message.session_id)
    return message if session is not None and session.external_key == chat_key(chat_id) else None


def _button_text(message: Message, data: str) -> str | None:
    for row in (message.reply_markup.inline_keyboard if message.reply_markup else ()):
        for button in row:
            if button.callback_data == data:
                return button.text
    return None


# --- everything else -------------------------------------------------------------------------
async def unsupported(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.effective_message
    if message.chat.type != ChatType.PRIVATE:
        replied = message.reply_to_message
        if replied is None or replied.from_user is None or replied.from_user.id != context.bot.id:
            return
    lang = await ui_language(update, context)
    await send_plain(update, context, texts.text(lang, "unsupported", example=texts.text(lang, "example")))


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log with the update's context (ids, not message text) and tell the user, if there is one."""
    chat = update.effective_chat if isinstance(update, Update) else None
    user = update.effective_user if isinstance(update, Update) else None
    log.error("update %s failed (chat %s, user %s): %s: %s",
              update.update_id if isinstance(update, Update) else None, chat.id if chat else None,
              user.id if user else None, type(context.error).__name__, context.error, exc_info=context.error)
    if chat is None:
        return
    try:
        if update.callback_query is not None:  # stop the button's spinner too
            await update.callback_query.answer()
    except TelegramError:
        pass  # already answered, or too old: the message below is what matters
    try:
        lang = texts.pick_language(user.language_code if user else None)
        await context.bot.send_message(chat.id, html.escape(texts.text(lang, "error")), parse_mode=ParseMode.HTML)
    except TelegramError as exc:
        log.warning("could not tell chat %s about the error: %s", chat.id, exc)


# --- the application -------------------------------------------------------------------------
def commands(lang: str) -> list[BotCommand]:
    language = "lingua" if lang == "it" else "language"
    return [BotCommand("start", texts.text(lang, "cmd_start")), BotCommand("help", texts.text(lang, "cmd_help")),
            BotCommand(language, texts.text(lang, "cmd_language")), BotCommand("urp", texts.text(lang, "cmd_urp"))]


async def register_commands(application: Application) -> None:
    """The command menu in Italian (default and 'it' users) and English ('en' users)."""
    bot = application.bot
    await bot.set_my_commands(commands("it"), scope=BotCommandScopeDefault())
    for lang in texts.LANGUAGES:
        await bot.set_my_commands(commands(lang), scope=BotCommandScopeDefault(), language_code=lang)
    log.info("Telegram bot @%s ready", bot.username)


def build_application(settings, service: ConversationService) -> Application:
    """One Application wired to the shared conversation service (polling or webhook alike)."""
    token = settings.telegram_bot_token.get_secret_value().strip() if settings.telegram_bot_token else ""
    if not token:
        raise MissingToken("TELEGRAM_BOT_TOKEN is not set: create a bot with @BotFather and set its token")
    logs.protect(token)
    builder: ApplicationBuilder = (
        Application.builder().token(token)
        .rate_limiter(ResilientRateLimiter())
        .concurrent_updates(telegram_update_processor(8))  # one log line + metrics per update
        .get_updates_request(UpdatesRequest(connection_pool_size=1))
        .post_init(register_commands)
    )
    urls = api_urls(settings.telegram_api_base_url)
    if urls:
        builder = builder.base_url(urls["base_url"]).base_file_url(urls["base_file_url"])
    application = builder.build()
    application.bot_data["sibyl"] = Sibyl(service, settings.telegram_rate_limit)

    new_messages = filters.UpdateType.MESSAGE  # not edits, not channel posts
    application.add_handler(CommandHandler("start", start, filters=new_messages))
    application.add_handler(CommandHandler("help", help_command, filters=new_messages))
    application.add_handler(CommandHandler(list(LANGUAGE_COMMANDS), language_command,
                                           filters=new_messages))
    application.add_handler(CommandHandler("urp", urp, filters=new_messages))
    application.add_handler(MessageHandler(new_messages & filters.COMMAND, unknown_command))
    application.add_handler(MessageHandler(new_messages & filters.TEXT, on_text))
    application.add_handler(MessageHandler(new_messages & MEDIA, unsupported))
    application.add_handler(CallbackQueryHandler(on_button))
    application.add_error_handler(on_error)
    return application


def run_polling(application: Application, *, poll_timeout: float = 30, stop_signals=None,
                use_default_signals: bool = True) -> None:
    """Long polling until stopped (Ctrl-C, SIGTERM, or `application.stop_running()`)."""
    kwargs = {} if use_default_signals else {"stop_signals": stop_signals}
    application.run_polling(allowed_updates=Update.ALL_TYPES, poll_interval=0, timeout=int(poll_timeout),
                            bootstrap_retries=3, **kwargs)


async def check_token(settings) -> str:
    """getMe with the configured token; returns the bot's @username. Raises InvalidToken/NetworkError."""
    token = settings.telegram_bot_token.get_secret_value().strip() if settings.telegram_bot_token else ""
    if not token:
        raise MissingToken("TELEGRAM_BOT_TOKEN is not set: create a bot with @BotFather and set its token")
    logs.protect(token)
    async with Bot(token, **api_urls(settings.telegram_api_base_url)) as bot:
        return bot.username


__all__ = ["build_application", "run_polling", "check_token", "MissingToken", "UnknownSession", "UnknownMessage"]
