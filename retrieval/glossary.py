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
# The dense side reads the first Italian and English terms of the entry a question names last.
ITALIAN_TERMS, ENGLISH_TERMS = 3, 2


@dataclass(frozen=True)
class Expansion:
    matched: tuple[str, ...]
    italian: tuple[str, ...]
    english: tuple[str, ...]
    # The texts whose vectors nudge the question's on the dense side (see entry_dense_terms).
    dense: tuple[str, ...] = ()
    # Each named entry's terms (Italian and English), entry by entry.
    entries: tuple[tuple[str, ...], ...] = ()

    @property
    def terms(self) -> tuple[str, ...]:
        return self.italian + self.english


def entry_dense_terms(italian: list[str], english: list[str]) -> tuple[str, ...]:
    """One entry's first Italian terms and first English ones, as two texts (the collection holds both
    languages). Only one entry per question is used (the one named last), so every text is known in advance
    and its vector computed at ingest: on the dev sets, blending several entries did not rank better."""
    groups = (italian[:ITALIAN_TERMS], english[:ENGLISH_TERMS]) if italian else ()
    return tuple("; ".join(group) for group in groups if group)


def glossary_dense_terms(path: Path = GLOSSARY_PATH) -> list[str]:
    """Every entry's dense texts (precomputed at ingest)."""
    out: dict[str, None] = {}
    for it, en, _, _ in load_glossary(path):
        out.update(dict.fromkeys(entry_dense_terms(it, en)))
    return list(out)


def _term_regex(term: str, italian: bool) -> str:
    """Citizens inflect and glue words: an Italian word of 5+ letters matches with any final vowel
    ("anziana" for "anziani", "pista" for "piste") and a term's words may be written together
    ("pisteciclabili")."""
    parts = []
    for word in fold(term).split():
        if italian and len(word) >= 5 and word[-1] in "aeio" and word.isalpha():
            parts.append(re.escape(word[:-1]) + "[aeio]")
        else:
            parts.append(re.escape(word))
    return r"\s*".join(parts)


def _words_pattern(terms: list[str], italian: int = 0) -> re.Pattern:
    """One pattern for `terms`; the first `italian` of them are Italian (see _term_regex)."""
    alternatives = (_term_regex(t, i < italian) for i, t in enumerate(terms))
    return re.compile(r"(?<!\w)(?:" + "|".join(alternatives) + r")(?!\w)")


@lru_cache(maxsize=4)
def load_glossary(path: Path = GLOSSARY_PATH) -> list[tuple[list[str], list[str], re.Pattern, list[re.Pattern]]]:
    """Per entry: its terms, one pattern matching any of them (the fast test), one pattern per term."""
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    entries = []
    for entry in data.get("entry", []):
        it, en = list(entry.get("it", [])), list(entry.get("en", []))
        entries.append((it, en, _words_pattern(it + en, len(it)),
                        [_words_pattern([t], 1 if i < len(it) else 0) for i, t in enumerate(it + en)]))
    return entries


def expand(question: str, path: Path = GLOSSARY_PATH) -> Expansion:
    """Glossary entries the question names; every pattern scans it, so only its head is read."""
    folded = fold_head(question, QUERY_CHARS)
    matched: list[str] = []
    italian: list[str] = []
    english: list[str] = []
    dense: tuple[str, ...] = ()
    dense_at = -1
    entries: list[tuple[str, ...]] = []
    for it, en, any_term, patterns in load_glossary(path):
        if not any_term.search(folded):
            continue
        # The dense side follows the entry named last: a follow-up's new focus comes after the topic it
        # carries over ("turismo … e il commercio?"), and a question's subject usually closes it.
        last = max(m.start() for m in any_term.finditer(folded))
        if last > dense_at:
            dense, dense_at = entry_dense_terms(it, en), last
        terms = it + en
        entries.append(tuple(terms))
        for term, pattern in zip(terms, patterns, strict=True):
            if found := pattern.search(folded):  # the question's own form too ("anziana", "pisteciclabili")
                matched += [term] if found.group(0) == fold(term) else [term, found.group(0)]
        italian += [t for t in it if t not in italian]
        english += [t for t in en if t not in english]
    return Expansion(tuple(dict.fromkeys(matched)), tuple(italian), tuple(english), dense, tuple(entries))
