"""`sibyl translate`: draft the English text of corpus lines that have none (new or changed originals)
with the configured language model, check each draft against its original, store it as pending.

Nothing drafted here reaches a citizen: answers use approved lines only, and an operator approves
(or edits, or rejects) each draft in the console (/operatore/traduzioni). A draft that fails a check
(a number, name or code changed, Italian left) is stored all the same, with the problem in its note,
so the reviewer sees it next to the original; an empty reply or a model error is skipped.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from langchain_core.language_models import BaseChatModel
from langchain_core.prompts import ChatPromptTemplate

from retrieval.corpus import load_corpus
from retrieval.language import detect_language
from retrieval.llm import build_chat_model, templates
from retrieval.translations import (
    Entry,
    Needed,
    Problem,
    Translations,
    TranslationStore,
    draft_problems,
    names_in,
)
from sibyl.settings import Settings

log = logging.getLogger(__name__)

TARGET = "en"
MAX_CONSECUTIVE_ERRORS = 3  # a model that fails three lines in a row is down, not unlucky


class TranslateError(RuntimeError):
    """The command cannot run (no model configured, unknown document, model unreachable); `code` is the exit status."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Drafted:
    need: Needed
    en: str
    problems: list[Problem]


@dataclass
class TranslateReport:
    drafted: list[Drafted] = field(default_factory=list)
    skipped: list[tuple[Needed, str]] = field(default_factory=list)
    awaiting_review: int = 0  # drafts already written, not drafted again
    stale: int = 0
    left: int = 0  # still to draft after --limit

    @property
    def failed_checks(self) -> list[Drafted]:
        return [d for d in self.drafted if d.problems]

    def summary(self) -> str:
        return (f"drafted {len(self.drafted)} (failed checks {len(self.failed_checks)}, stored as pending with the "
                f"problem noted); skipped {len(self.skipped)}; already awaiting review {self.awaiting_review}; "
                f"stale {self.stale}; left for a later run {self.left}")


_LINE_TAG = re.compile(r"<\s*/?\s*line\b", re.IGNORECASE)
_PREFIX = re.compile(r"^(english translation|translation|traduzione inglese|traduzione)\s*:\s*", re.IGNORECASE)


def clean_reply(text: str) -> str:
    """The translation out of a model reply: no reasoning block, label, wrapping quotes or extra lines."""
    text = re.sub(r"<think>.*?</think>", "", text, flags=re.DOTALL)
    lines = [line.strip() for line in text.splitlines() if line.strip() and not _LINE_TAG.match(line.strip())]
    if not lines:
        return ""
    line = _PREFIX.sub("", lines[0]).strip()
    if len(line) >= 2 and line[0] + line[-1] in ('""', "''", "“”", "«»"):
        line = line[1:-1].strip()
    return " ".join(line.split())


def messages(need: Needed, title: str, keep: list[str]):
    t = templates(TARGET)
    names = ", ".join(names_in(need.it, keep)) or t["translate_no_names"]
    prompt = ChatPromptTemplate.from_messages([("system", t["translate_system"]), ("human", t["translate_line"])])
    text = _LINE_TAG.sub(lambda m: m.group(0).replace("<", "‹"), need.it)  # the line cannot close its block
    return prompt.format_messages(names=names, title=title, text=text)


def todo(translations: Translations, records: list, document: str | None = None) -> tuple[list[Needed], int, int]:
    """(lines to draft, drafts already awaiting review, stale entries) for the records, one document or all."""
    coverage = translations.coverage(records)
    lines, waiting = [], 0
    for need in coverage.missing:
        if document is not None and need.document != document:
            continue
        entry = translations.entries.get(need.source_hash)
        if entry is not None and entry.status == "pending" and entry.en.strip():
            waiting += 1
            continue
        lines.append(need)
    stale = [e for e in coverage.stale if document is None or e.file == f"{document}.toml"]
    return lines, waiting, len(stale)


def draft(model: BaseChatModel, store: TranslationStore, records: list, document: str | None = None,
          limit: int | None = None, progress: Callable[[int, int], None] | None = None) -> TranslateReport:
    translations = store.current()
    lines, waiting, stale = todo(translations, records, document)
    report = TranslateReport(awaiting_review=waiting, stale=stale)
    if limit is not None:
        report.left = max(0, len(lines) - limit)
        lines = lines[:limit]
    titles: dict[str, str] = {}
    for record in records:
        titles.setdefault(record["document"] if isinstance(record, dict) else record.document,
                          record["title"] if isinstance(record, dict) else record.title)
    errors = 0
    for i, need in enumerate(lines):
        try:
            reply = model.invoke(messages(need, titles.get(need.document, need.document), translations.keep))
        except Exception as exc:  # timeout, connection refused, HTTP error: the line waits for a later run
            errors += 1
            log.warning("model failed on %s: %s: %s", need.passage, type(exc).__name__, exc)
            report.skipped.append((need, f"model error: {type(exc).__name__}: {exc}"[:300]))
            if errors >= min(MAX_CONSECUTIVE_ERRORS, len(lines)):  # down, or every line failed
                report.left += len(lines) - i - 1
                raise TranslateError(f"the language model failed {errors} lines in a row (last: "
                                     f"{type(exc).__name__}: {exc}); {len(report.drafted)} drafts stored. "
                                     f"{report.summary()}") from None
            continue
        errors = 0
        en = clean_reply(str(reply.text))
        if not en:
            report.skipped.append((need, "empty reply"))
            continue
        problems = draft_problems(need.it, en, translations.keep)
        note = "; ".join(f"check: {p.message}" for p in problems)
        store.put([Entry(need.passage, need.source_hash, need.it, en, "pending", f"{need.document}.toml", note)])
        report.drafted.append(Drafted(need, en, problems))
        if progress is not None:
            progress(i + 1, len(lines))
    return report


def run_translate(settings: Settings, document: str | None = None, limit: int | None = None,
                  model: BaseChatModel | None = None, out=print) -> TranslateReport:
    """The command: the current corpus (as ingest reads it), the layered translations, the configured model."""
    if model is None:
        model = build_chat_model(settings)
    if model is None:
        raise TranslateError("no language model configured: set SIBYL_LLM=openai:<model> (with SIBYL_LLM_BASE_URL) "
                             "or ollama:<model> to draft translations", 2)
    if not settings.corpus_dir.is_dir():
        raise TranslateError(f"corpus directory not found: {settings.corpus_dir}")
    fallback = settings.default_language
    records = load_corpus(settings.corpus_dir, lambda text: detect_language(text, fallback)).chunks
    if document is not None and document not in {c.document for c in records}:
        known = ", ".join(sorted({c.document for c in records}))
        raise TranslateError(f"unknown document {document!r} (known: {known})", 2)
    store = TranslationStore.under(settings.corpus_dir, settings.data_dir, TARGET)
    from retrieval.progress import BarProgress, for_stream

    progress = for_stream(sys.stderr)
    try:
        report = draft(model, store, records, document, limit, progress)
    finally:
        if isinstance(progress, BarProgress):
            progress.close()
    for d in report.failed_checks:
        out(f"check failed\t{d.need.passage}\t{'; '.join(p.message for p in d.problems)}\t{d.en}")
    for need, reason in report.skipped:
        out(f"skipped\t{need.passage}\t{reason}")
    out(report.summary())
    out(f"drafts in {store.writable}: review them in the console (/operatore/traduzioni)")
    return report
