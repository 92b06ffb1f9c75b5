"""Inline buttons: 📄 sources, 👍/👎 feedback, a suggested question.

One handler per action, chosen by the decoded callback data (bot/callbacks.py). Data that does not
decode, or that points to an answer of another chat or to one that no longer exists, gets a polite
"no longer valid" alert (answerCallbackQuery), never an error.
"""

from __future__ import annotations

import asyncio
import html
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from telegram import CallbackQuery, ForceReply, InlineKeyboardMarkup, Message, ReplyParameters, Update
from telegram.constants import ParseMode

from bot import callbacks, render, texts
from bot.callbacks import AskSuggestion, ButtonData, ShowSources, Vote
from bot.context import CHANNEL, BotContext, BotServices, chat_key
from bot.handlers.common import reason_prompt, send_text, ui_language, voter
from bot.handlers.messages import answer_question
from sibyl.store import Message as StoredMessage


def pattern(kind: type) -> Callable[[object], bool]:
    """A CallbackQueryHandler pattern: the data decodes to a button of this kind."""
    return lambda data: isinstance(callbacks.decode(data), kind)


def owned_message(services: BotServices, message_id: str, chat_id: int) -> StoredMessage | None:
    """The stored answer a button refers to, only if it belongs to this chat's conversations."""
    message = services.store.get_message(message_id)
    if message is None or message.role != "assistant":
        return None
    session = services.store.get_session(message.session_id)
    return message if session is not None and session.external_key == chat_key(chat_id) else None


@dataclass
class Pressed:
    """A button press that points to one of this chat's stored answers."""

    query: CallbackQuery
    button: ButtonData
    stored: StoredMessage
    chat_id: int
    message: Message | None  # the message the keyboard is on, when Telegram still lets us see it

    @property
    def language(self) -> str:
        return self.stored.language or "it"


async def refuse(update: Update, context: BotContext) -> None:
    """Malformed, forged or expired buttons: an alert in the chat's language."""
    if update.callback_query is not None:
        lang = await ui_language(update, context)
        await update.callback_query.answer(texts.text(lang, "button_expired"), show_alert=True)


async def pressed(update: Update, context: BotContext) -> Pressed | None:
    """The press if its data decodes and its answer is this chat's; otherwise None, after the alert."""
    query, chat = update.callback_query, update.effective_chat
    button = callbacks.decode(query.data) if query is not None else None
    if query is None or button is None or chat is None:
        await refuse(update, context)
        return None
    stored = await asyncio.to_thread(owned_message, context.bot_data, button.message_id, chat.id)
    if stored is None:
        await refuse(update, context)
        return None
    message = query.message if isinstance(query.message, Message) else None
    return Pressed(query, button, stored, chat.id, message)


async def show_sources(update: Update, context: BotContext) -> None:
    press = await pressed(update, context)
    if press is None:
        return
    await press.query.answer()
    base_url = context.bot_data.settings.public_base_url
    await send_text(context, press.chat_id, render.sources_html(press.stored.sources or [], press.language, base_url),
                    reply_to=press.message.message_id if press.message else None)


async def vote(update: Update, context: BotContext) -> None:
    """Stored like the web's feedback (channel telegram), one current vote per person per answer: pressing again
    changes it. The thumbs stay (a group's other members vote too); a 👎 asks for an optional reason."""
    press = await pressed(update, context)
    who = update.effective_user
    if press is None or not isinstance(press.button, Vote) or who is None:
        return
    rating = press.button.rating
    await asyncio.to_thread(context.bot_data.store.add_feedback, press.stored.session_id, press.stored.id, rating,
                            None, CHANNEL, voter(who.id))
    lang = await ui_language(update, context)  # in a group, the one who pressed may not be the one who asked
    await press.query.answer(texts.text(lang, "feedback_up" if rating > 0 else "feedback_down"))
    if rating < 0:
        await context.bot.send_message(
            press.chat_id, html.escape(reason_prompt(lang, who.first_name if press.chat_id < 0 else None)),
            parse_mode=ParseMode.HTML,
            reply_markup=ForceReply(selective=True, input_field_placeholder=texts.text(lang, "feedback_reason_hint")),
            reply_parameters=(ReplyParameters(press.message.message_id, allow_sending_without_reply=True)
                              if press.message else None))


async def ask_suggestion(update: Update, context: BotContext) -> None:
    """The full question suggested under the stored answer (the button shows a short label); for keyboards sent
    before labels existed, the button's own text, read back from the keyboard it was pressed on."""
    press = await pressed(update, context)
    if press is None or not isinstance(press.button, AskSuggestion):
        return
    full = await asyncio.to_thread(context.bot_data.conversation.suggestions_for, press.stored.id)
    text = full[press.button.index] if press.button.index < len(full) else None
    if not text:
        text = button_text(press.message.reply_markup, press.query.data) if press.message else None
    if not text:
        await press.query.answer(texts.text(press.language, "button_expired"), show_alert=True)
        return
    await press.query.answer()
    await answer_question(update, context, text, asked=True)


def button_text(markup: InlineKeyboardMarkup | None, data: str | None) -> str | None:
    for row in (markup.inline_keyboard if markup else ()):
        for button in row:
            if button.callback_data == data:
                return button.text
    return None


Handler = Callable[[Update, BotContext], Coroutine[Any, Any, None]]
BY_BUTTON: list[tuple[type, Handler]] = [(ShowSources, show_sources), (Vote, vote), (AskSuggestion, ask_suggestion)]
