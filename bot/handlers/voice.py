"""Voice notes and audio files (issue 16): transcribed, shown ("I heard: …", correctable by typing),
answered like a text question, then read back as a voice note when the chat has spoken replies on.

One voice question at a time per chat (BotServices.locks, shared with text questions, so answers keep
arrival order); size and duration are checked from Telegram's metadata before anything is downloaded,
and again on the bytes (sibyl.voice). The audio is never stored: downloaded into memory and dropped.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import html
import logging
from collections.abc import Mapping
from typing import Any

from telegram import Update
from telegram.constants import ChatAction, ChatType
from telegram.error import TelegramError
from telegram.ext import filters

from bot import render, texts
from bot.context import CHANNEL, BotContext, BotServices, chat_key
from bot.handlers.common import send_plain, send_text, ui_language
from bot.handlers.messages import keep_typing
from retrieval.pipeline import BadQuestion
from sibyl.voice import VoiceError, VoiceService

log = logging.getLogger("sibyl.telegram")

# Voice notes, audio files, and audio sent as a document (e.g. an .m4a from the file picker).
AUDIO_IN = filters.VOICE | filters.AUDIO | filters.Document.AUDIO
SPOKEN_COMMANDS = ("voce", "voice")


def voice_of(services: BotServices) -> VoiceService:
    """The bot's voice service, built on first use (cheap: the ASR model itself loads once per process)."""
    if services.voice is None:
        services.voice = VoiceService.from_settings(services.settings)
    return services.voice


def refusal(lang: str, code: str, services: BotServices) -> str:
    settings = services.settings
    return texts.text(lang, f"voice_{code}", max_seconds=int(settings.voice_max_seconds),
                      max_bytes=settings.voice_max_bytes)


def _for_us(update: Update, context: BotContext) -> bool:
    """Private chats always; in groups only a voice note replying to one of the bot's messages."""
    message = update.effective_message
    if message is None or message.chat.type == ChatType.PRIVATE:
        return message is not None
    replied = message.reply_to_message
    return replied is not None and replied.from_user is not None and replied.from_user.id == context.bot.id


async def on_voice(update: Update, context: BotContext) -> None:
    message = update.effective_message
    chat = update.effective_chat
    if message is None or chat is None or not _for_us(update, context):
        return
    services = context.bot_data
    voice = voice_of(services)
    lang = await ui_language(update, context)
    if not voice.can_listen:
        await send_plain(update, context, texts.text(lang, "voice_off_reply", example=texts.text(lang, "example")))
        return
    media = message.voice or message.audio or message.document
    if media is None:
        return
    duration = getattr(media, "_duration", None)  # seconds as sent (the `duration` property warns: timedelta soon)
    if isinstance(duration, dt.timedelta):
        duration = duration.total_seconds()
    if media.file_size is not None and media.file_size > services.settings.voice_max_bytes:
        await send_plain(update, context, refusal(lang, "audio_too_large", services))
        return
    if duration is not None and duration > services.settings.voice_max_seconds:
        await send_plain(update, context, refusal(lang, "audio_too_long", services))
        return
    chat_id = chat.id
    wait = services.limiter.wait_seconds(chat_id)
    if wait is not None:
        if services.limiter.should_warn(chat_id):
            await send_plain(update, context, texts.text(lang, "rate_limited", seconds=wait))
        return
    quote = message.message_id if chat.type != ChatType.PRIVATE else None
    lock = services.locks[chat_id]
    if lock.locked():
        await send_plain(update, context, texts.text(lang, "voice_busy"))
    async with lock:  # one transcription and answer at a time per chat, in arrival order
        typing = asyncio.create_task(keep_typing(context, chat_id))
        try:
            try:
                file = await media.get_file()
                data = bytes(await file.download_as_bytearray())
                heard = await services.run(voice.transcribe, data)
            except VoiceError as exc:
                await send_plain(update, context, refusal(lang, exc.code, services))
                return
            except TelegramError as exc:
                log.warning("voice download failed: %s", type(exc).__name__)
                await send_plain(update, context, refusal(lang, "voice_backend_failed", services))
                return
            key = chat_key(chat_id)
            fixed = await asyncio.to_thread(services.prefs.language, key)
            transcript = heard.transcript
            shown_lang = fixed or transcript.language
            await send_text(context, chat_id, html.escape(texts.text(shown_lang, "heard", transcript=transcript.text)),
                            reply_to=quote)
            try:
                payload = await services.run(services.conversation.reply, transcript.text, channel=CHANNEL,
                                                  language=fixed or transcript.language, external_key=key)
            except BadQuestion as exc:
                await send_text(context, chat_id, html.escape(str(exc)), reply_to=quote)
                return
        finally:
            typing.cancel()
        await send_text(context, chat_id, render.answer_html(payload), reply_to=quote,
                        reply_markup=render.answer_keyboard(payload))
        if voice.can_speak and await asyncio.to_thread(services.prefs.spoken_replies, key):
            await speak(context, services, voice, chat_id, payload, quote)


async def speak(context: BotContext, services: BotServices, voice: VoiceService, chat_id: int,
                payload: Mapping[str, Any],
                quote: int | None) -> None:
    """The answer as a voice note; a failure is said in one line and never loses the written answer."""
    lang = payload.get("language") or "it"
    try:
        await context.bot.send_chat_action(chat_id, ChatAction.RECORD_VOICE)
        audio = await services.run(voice.speak, payload)
        await context.bot.send_voice(chat_id, audio, filename="sibyl.ogg")
    except (VoiceError, TelegramError) as exc:
        log.warning("spoken answer failed: %s", type(exc).__name__)
        await send_text(context, chat_id, html.escape(texts.text(lang, "voice_speak_failed")), reply_to=quote)


async def spoken_command(update: Update, context: BotContext) -> None:
    """`/voce on|off` (= /voice): whether voice questions also get a voice note back."""
    chat = update.effective_chat
    if chat is None:
        return
    services = context.bot_data
    choice = context.args[0].lower() if context.args else ""
    key = chat_key(chat.id)
    lang = await ui_language(update, context)
    if choice in ("on", "off"):
        async with services.locks[chat.id]:
            await asyncio.to_thread(services.prefs.set_spoken_replies, key, choice == "on")
        await send_plain(update, context, texts.text(lang, f"voice_spoken_{choice}"))
        return
    on = await asyncio.to_thread(services.prefs.spoken_replies, key)
    await send_plain(update, context, texts.text(lang, "voice_usage",
                                                 current=texts.text(lang, "voice_current_on" if on else
                                                                    "voice_current_off")))
