"""What the handlers share: the chat's interface language and sending (split) HTML."""

from __future__ import annotations

import asyncio
import html

from telegram import Bot, InlineKeyboardMarkup, LinkPreviewOptions, Message, ReplyParameters, Update
from telegram.constants import ChatType, ParseMode

from bot import render, texts
from bot.context import CHANNEL, BotContext, chat_key


async def ui_language(update: Update, context: BotContext) -> str:
    """The chat's fixed language if any, else the user's Telegram language (it/en), else Italian."""
    chat = update.effective_chat
    if chat is not None:
        fixed = await asyncio.to_thread(context.bot_data.prefs.language, chat_key(chat.id))
        if fixed:
            return fixed
    user = update.effective_user
    return texts.pick_language(user.language_code if user else None)


def language_hint(update: Update) -> str | None:
    """The sender's Telegram language when it is one we answer in: the pipeline's fallback for a question too
    short to tell ("cos'è City Lab?"), never an override."""
    user = update.effective_user
    base = (user.language_code or "").split("-")[0].lower() if user else ""
    return base if base in texts.LANGUAGES else None


async def send_text(context: BotContext | Bot, chat_id: int, body_html: str, *, reply_to: int | None = None,
                    reply_markup: InlineKeyboardMarkup | None = None) -> list[Message]:
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


async def send_plain(update: Update, context: BotContext, plain: str) -> None:
    """A prompt text (escaped) as a reply; in groups it quotes the message it answers."""
    message = update.effective_message
    chat = update.effective_chat
    if chat is None:
        return
    quote = message.message_id if message is not None and chat.type != ChatType.PRIVATE else None
    await send_text(context, chat.id, html.escape(plain), reply_to=quote)


def voter(user_id: int) -> str:
    """Who voted, for the store's one-vote-per-person rule."""
    return f"{CHANNEL}:{user_id}"


def reason_prompt(lang: str, name: str | None = None) -> str:
    """The 👎 follow-up; in a group it names the voter (the reply to it is theirs to give)."""
    prompt = texts.text(lang, "feedback_reason_prompt")
    return f"{name}, {prompt[0].lower()}{prompt[1:]}" if name else prompt


def is_reason_prompt(text: str | None) -> bool:
    """Whether a bot message is the 👎 follow-up (a reply to it is the reason, not a question)."""
    return bool(text) and any(str(text).endswith(texts.text(lang, "feedback_reason_prompt")[1:])
                              for lang in texts.LANGUAGES)
