"""Follow-ups without an LLM: a short or anaphoric message inherits the previous turn's topic.

Rule: if the message matches a follow-up pattern (prompts/intents.toml: "e per…", "which of
these…") or has at most four words, the retrieval query becomes the previous topic's content
words plus the message. A year in such a follow-up becomes a year filter ("…planned for 2026?").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import prompts
from retrieval.evidence import GENERIC
from retrieval.lexical import ALL_STOPWORDS, words
from retrieval.question import is_fragment
from retrieval.retriever import Filters

MAX_TOPIC_WORDS = 8
_YEAR = re.compile(r"\b(20\d\d)\b")


@dataclass
class Resolved:
    query: str | None  # None: the message stands alone
    filters: Filters | None
    followup: bool


def topic_words(text: str) -> list[str]:
    out: list[str] = []
    for w in words(text):
        if w in ALL_STOPWORDS or w in GENERIC or w.isdigit() or len(w) < 3 or w in out:
            continue
        out.append(w)
    return out


def is_followup(message: str) -> bool:
    if any(p.search(message) for p in prompts.intents()["followup"]):
        return True
    return is_fragment(message)


def resolve(message: str, previous_queries: list[str]) -> Resolved:
    if not previous_queries or not is_followup(message):
        return Resolved(None, None, False)
    topic = topic_words(previous_queries[-1])[-MAX_TOPIC_WORDS:]
    fresh = set(topic_words(message))
    carried = [w for w in topic if w not in fresh]
    query = " ".join([*carried, message]) if carried else None
    year = _YEAR.search(message)
    filters = Filters(year=int(year.group(1))) if year else None
    return Resolved(query, filters, True)
