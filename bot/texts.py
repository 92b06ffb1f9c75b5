"""The bot's user-facing texts: prompts/telegram.{it,en}.toml, next to the answer texts in prompts/."""

from __future__ import annotations

import tomllib
from functools import lru_cache

import prompts

LANGUAGES = prompts.LANGUAGES


def pick_language(code: str | None) -> str:
    """Telegram's language_code ('it', 'en-GB'…) to an answer language; anything else is Italian."""
    base = (code or "").split("-")[0].lower()
    return base if base in LANGUAGES else "it"


@lru_cache(maxsize=4)
def _messages(language: str) -> dict:
    lang = language if language in LANGUAGES else "it"
    with (prompts.HERE / f"telegram.{lang}.toml").open("rb") as fh:
        return tomllib.load(fh)


def text(language: str, key: str, **values) -> str:
    template = _messages(language)[key]
    return template.format(**values) if values else template


def prompt_heading(language: str) -> str:
    """The 'Fonti:' line the answer composer writes above the source list."""
    return prompts.text(language, "sources_heading") + ":"
