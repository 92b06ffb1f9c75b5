"""User-facing texts and prompts, one file per language, loaded once."""

from __future__ import annotations

import re
import tomllib
from functools import lru_cache
from pathlib import Path

HERE = Path(__file__).parent
LANGUAGES = ("it", "en")


@lru_cache(maxsize=4)
def messages(language: str) -> dict:
    lang = language if language in LANGUAGES else "it"
    with (HERE / f"messages.{lang}.toml").open("rb") as fh:
        return tomllib.load(fh)


def text(language: str, key: str, **values) -> str:
    template = messages(language)[key]
    return template.format(**values) if values else template


@lru_cache(maxsize=1)
def intents() -> dict[str, list[re.Pattern]]:
    with (HERE / "intents.toml").open("rb") as fh:
        data = tomllib.load(fh)
    return {name: [re.compile(p, re.IGNORECASE) for p in patterns] for name, patterns in data.items()}
