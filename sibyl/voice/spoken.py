"""The spoken form of an answer: what a listener needs, not what a reader sees.

From the structured answer (lead, bullets, sources): no "[1]" markers, brackets, URLs or list dashes, each
cited document named once ("fonte: Relazione sulla Performance 2023"), in the answer's language, cut at a
sentence boundary near a cap (a voice note of several minutes helps no one; the text stays in the chat).
Templates: prompts/messages.{it,en}.toml (`spoken_*`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import prompts

_MARKER = re.compile(r"\s*\[\d+(?:\s*[,–-]\s*\d+)*\]")
_URL = re.compile(r"(?:https?://|www\.)[^\s()\[\]<>«»]*[^\s()\[\]<>«».,;:!?]", re.IGNORECASE)
_YEARS = re.compile(r"\b(\d{4})\s*[-–/]\s*(\d{4})\b")  # "2025-2027" read as two years, not a subtraction
_BRACKETS = re.compile(r"[\[\]{}()«»“”\"*_#`|>]")
_EMOJI = re.compile("[\U0001F000-\U0001FAFF\u2600-\u27BF\uFE0F]")


@dataclass(frozen=True)
class SpokenBullet:
    text: str
    source: int | None


def clean(text: str) -> str:
    """Text as it should be read aloud: markers, URLs, brackets, markdown and emoji removed."""
    text = _MARKER.sub("", text)
    text = _URL.sub("", text)
    text = _YEARS.sub(r"\1 \2", text)
    text = text.replace("›", ",").replace("•", " ").replace("…", ".")
    text = _BRACKETS.sub(" ", text)
    text = _EMOJI.sub(" ", text)
    text = re.sub(r"^\s*[-–]\s+", "", text)
    text = " ".join(text.split())
    text = re.sub(r"\s+([,.;:!?])", r"\1", text)
    return text.strip(" ,;")


def _sentence(text: str) -> str:
    text = clean(text)
    return text if not text or text[-1] in ".!?:" else text + "."


def render(lead: str, bullets: list[SpokenBullet], titles: dict[int, str], language: str,
           max_chars: int = 600) -> str:
    """Lead, then each bullet followed by its document the first time it is cited; cut near `max_chars`."""
    pieces = [_sentence(lead)] if clean(lead) else []
    named: set[str] = set()
    for bullet in bullets:
        piece = _sentence(bullet.text)
        if not piece:
            continue
        title = titles.get(bullet.source) if bullet.source is not None else None
        if title and title not in named:
            named.add(title)
            piece += " " + prompts.text(language, "spoken_source", title=clean(title))
        pieces.append(piece)
    out = ""
    for i, piece in enumerate(pieces):
        candidate = f"{out} {piece}".strip()
        if len(candidate) > max_chars:
            if not out:  # the lead alone is too long: cut it at a word boundary
                out = candidate[:max_chars].rsplit(" ", 1)[0].rstrip(" ,;:") + "."
            if i < len(pieces):
                out += " " + prompts.text(language, "spoken_more")
            break
        out = candidate
    return out


def from_payload(payload: Mapping, max_chars: int = 600) -> str:
    """The spoken form of a chat reply (`/api/chat`'s object, or ConversationService.reply's)."""
    language = payload.get("language") or "it"
    structured = payload.get("structured") or {}
    titles = {int(s["n"]): s["title"] for s in payload.get("sources") or [] if "n" in s and s.get("title")}
    bullets = [SpokenBullet(b.get("text", ""), b.get("source")) for b in structured.get("bullets") or []]
    lead = structured.get("lead") or ""
    if not lead and not bullets:  # abstentions, greetings, LLM prose: the text itself
        return from_text(payload.get("answer", ""), payload.get("sources") or [], language, max_chars)
    return render(lead, bullets, titles, language, max_chars)


def from_text(text: str, sources: list[dict], language: str, max_chars: int = 600) -> str:
    """The spoken form of a stored answer (its text as rendered: lead, '- bullet [n]' lines, 'Fonti:' list)."""
    headings = {prompts.text(lang, "sources_heading") + ":" for lang in prompts.LANGUAGES}
    lead: list[str] = []
    bullets: list[SpokenBullet] = []
    for line in text.splitlines():
        line = line.strip()
        if line in headings:
            break
        if not line:
            continue
        if line.startswith("- "):
            markers = re.findall(r"\[(\d+)\]", line)
            bullets.append(SpokenBullet(line[2:], int(markers[-1]) if markers else None))
        elif not bullets:
            lead.append(line)
        else:
            bullets.append(SpokenBullet(line, None))
    titles = {int(s["n"]): s["title"] for s in sources if isinstance(s, dict) and "n" in s and s.get("title")}
    return render(" ".join(lead), bullets, titles, language, max_chars)
