"""Related questions the corpus can answer, built from the metadata of the passages just cited.

Each comes with a short label (at most LABEL_CHARS characters, for a phone's buttons); the full question is
what is asked when it is chosen. In an English answer an Italian area name is given in its reviewed English
(retrieval/translations.py, through `translate`) when there is one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import prompts

MAX_SUGGESTIONS = 3
LABEL_CHARS = 40  # Telegram shows about this much of a button on a phone
_GLOSSED = re.compile(r"^[^()]*\(([^()]+)\)\s*(.*)$")  # "LECCE SI MUOVE SMART (LECCE MOVES SMART) - MOBILITY"


class _Source(Protocol):
    id: str


class Answered(Protocol):
    """What suggestions read of an answer (an Answer, or one rebuilt from the store)."""

    question: str
    language: str
    answered: bool

    @property
    def sources(self) -> Iterable[_Source]: ...


@dataclass(frozen=True)
class Suggestion:
    question: str
    label: str


def _activity(text: str) -> str | None:
    for line in text.split("\n"):
        if line.startswith("- "):
            title = line[2:].split(" (attività")[0].strip()
            if 10 <= len(title) <= 90:
                return title
    return None


def short(text: str, limit: int = LABEL_CHARS) -> str:
    """At most `limit` characters, cut between words with an ellipsis."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0] if " " in text[: limit - 1] else text[: limit - 1]
    return cut.rstrip(" ,;:–-") + "…"


def _english(name: str, translate: Callable[[str], str | None] | None) -> tuple[str, str]:
    """(name for the question, name for the label) in English: the reviewed translation when there is one; a
    glossed brand name ("LECCE SI MUOVE SMART (LECCE MOVES SMART) - MOBILITY") keeps only its English."""
    english = translate(name) if translate else None
    if not english:
        return name, name
    glossed = _GLOSSED.match(english)
    label = " ".join(p for p in (glossed.group(1), glossed.group(2)) if p) if glossed else english
    if label.isupper():
        label = label.capitalize()
    return english, label


def suggestions(answer: Answered, records: dict[str, dict],
                translate: Callable[[str], str | None] | None = None) -> list[Suggestion]:
    if not answer.answered:
        return []
    lang = answer.language
    out: list[Suggestion] = []

    def name(value: str) -> tuple[str, str]:
        if lang == "en":
            return _english(value, translate)
        return value, value.capitalize() if value.isupper() else value

    for source in answer.sources:
        rec = records.get(source.id)
        if rec is None:
            continue
        meta = rec["metadata"]
        kind = meta.get("doc_kind")
        candidates: list[tuple[str, str]] = []
        if kind == "dup" and meta.get("area_name"):
            full, label = name(meta["area_name"])
            candidates.append((prompts.text(lang, "suggest_dup_area", area=full),
                               prompts.text(lang, "label_dup_area", area=label)))
            activity = _activity(rec["text"])
            if activity:
                full, label = name(activity)
                candidates.append((prompts.text(lang, "suggest_activity", activity=full), label))
        elif kind == "performance_report" and meta.get("area_name"):
            full, label = name(meta["area_name"])
            candidates.append((prompts.text(lang, "suggest_report_area", area=full),
                               prompts.text(lang, "label_report_area", area=label)))
        else:
            title = rec.get("en", {}).get("title") if lang == "en" and rec.get("en") else None
            title = title or rec["title"]
            candidates.append((prompts.text(lang, "suggest_document", title=title), title))
        for question, label in candidates:
            if all(s.question != question for s in out) and question.strip().lower() != answer.question.strip().lower():
                out.append(Suggestion(question, short(label)))
    # Spread over sources first: one per source, then the extras.
    return out[:MAX_SUGGESTIONS]


def suggest(answer: Answered, records: dict[str, dict],
            translate: Callable[[str], str | None] | None = None) -> list[str]:
    """The suggested questions in full (what the web chat shows and any channel asks)."""
    return [s.question for s in suggestions(answer, records, translate)]
