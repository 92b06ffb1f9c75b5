"""Commands: /start (with a deep link's topic), /help, /urp (and its button under a decline), /lingua (= /language)
and a reply to unknown commands."""

from __future__ import annotations

import asyncio
import html
import re
import tomllib
from functools import lru_cache

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.constants import ChatType

import prompts
from bot import callbacks, texts
from bot.callbacks import Handoff, ShowUrp
from bot.context import BotContext, chat_key
from bot.handlers.common import send_plain, send_text, ui_language
from bot.handlers.messages import answer_question

LANGUAGE_COMMANDS = ("lingua", "language")


DEEP_LINK = re.compile(r"[A-Za-z0-9_-]{1,64}")  # what Telegram allows after ?start=


@lru_cache(maxsize=1)
def topics() -> dict[str, dict[str, str]]:
    """Deep-link topics (prompts/topics.toml): name -> its question in each language."""
    with (prompts.HERE / "topics.toml").open("rb") as fh:
        return tomllib.load(fh)


def topic_question(payload: str | None, lang: str) -> str | None:
    """The question a `t.me/<bot>?start=<topic>` link opens with, or None (unknown or malformed: the normal start)."""
    if not payload or not DEEP_LINK.fullmatch(payload):
        return None
    topic = topics().get(payload.lower())
    return topic.get(lang) or topic.get("it") if topic else None


async def start(update: Update, context: BotContext) -> None:
    lang = await ui_language(update, context)
    question = topic_question(context.args[0] if context.args else None, lang)
    if question is not None:  # a deep link (a QR code at a bus stop...): straight to the topic's answer
        await answer_question(update, context, question, asked=True)
        return
    user = update.effective_user
    name = user.first_name if user and user.first_name else ""
    await send_plain(update, context, texts.text(lang, "start", name=name, example=texts.text(lang, "example"))
                     .replace(" !", "!"))


async def help_command(update: Update, context: BotContext) -> None:
    await send_plain(update, context, texts.text(await ui_language(update, context), "help"))


async def urp(update: Update, context: BotContext) -> None:
    await send_plain(update, context, texts.text(await ui_language(update, context), "urp"))


async def urp_button(update: Update, context: BotContext) -> None:
    """🏛️ URP under a decline: the URP's contacts, with the offer of a person for that answer (issue 15's 🙋,
    which checks the answer is this chat's when pressed). The contacts are public: any press gets them."""
    query, chat = update.callback_query, update.effective_chat
    if query is None or chat is None:
        return
    await query.answer()
    button = callbacks.decode(query.data)
    lang = await ui_language(update, context)
    keyboard = None
    if isinstance(button, ShowUrp):
        keyboard = InlineKeyboardMarkup([[InlineKeyboardButton(
            texts.text(lang, "handoff_button"), callback_data=callbacks.encode(Handoff(button.message_id, "a")))]])
    await send_text(context, chat.id, html.escape(texts.text(lang, "urp")), reply_markup=keyboard)


async def language_command(update: Update, context: BotContext) -> None:
    """`/lingua it|en|auto` fixes (or releases) the chat's answer language; anything else shows the usage."""
    chat = update.effective_chat
    if chat is None:
        return
    services = context.bot_data
    choice = (context.args[0].lower() if context.args else "")
    key = chat_key(chat.id)
    if choice in texts.LANGUAGES or choice == "auto":
        async with services.locks[chat.id]:  # a question sent right after must see the new language
            await asyncio.to_thread(services.prefs.set_language, key, None if choice == "auto" else choice)
    if choice in texts.LANGUAGES:
        await send_plain(update, context, texts.text(choice, "language_set"))
    elif choice == "auto":
        lang = texts.pick_language(update.effective_user.language_code if update.effective_user else None)
        await send_plain(update, context, texts.text(lang, "language_auto"))
    else:
        lang = await ui_language(update, context)
        fixed = await asyncio.to_thread(services.prefs.language, key)
        await send_plain(update, context, texts.text(lang, "language_usage",
                                                     current=fixed or texts.text(lang, "language_current_auto")))


async def unknown_command(update: Update, context: BotContext) -> None:
    message = update.effective_message
    chat = update.effective_chat
    if message is None or chat is None or (chat.type != ChatType.PRIVATE
                                           and not command_for_us(message, context.bot.username)):
        return
    await send_plain(update, context, texts.text(await ui_language(update, context), "unknown_command"))


def command_for_us(message: Message, username: str) -> bool:
    """In groups, '/cmd@OtherBot' is for another bot; '/cmd' and '/cmd@Us' may be for us."""
    first = (message.text or "").split()[0] if message.text else ""
    target = first.partition("@")[2]
    return not target or target.lower() == (username or "").lower()
