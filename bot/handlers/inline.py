"""Inline mode (issue 17): `@bot domanda` typed in any chat offers an answer card to send there.

The card is the same cited answer a private chat gets (the pipeline's, in the asker's language when the
question is too short to tell), with a link to each source's public page when the site's public address
is known. Nothing is stored: an inline query has no conversation. Each person has the bot's per-chat
question budget (keyed by their user id); an empty query gets a hint, a refused one says how long to wait.
"""

from __future__ import annotations

import hashlib
import html
import logging
from typing import Any

from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InlineQueryResultArticle,
    InlineQueryResultsButton,
    InputTextMessageContent,
    LinkPreviewOptions,
    Update,
)
from telegram.constants import ParseMode

from bot import render, texts
from bot.context import BotContext
from retrieval.pipeline import BadQuestion

log = logging.getLogger("sibyl.telegram")

CACHE_SECONDS = 300  # Telegram may reuse a card for the same query this long (answers change only on ingest)
START_PARAMETER = "inline"  # the hint button opens the private chat with /start inline (the normal start)
MAX_QUERY_CHARS = 256  # Telegram's own limit on an inline query


def answer_card(question: str, payload: dict[str, Any], base_url: str | None) -> InlineQueryResultArticle:
    """One article: title = the question, description = the answer's first line, the message = the cited
    answer (HTML, within Telegram's limit), and a button per source opening its public page."""
    lang = payload.get("language") or "it"
    structured = payload.get("structured") or {}
    lead = str(structured.get("lead") or payload.get("answer") or "").split("\n")[0]
    body = render.split_html(render.answer_html(payload, asked=question))[0]
    rows = []
    if payload.get("answered"):
        for source in payload.get("sources") or []:
            url = render.document_url(base_url, source, lang) if base_url else None
            if url:
                label = texts.text(lang, "inline_source", title=f"[{source['n']}] {source.get('title', '')}")
                rows.append([InlineKeyboardButton(label[:64], url=url)])
    description = lead if payload.get("answered") else texts.text(lang, "inline_no_answer")
    digest = hashlib.sha256(f"{lang}\n{question}".encode()).hexdigest()[:32]
    return InlineQueryResultArticle(
        id=digest, title=question[:100], description=description[:200],
        input_message_content=InputTextMessageContent(body, parse_mode=ParseMode.HTML,
                                                      link_preview_options=LinkPreviewOptions(is_disabled=True)),
        reply_markup=InlineKeyboardMarkup(rows) if rows else None)


async def on_inline_query(update: Update, context: BotContext) -> None:
    query = update.inline_query
    if query is None:
        return
    lang = texts.pick_language(query.from_user.language_code if query.from_user else None)
    question = " ".join((query.query or "").split())[:MAX_QUERY_CHARS]
    if not question:
        await query.answer([], cache_time=CACHE_SECONDS, button=InlineQueryResultsButton(
            texts.text(lang, "inline_hint"), start_parameter=START_PARAMETER))
        return
    services = context.bot_data
    wait = services.limiter.wait_seconds(query.from_user.id)  # the person's budget (a private chat's id is theirs)
    if wait is not None:
        await query.answer([], cache_time=0, is_personal=True, button=InlineQueryResultsButton(
            texts.text(lang, "inline_rate_limited", seconds=wait), start_parameter=START_PARAMETER))
        return
    pipeline = services.conversation.pipeline
    try:
        answer = await services.run(pipeline.ask, question, fallback_language=lang)
    except BadQuestion as exc:
        await query.answer([], cache_time=0, is_personal=True, button=InlineQueryResultsButton(
            html.unescape(str(exc))[:64], start_parameter=START_PARAMETER))
        return
    card = answer_card(question, answer.to_dict(), services.settings.public_base_url)
    await query.answer([card], cache_time=CACHE_SECONDS)
