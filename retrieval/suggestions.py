"""Related questions the corpus can answer, built from the metadata of the passages just cited."""

from __future__ import annotations

import prompts
from retrieval.answer import Answer

MAX_SUGGESTIONS = 3


def _activity(text: str) -> str | None:
    for line in text.split("\n"):
        if line.startswith("- "):
            title = line[2:].split(" (attività")[0].strip()
            if 10 <= len(title) <= 90:
                return title
    return None


def suggest(answer: Answer, records: dict[str, dict]) -> list[str]:
    if not answer.answered:
        return []
    lang = answer.language
    out: list[str] = []
    for source in answer.sources:
        rec = records.get(source.id)
        if rec is None:
            continue
        meta = rec["metadata"]
        kind = meta.get("doc_kind")
        if kind == "dup" and meta.get("area_name"):
            candidates = [prompts.text(lang, "suggest_dup_area", area=meta["area_name"])]
            activity = _activity(rec["text"])
            if activity:
                candidates.append(prompts.text(lang, "suggest_activity", activity=activity))
        elif kind == "performance_report" and meta.get("area_name"):
            candidates = [prompts.text(lang, "suggest_report_area", area=meta["area_name"])]
        else:
            candidates = [prompts.text(lang, "suggest_document", title=rec["title"])]
        for c in candidates:
            if c not in out and c.strip().lower() != answer.question.strip().lower():
                out.append(c)
    # Spread over sources first: one per source, then the extras.
    return out[:MAX_SUGGESTIONS]
