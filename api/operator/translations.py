"""Console page /operatore/traduzioni: review English drafts side by side with the Italian originals.

Lists, per document, the drafts awaiting review (from `sibyl translate` or saved here), the lines
with no draft yet (a freshly uploaded document) and translations whose original changed (stale).
Approving runs the same checks as the drafting command and is refused while a number, a kept name
or a code differs from the original; approving, saving an edit and rejecting are audited. Writes go
to <data_dir>/translations/en, and the service's TranslationStore sees them at once (no restart).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Annotated
from urllib.parse import urlencode

from fastapi import Form, Request
from fastapi.responses import RedirectResponse

from api.operator.deps import (
    PREFIX,
    ConsoleDep,
    CsrfOperatorDep,
    OperatorDep,
    client_ip,
    language,
    render,
    templates,
)
from api.operator.present import t
from retrieval.text import strip_control
from retrieval.translations import (
    Entry,
    Problem,
    TranslationStore,
    draft_problems,
    normalise,
)

log = logging.getLogger(__name__)


MAX_LINES = 200  # lines shown at once; the document filter shows the rest
MAX_TEXT = 5000  # characters of English for one line (the longest shipped one is under 1,000)


def store_of(request: Request) -> TranslationStore:
    """The process's translation store (sibyl.services): layered shipped + data-directory translations."""
    return request.app.state.services.translations


def pending_count(request: Request) -> int | None:
    """Drafts awaiting review, for the menu entry on every console page (None if unreadable)."""
    try:
        return sum(1 for e in store_of(request).current().entries.values() if e.status == "pending" and e.en.strip())
    except Exception:  # a broken translation file must not take the whole console down
        log.exception("cannot read the translations for the menu count")
        return None


templates.env.globals["translations_pending"] = pending_count


@dataclass
class Line:
    source_hash: str
    passage: str
    document: str
    it: str
    en: str = ""
    kind: str = "missing"  # pending | missing | stale
    note: str = ""
    writable: bool = False
    problems: list[Problem] = field(default_factory=list)


@dataclass
class DocumentLines:
    id: str
    title: str
    lines: list[Line] = field(default_factory=list)
    visible: list[Line] = field(default_factory=list)

    def count(self, kind: str) -> int:
        return sum(1 for line in self.lines if line.kind == kind)


def review(store: TranslationStore, records: dict[str, dict]) -> list[DocumentLines]:
    """Every line needing attention, grouped by document in corpus order: drafts, no draft, stale."""
    tr = store.current()
    coverage = tr.coverage(records.values())
    docs: dict[str, DocumentLines] = {}

    def doc(doc_id: str) -> DocumentLines:
        if doc_id not in docs:
            title = next((r["title"] for r in records.values() if r["document"] == doc_id), doc_id)
            docs[doc_id] = DocumentLines(doc_id, title)
        return docs[doc_id]

    for need in coverage.missing:
        entry = tr.entries.get(need.source_hash)
        line = Line(need.source_hash, need.passage, need.document, need.it,
                    writable=store.own(need.source_hash) is not None)
        if entry is not None and entry.en.strip():
            line.kind, line.en, line.note = "pending", entry.en, entry.note
            line.problems = draft_problems(need.it, entry.en, tr.keep)
        doc(need.document).lines.append(line)
    for entry in coverage.stale:
        doc_id = records[entry.passage]["document"]
        doc(doc_id).lines.append(Line(entry.source_hash, entry.passage, doc_id, entry.it, entry.en, "stale",
                                      entry.note, store.own(entry.source_hash) is not None))
    order = {"pending": 0, "missing": 1, "stale": 2}
    for d in docs.values():
        d.lines.sort(key=lambda line: order[line.kind])
    return list(docs.values())


def _page(request: Request, console, documento: str = "", status: int = 200, message: str | None = None,
          error: str | None = None, failed: Line | None = None):
    store = store_of(request)
    docs = review(store, console.services.pipeline.index.records)
    shown = [d for d in docs if not documento or d.id == documento]
    budget, hidden = MAX_LINES, 0
    for d in shown:
        if failed is not None and d.id == failed.document:  # the operator's edit, with its problems
            d.lines = [failed if line.source_hash == failed.source_hash else line for line in d.lines]
        d.visible = d.lines[:budget]
        hidden += len(d.lines) - len(d.visible)
        budget -= len(d.visible)
    return render(request, "translations.html", {
        "docs": docs, "shown": shown, "documento": documento, "hidden": hidden, "message": message,
        "error": error, "max_text": MAX_TEXT,
        "problem": lambda p: t(language(request), f"tr_problem_{p.kind}", **p.values)}, status)


# Registered on the console's router in api/operator/routes.py: GET and POST /operatore/traduzioni.
def translations_page(request: Request, console: ConsoleDep, operator: OperatorDep, documento: str = "",
                      fatto: str = ""):
    console.operators.audit(operator.username, "view", {"page": "translations"}, client_ip(request))
    lang = language(request)
    message = t(lang, f"tr_done_{fatto}") if fatto in ("approved", "saved", "rejected") else None
    return _page(request, console, documento[:200], message=message)


def translation_action(request: Request, console: ConsoleDep, operator: CsrfOperatorDep,
                       source_hash: Annotated[str, Form(max_length=64)] = "",
                       action: Annotated[str, Form(max_length=20)] = "",
                       en: Annotated[str, Form(max_length=MAX_TEXT)] = "",
                       documento: Annotated[str, Form(max_length=200)] = ""):
    lang = language(request)
    store = store_of(request)
    records = console.services.pipeline.index.records
    if action not in ("approve", "save", "reject"):
        return _page(request, console, documento, 422, error=t(lang, "tr_bad_action"))
    tr = store.reload()  # decide on what is on disk now (another worker or the command may have written)
    need = next((n for n in tr.coverage(records.values()).needed if n.source_hash == source_hash), None)
    own = store.own(source_hash)

    def audit(what: str, **detail) -> None:
        console.operators.audit(operator.username, what, {"source_hash": source_hash, **detail}, client_ip(request))

    if action == "reject":
        if own is None:
            return _page(request, console, documento, 404, error=t(lang, "tr_not_found"))
        store.remove(source_hash)
        audit("translation_rejected", passage=own.passage, status=own.status, en=own.en[:500])
        return _redirect(documento, "rejected")
    if need is None:  # not a current line of the corpus (removed, changed, or never was)
        return _page(request, console, documento, 404, error=t(lang, "tr_not_found"))
    text = normalise(strip_control(en))
    before = tr.entries.get(source_hash)
    draft = before.en if before is not None else ""
    problems = draft_problems(need.it, text, tr.keep)
    detail = {"document": need.document, "passage": need.passage, "edited": text != draft, "draft": draft[:500],
              "en": text[:500]}
    if action == "approve" and any(p.blocking for p in problems):
        failed = Line(source_hash, need.passage, need.document, need.it, text, "pending", writable=own is not None,
                      problems=problems)
        audit("translation_approval_refused", problems=[p.message for p in problems], **detail)
        return _page(request, console, documento, 422, error=t(lang, "tr_refused"), failed=failed)
    if action == "save" and not text:
        return _page(request, console, documento, 422, error=t(lang, "tr_problem_empty"))
    status = "approved" if action == "approve" else "pending"
    note = "" if status == "approved" else "; ".join(f"check: {p.message}" for p in problems)
    store.put([Entry(need.passage, source_hash, need.it, text, status, f"{need.document}.toml", note)])
    audit("translation_approved" if status == "approved" else "translation_edited", **detail)
    return _redirect(documento, "approved" if status == "approved" else "saved")


def _redirect(documento: str, done: str) -> RedirectResponse:
    query = urlencode({"fatto": done, **({"documento": documento} if documento else {})})
    return RedirectResponse(f"{PREFIX}/traduzioni?{query}", status_code=303)
