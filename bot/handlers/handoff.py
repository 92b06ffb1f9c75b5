"""Talk to a person (issue 15): the 🙋 button under a decline, or /persona (/person) after any answer, asks the
citizen to confirm (with the retention period); "yes" opens a URP case with the whole conversation and this
chat as the contact, and tells the citizen the case number. The operator's reply comes back in this chat.
"""

from __future__ import annotations

import asyncio
import html

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update

from bot import callbacks, texts
from bot.callbacks import Handoff
from bot.context import CHANNEL, BotContext, chat_key
from bot.handlers.callbacks import pressed
from bot.handlers.common import send_plain, send_text, ui_language

COMMANDS = ("persona", "person")


def confirm_keyboard(message_id: str, lang: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[
        InlineKeyboardButton(texts.text(lang, "handoff_yes"), callback_data=callbacks.encode(Handoff(message_id, "y"))),
        InlineKeyboardButton(texts.text(lang, "handoff_no"), callback_data=callbacks.encode(Handoff(message_id, "n"))),
    ]])


async def _ask_to_confirm(context: BotContext, chat_id: int, message_id: str, lang: str) -> None:
    days = context.bot_data.settings.case_retention_days
    await send_text(context, chat_id, html.escape(texts.text(lang, "handoff_confirm", days=days)),
                    reply_markup=confirm_keyboard(message_id, lang))


def _latest_answer(services, chat_id: int):
    """The newest answer of the chat's current conversation, or None (no question asked yet)."""
    opened = services.store.open_session(None, channel=CHANNEL, external_key=chat_key(chat_id), persist_new=False)
    if opened.new:
        return None
    answers = services.store.recent_answers(opened.session.id, 1)
    return answers[-1] if answers else None


async def person_command(update: Update, context: BotContext) -> None:
    """/persona: confirm first, for the chat's current conversation."""
    chat = update.effective_chat
    if chat is None:
        return
    lang = await ui_language(update, context)
    latest = await asyncio.to_thread(_latest_answer, context.bot_data, chat.id)
    if latest is None:
        await send_plain(update, context, texts.text(lang, "handoff_empty"))
        return
    await _ask_to_confirm(context, chat.id, latest.id, lang)


async def on_button(update: Update, context: BotContext) -> None:
    press = await pressed(update, context)  # the answer must be this chat's (forged data gets the alert)
    if press is None or not isinstance(press.button, Handoff):
        return
    lang = await ui_language(update, context)
    step = press.button.step
    await press.query.answer()
    if step == "a":
        await _ask_to_confirm(context, press.chat_id, press.stored.id, lang)
        return
    if press.message is not None and press.message.reply_markup:
        await press.query.edit_message_reply_markup(None)  # one answer per confirmation
    if step == "n":
        await send_text(context, press.chat_id, html.escape(texts.text(lang, "handoff_cancelled")))
        return
    services = context.bot_data
    session_id = press.stored.session_id
    messages = await asyncio.to_thread(services.store.messages, session_id)
    assert services.cases is not None  # BotServices.create builds it
    case, _ = await asyncio.to_thread(services.cases.open, session_id, messages, CHANNEL, lang,
                                      telegram_chat=str(press.chat_id))
    await send_text(context, press.chat_id, html.escape(texts.text(lang, "handoff_done", number=case.number)))
