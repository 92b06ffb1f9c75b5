"""User-facing texts and prompts, one file per language, loaded once."""

from __future__ import annotations

import re
import tomllib
from functools import lru_cache
from pathlib import Path

HERE = Path(__file__).parent
LANGUAGES = ("it", "en")


@lru_cache(maxsize=32)
def catalog(name: str, language: str) -> dict:
    """One texts file (`<name>.<lang>.toml`: messages, ui, telegram, operator, llm); Italian when unknown."""
    lang = language if language in LANGUAGES else "it"
    with (HERE / f"{name}.{lang}.toml").open("rb") as fh:
        return tomllib.load(fh)


def render(name: str, language: str, key: str, /, **values) -> str:
    template = catalog(name, language)[key]
    return template.format(**values) if values else template


def messages(language: str) -> dict:
    return catalog("messages", language)


def text(language: str, key: str, /, **values) -> str:
    return render("messages", language, key, **values)


@lru_cache(maxsize=1)
def intents() -> dict[str, list[re.Pattern]]:
    with (HERE / "intents.toml").open("rb") as fh:
        data = tomllib.load(fh)
    return {name: [re.compile(p, re.IGNORECASE) for p in patterns] for name, patterns in data.items()}
