"""The error handler: log the failed update by ids (never its text) and tell the user, if there is one."""

from __future__ import annotations

import html
import logging

from telegram import Update
from telegram.constants import ParseMode
from telegram.error import TelegramError

from bot import texts
from bot.context import BotContext

log = logging.getLogger("sibyl.telegram")


async def on_error(update: object, context: BotContext) -> None:
    chat = update.effective_chat if isinstance(update, Update) else None
    user = update.effective_user if isinstance(update, Update) else None
    log.error("update %s failed (chat %s, user %s): %s: %s",
              update.update_id if isinstance(update, Update) else None, chat.id if chat else None,
              user.id if user else None, type(context.error).__name__, context.error, exc_info=context.error)
    if chat is None or not isinstance(update, Update):
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
