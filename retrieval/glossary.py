"""Query expansion from the bilingual glossary data file (retrieval/glossary.toml)."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from retrieval.limits import QUERY_CHARS
from retrieval.text import fold, fold_head

GLOSSARY_PATH = Path(__file__).with_name("glossary.toml")


@dataclass(frozen=True)
class Expansion:
    matched: tuple[str, ...]
    italian: tuple[str, ...]
    english: tuple[str, ...]

    @property
    def terms(self) -> tuple[str, ...]:
        return self.italian + self.english


def _words_pattern(terms: list[str]) -> re.Pattern:
    return re.compile(r"(?<!\w)(?:" + "|".join(re.escape(fold(t)) for t in terms) + r")(?!\w)")


@lru_cache(maxsize=4)
def load_glossary(path: Path = GLOSSARY_PATH) -> list[tuple[list[str], list[str], re.Pattern, list[re.Pattern]]]:
    """Per entry: its terms, one pattern matching any of them (the fast test), one pattern per term."""
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    entries = []
    for entry in data.get("entry", []):
        it, en = list(entry.get("it", [])), list(entry.get("en", []))
        entries.append((it, en, _words_pattern(it + en), [_words_pattern([t]) for t in it + en]))
    return entries


def expand(question: str, path: Path = GLOSSARY_PATH) -> Expansion:
    """Glossary entries the question names; every pattern scans it, so only its head is read."""
    folded = fold_head(question, QUERY_CHARS)
    matched: list[str] = []
    italian: list[str] = []
    english: list[str] = []
    for it, en, any_term, patterns in load_glossary(path):
        if not any_term.search(folded):
            continue
        terms = it + en
        matched += [terms[i] for i, p in enumerate(patterns) if p.search(folded)]
        italian += [t for t in it if t not in italian]
        english += [t for t in en if t not in english]
    return Expansion(tuple(matched), tuple(italian), tuple(english))
