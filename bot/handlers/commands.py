"""Commands: /start, /help, /urp, /lingua (= /language) and a reply to unknown commands."""

from __future__ import annotations

import asyncio

from telegram import Message, Update
from telegram.constants import ChatType

from bot import texts
from bot.context import BotContext, chat_key
from bot.handlers.common import send_plain, ui_language

LANGUAGE_COMMANDS = ("lingua", "language")


async def start(update: Update, context: BotContext) -> None:
    lang = await ui_language(update, context)
    user = update.effective_user
    name = user.first_name if user and user.first_name else ""
    await send_plain(update, context, texts.text(lang, "start", name=name, example=texts.text(lang, "example"))
                     .replace(" !", "!"))


async def help_command(update: Update, context: BotContext) -> None:
    await send_plain(update, context, texts.text(await ui_language(update, context), "help"))


async def urp(update: Update, context: BotContext) -> None:
    await send_plain(update, context, texts.text(await ui_language(update, context), "urp"))


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
