"""An answer as Telegram shows it: HTML for the answer and its sources, its inline keyboard, and a
splitter that respects the 4,096-character limit.

Every piece of text that comes from the corpus, the user or the prompts is escaped with
`html.escape`; the only markup is the handful of tags added here.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot import callbacks, texts
from bot.callbacks import AskSuggestion, Handoff, ShowSources, ShowUrp, Vote

MAX_MESSAGE = 4096
_CITATION = re.compile(r"\[(\d{1,2})\]")
_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)[^>]*>")
_TOKEN = re.compile(r"<[^>]*>|&#?\w+;|\s+|[^<&\s]{1,200}|[<&]")


def utf16_len(text: str) -> int:
    """Telegram counts message length in UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def answer_html(payload: Mapping[str, Any], asked: str | None = None) -> str:
    """The conversation service's answer as Telegram HTML: escaped text, bold citation markers and headings.

    An extractive answer is drawn from its structured form (lead, bullets, sources); a model's answer
    (LLM mode) exists only as text, which is escaped line by line."""
    lang = payload.get("language") or "it"
    lines = []
    if asked:
        lines += [f"<i>{html.escape(texts.text(lang, 'asked', question=asked))}</i>", ""]
    structured = payload.get("structured")
    if isinstance(structured, dict) and structured.get("mode") == "extractive" and structured.get("lead"):
        lines += _structured_lines(structured, bool(payload.get("answered")), lang)
    else:
        lines += _text_lines(str(payload.get("answer", "")), lang)
    return "\n".join(lines).strip()


def _structured_lines(structured: dict[str, Any], answered: bool, lang: str) -> list[str]:
    """Lead; '- bullet [n]' lines; the heading and '[n] title › section' lines (an abstention: the lead only)."""
    lines = [html.escape(str(structured["lead"]))]
    if not answered:
        return lines
    lines.append("")
    lines += [f"- {html.escape(str(b['text']))} <b>[{int(b['source'])}]</b>" for b in structured.get("bullets") or []]
    lines += ["", f"<b>{html.escape(texts.prompt_heading(lang))}</b>"]
    lines += [f"<b>[{int(s['n'])}]</b> {html.escape(str(s['label']))}" for s in structured.get("sources") or []]
    return lines


def _text_lines(answer: str, lang: str) -> list[str]:
    """A model's free text: escaped, its [n] markers and the sources heading in bold."""
    heading = texts.prompt_heading(lang)
    lines = []
    for line in answer.split("\n"):
        escaped = html.escape(line)
        if heading and line.strip() == heading:
            lines.append(f"<b>{escaped}</b>")
        else:
            lines.append(_CITATION.sub(r"<b>[\1]</b>", escaped))
    return lines


def answer_keyboard(payload: Mapping[str, Any], feedback: bool = True) -> InlineKeyboardMarkup:
    """📄 Sources, 👍, 👎 and one row per suggested question. Callback data (bot/callbacks.py) carries only
    the stored message id (and a vote or a suggestion's index): the rest is read back from the store or
    the keyboard. ValueError if the data would not fit Telegram's 64 bytes."""
    mid = payload["message_id"]
    lang = payload.get("language") or "it"
    first = []
    if payload.get("sources"):
        first.append(InlineKeyboardButton(texts.text(lang, "sources_button"),
                                          callback_data=callbacks.encode(ShowSources(mid))))
    if feedback:
        first += [InlineKeyboardButton("👍", callback_data=callbacks.encode(Vote(mid, 1))),
                  InlineKeyboardButton("👎", callback_data=callbacks.encode(Vote(mid, -1)))]
    rows = [first] if first else []
    # A suggestion's button shows its short label (≤ 40 characters); pressing it asks the full question.
    questions = payload.get("suggestions") or []
    labels = payload.get("suggestion_labels") or questions
    rows += [[InlineKeyboardButton(labels[i] if i < len(labels) else q,
                                   callback_data=callbacks.encode(AskSuggestion(mid, i)))]
             for i, q in enumerate(questions)]
    if payload.get("answered") is False and payload.get("intent") in ("question", "abstain"):
        # A decline offers a person at the URP (issue 15); after any answer /persona does the same.
        # The URP's contacts on every decline (issue 17), then the offer of a person.
        urp = callbacks.encode(ShowUrp(mid))
        rows.append([InlineKeyboardButton(texts.text(lang, "urp_button"), callback_data=urp)])
        rows.append([InlineKeyboardButton(texts.text(lang, "handoff_button"),
                                          callback_data=callbacks.encode(Handoff(mid, "a")))])
    return InlineKeyboardMarkup(rows)


def _passage(source: dict) -> str:
    """The passage without the title and section lines the index prepends (they are shown above it)."""
    lines = str(source.get("text", "")).split("\n")
    for label in (source.get("title"), source.get("section")):
        if lines and label and lines[0].strip() == str(label).strip():
            lines = lines[1:]
    return "\n".join(lines).strip()


def document_url(base_url: str, source: Mapping[str, Any], lang: str) -> str | None:
    """The public view of the source's document at its passage (api/documents.py), or None without ids."""
    document, passage = str(source.get("document") or ""), str(source.get("id") or "")
    if not document or not passage:
        return None
    return f"{base_url}/documenti/{quote(document, safe='')}?lang={lang}#{quote(passage, safe=':')}"


def sources_html(sources: list[dict], lang: str, base_url: str | None = None) -> str:
    """Numbered sources: document (a link to its public view at the passage, given the site's public address),
    section and the cited passage (an expandable quote)."""
    if not sources:
        return html.escape(texts.text(lang, "sources_none"))
    parts = [f"<b>{html.escape(texts.text(lang, 'sources_title'))}</b>"]
    for s in sources:
        parts.append("")
        title = html.escape(str(s.get("title", "")))
        url = document_url(base_url, s, lang) if base_url else None
        if url:
            title = f'<a href="{html.escape(url, quote=True)}">{title}</a>'
        parts.append(f"<b>[{int(s.get('n', 0))}] {title}</b>")
        if s.get("section"):
            parts.append(f"<i>{html.escape(texts.text(lang, 'section'))}:</i> {html.escape(str(s['section']))}")
        passage = _passage(s)
        if passage:
            parts.append(f"<blockquote expandable>{html.escape(passage)}</blockquote>")
    return "\n".join(parts)


# --- splitting ------------------------------------------------------------------------------
def _apply(stack: list[tuple[str, str]], fragment: str) -> list[tuple[str, str]]:
    """The stack of open tags after `fragment`."""
    out = list(stack)
    for m in _TAG.finditer(fragment):
        closing, name = m.group(1), m.group(2).lower()
        if not closing:
            out.append((name, m.group(0)))
            continue
        for i in range(len(out) - 1, -1, -1):
            if out[i][0] == name:
                del out[i:]
                break
    return out


def _closing(stack: list[tuple[str, str]]) -> str:
    return "".join(f"</{name}>" for name, _ in reversed(stack))


def _opening(stack: list[tuple[str, str]]) -> str:
    return "".join(tag for _, tag in stack)


def _visible(fragment: str) -> str:
    return html.unescape(_TAG.sub("", fragment)).strip()


def split_html(text: str, limit: int = MAX_MESSAGE) -> list[str]:
    """Split Telegram HTML into messages of at most `limit`, at line boundaries where possible.

    Tags open at a split are closed at the end of one message and reopened (with their
    attributes) at the start of the next, so every message is balanced on its own. A single
    line longer than the limit is cut between words, never inside a tag or an entity.
    """
    if utf16_len(text) <= limit:
        return [text] if _visible(text) else []
    chunks: list[str] = []
    stack: list[tuple[str, str]] = []
    current = ""
    has_content = False

    def fits(candidate: str, after: list[tuple[str, str]]) -> bool:
        return utf16_len(candidate + _closing(after)) <= limit

    def flush() -> None:
        nonlocal current, has_content
        if has_content and _visible(current):
            chunks.append((current + _closing(stack)).strip("\n"))
        current, has_content = _opening(stack), False

    for i, line in enumerate(text.split("\n")):
        sep = "\n" if i else ""
        after = _apply(stack, line)
        if fits(current + sep + line, after):
            current, stack, has_content = current + sep + line, after, True
            continue
        if fits(_opening(stack) + line, after):  # fits in a message of its own
            flush()
            current, stack, has_content = current + line, after, True
            continue
        tokens = _TOKEN.findall(line) or [line]  # too long for any message: cut between words
        for token in ([sep] if has_content else []) + tokens:
            after = _apply(stack, token)
            if has_content and not fits(current + token, after):
                flush()
            current, stack, has_content = current + token, after, True
    flush()
    return chunks
