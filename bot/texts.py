"""The bot's user-facing texts: prompts/telegram.{it,en}.toml, next to the answer texts in prompts/."""

from __future__ import annotations

import prompts

LANGUAGES = prompts.LANGUAGES


def pick_language(code: str | None) -> str:
    """Telegram's language_code ('it', 'en-GB'…) to an answer language; anything else is Italian."""
    base = (code or "").split("-")[0].lower()
    return base if base in LANGUAGES else "it"


def text(language: str, key: str, /, **values: object) -> str:
    return prompts.render("telegram", language, key, **values)


def prompt_heading(language: str) -> str:
    """The 'Fonti:' line the answer composer writes above the source list."""
    return prompts.text(language, "sources_heading") + ":"
