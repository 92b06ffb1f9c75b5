"""Messages: a text is a question for the conversation service; anything else gets a polite "text only"."""

from __future__ import annotations

import asyncio
import html
import logging
import re

from telegram import Message, Update
from telegram.constants import ChatAction, ChatType, MessageEntityType
from telegram.error import TelegramError
from telegram.ext import filters

from bot import render, texts
from bot.context import CHANNEL, BotContext, chat_key
from bot.handlers.common import is_reason_prompt, language_hint, send_plain, send_text, ui_language, voter
from retrieval.pipeline import BadQuestion

log = logging.getLogger("sibyl.telegram")

MEDIA = (filters.Sticker.ALL | filters.PHOTO | filters.Document.ALL | filters.LOCATION | filters.VENUE
         | filters.VOICE | filters.AUDIO | filters.VIDEO | filters.VIDEO_NOTE | filters.ANIMATION
         | filters.CONTACT | filters.POLL | filters.Dice.ALL | filters.GAME)
REASON_CHARS = 500  # a 👎's reason: a sentence or two for the URP, not a document
TYPING_EVERY_SECONDS = 4.5  # Telegram shows 'typing…' for about five seconds per call


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


async def on_text(update: Update, context: BotContext) -> None:
    message = update.effective_message
    if message is None:
        return
    question = addressed_text(message, context.bot.id, context.bot.username)
    if question is None:
        return  # a group conversation among members: not ours to answer or repeat
    if await take_reason(update, context, question):
        return
    quote = message.message_id if message.chat.type != ChatType.PRIVATE else None
    edited = update.edited_message is not None  # answered too: the answer says it is for the new text
    await answer_question(update, context, question, reply_to=quote, note="edited_note" if edited else None)


async def take_reason(update: Update, context: BotContext, text: str) -> bool:
    """A reply to the 👎 follow-up is the reason for that person's latest 👎 in this chat (shown to the URP in the
    console's feedback page), not a question. False when the message is not such a reply or there is no 👎."""
    message, who = update.effective_message, update.effective_user
    replied = message.reply_to_message if message is not None else None
    if (message is None or who is None or replied is None or replied.from_user is None
            or replied.from_user.id != context.bot.id or not is_reason_prompt(replied.text) or not text.strip()):
        return False
    stored = await asyncio.to_thread(context.bot_data.store.comment_last_vote, voter(who.id),
                                     chat_key(message.chat.id), text.strip()[:REASON_CHARS])
    if stored is None:
        return False
    await send_plain(update, context, texts.text(await ui_language(update, context), "feedback_reason_saved"))
    return True


async def answer_question(update: Update, context: BotContext, question: str, *,
                          reply_to: int | None = None, asked: bool = False, note: str | None = None) -> None:
    """Ask the conversation service (in a worker thread, 'typing…' meanwhile) and send the answer with its
    buttons; `asked` repeats the question above the answer (a suggestion button was pressed), `note` is a line
    above it (prompts key: an edited message, a photo's caption)."""
    services = context.bot_data
    chat = update.effective_chat
    if chat is None:
        return
    chat_id = chat.id
    wait = services.limiter.wait_seconds(chat_id)
    if wait is not None:
        if services.limiter.should_warn(chat_id):
            await send_text(context, chat_id, html.escape(texts.text(await ui_language(update, context),
                                                                       "rate_limited", seconds=wait)),
                            reply_to=reply_to)
        return
    async with services.locks[chat_id]:  # one answer at a time per chat, in arrival order: follow-ups need it
        key = chat_key(chat_id)
        typing = asyncio.create_task(keep_typing(context, chat_id))
        try:
            language = await asyncio.to_thread(services.prefs.language, key)
            payload = await services.run(services.conversation.reply, question, channel=CHANNEL,
                                              language=language, external_key=key,
                                              language_hint=language_hint(update))
        except BadQuestion as exc:
            await send_text(context, chat_id, html.escape(str(exc)), reply_to=reply_to)
            return
        finally:
            typing.cancel()
        body = render.answer_html(payload, asked=question if asked else None)
        if note:
            body = f"<i>{html.escape(texts.text(payload.get('language') or 'it', note))}</i>\n\n{body}"
        await send_text(context, chat_id, body, reply_to=reply_to, reply_markup=render.answer_keyboard(payload))


async def keep_typing(context: BotContext, chat_id: int) -> None:
    """'typing…' until the answer is ready; cosmetic, so a failure never fails the answer."""
    try:
        while True:
            await context.bot.send_chat_action(chat_id, ChatAction.TYPING)
            await asyncio.sleep(TYPING_EVERY_SECONDS)
    except asyncio.CancelledError:
        raise
    except TelegramError as exc:
        log.debug("typing action failed: %s", exc)


async def unsupported(update: Update, context: BotContext) -> None:
    """Stickers, photos, voice…: "text only, for example …" (in groups only when replying to the bot or, with a
    caption, mentioning it). A caption is a question: it is answered, saying the picture itself is not read."""
    message = update.effective_message
    if message is None:
        return
    caption = " ".join((message.caption or "").split())
    mentioned = f"@{context.bot.username}".lower() in caption.lower() if context.bot.username else False
    if message.chat.type != ChatType.PRIVATE:
        replied = message.reply_to_message
        to_bot = replied is not None and replied.from_user is not None and replied.from_user.id == context.bot.id
        if not (to_bot or mentioned):
            return
    if caption:
        question = re.sub(re.escape(f"@{context.bot.username}"), " ", caption, flags=re.IGNORECASE).strip()
        if question:
            quote = message.message_id if message.chat.type != ChatType.PRIVATE else None
            await answer_question(update, context, question, reply_to=quote, note="caption_note")
            return
    lang = await ui_language(update, context)
    await send_plain(update, context, texts.text(lang, "unsupported", example=texts.text(lang, "example")))
