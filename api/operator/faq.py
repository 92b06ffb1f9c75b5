"""Console pages for verified answers (FAQ) and blocked passages, under /operatore/faq (HTTP glue only:
the logic is sibyl/backoffice/faq.py). A verified answer can start from scratch, from a group of
unanswered questions (`?from=senza-risposta:<message id>`), from a 👎 (`?from=feedback:<id>`) or from a
case (`?from=caso:<id>`)."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse

from api.operator.deps import PREFIX, ConsoleDep, CsrfOperatorDep, OperatorDep, client_ip, language, render
from api.operator.present import t
from sibyl.backoffice import reports
from sibyl.backoffice.faq import STATUSES, FaqError, FaqForm, VerifiedAnswer, VerifiedAnswers

log = logging.getLogger(__name__)

router = APIRouter(prefix=f"{PREFIX}/faq", tags=["operator"], include_in_schema=False)

# Form fields are bounded before parsing: FaqForm gives the precise message, this only stops huge bodies.
Text = Annotated[str, Form(max_length=20_000)]
Line = Annotated[str, Form(max_length=2_000)]


def _faq(console) -> VerifiedAnswers:
    faq = console.services.faq
    if faq is None:  # build_services always makes one; a hand-built Services might not
        raise RuntimeError("services built without verified answers")
    return faq


def _known(console):
    records = console.services.pipeline.index.records
    return lambda pid: pid in records


def _form_values(entry: VerifiedAnswer | None = None, **overrides: Any) -> dict[str, str]:
    values = {"question": "", "variants": "", "answer_it": "", "answer_en": "", "sources": "", "expires_on": "",
              "origin": ""}
    if entry is not None:
        values.update(question=entry.question, variants="\n".join(entry.variants or []), answer_it=entry.answer_it,
                      answer_en=entry.answer_en or "", sources="\n".join(entry.sources or []),
                      expires_on=entry.expires_on.isoformat() if entry.expires_on else "", origin=entry.origin or "")
    values.update({k: v for k, v in overrides.items() if v is not None})
    return values


def _page(request: Request, console, entry: VerifiedAnswer | None, form: dict[str, str], status: int = 200,
          message: str | None = None, error: str | None = None):
    return render(request, "faq_form.html", {"entry": entry, "form": form, "message": message, "error": error,
                                             "status": entry.effective_status() if entry else None}, status)


def _error(lang: str, exc: FaqError) -> str:
    return t(lang, exc.key, reason=str(exc))


# --- list ------------------------------------------------------------------------------------------
@router.get("")
def faq_list(request: Request, console: ConsoleDep, operator: OperatorDep, stato: str = "", done: str = ""):
    faq = _faq(console)
    status = stato if stato in STATUSES else None
    entries = faq.entries(status)
    console.operators.audit(operator.username, "view", {"page": "faq", "status": status}, client_ip(request))
    message = {"blocked": "block_done", "unblocked": "unblock_done"}.get(done)
    return render(request, "faq.html", {"entries": entries, "stato": status or "", "statuses": STATUSES,
                                        "blocked": faq.blocked(), "message": t(language(request), message)
                                        if message else None, "error": None})


# --- create ------------------------------------------------------------------------------------------
def _prefill(console, origin: str) -> dict[str, str] | None:
    """The form filled from what the answer starts from; None when that no longer exists."""
    kind, _, key = origin.partition(":")
    store = console.services.store
    if kind == "senza-risposta":
        groups = reports.unanswered_groups(store, console.operators.handled_ids())
        group = next((g for g in groups if key in g.message_ids), None)
        if group is None:
            return None
        variants = [w for w in group.wordings if w != group.text]
        return _form_values(question=group.text, variants="\n".join(variants), origin=origin)
    if kind == "feedback" and key.isdigit():
        item = next((f for f in reports.feedback_items(store, rating=None, include_reviewed=True)
                     if f.id == int(key)), None)
        if item is None:
            return None
        sources = [str(s.get("id")) for s in item.sources if isinstance(s, dict) and s.get("id")]
        return _form_values(question=item.question, answer_it=_without_sources(item.answer),
                            sources="\n".join(sources), origin=origin)
    if kind == "caso" and key.isdigit() and int(key) <= 2**31 - 1:
        cases = getattr(console.services, "cases", None)
        view = cases.get(int(key)) if cases is not None else None
        if view is None:
            return None
        # The reply the office sent (or is drafting) is usually the answer worth verifying.
        sent = view.replies[-1].body if view.replies else ""
        return _form_values(question=view.case.question, answer_it=sent or view.case.draft or "", origin=origin)
    return None


def _without_sources(text: str) -> str:
    """A stored answer without its trailing source list (the sources are listed as ids in their own field)."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if line.rstrip(":") in ("Fonti", "Sources"):
            return "\n".join(lines[:i]).strip()
    return text.strip()


@router.get("/nuova")
def faq_new(request: Request, console: ConsoleDep, operator: OperatorDep, q: str = ""):
    origin = request.query_params.get("from", "")[:200]
    form = _form_values(question=q[:500]) if not origin else _prefill(console, origin)
    error = None
    if form is None:
        form, error = _form_values(origin=origin), t(language(request), "faq_from_not_found")
    console.operators.audit(operator.username, "view", {"page": "faq_new", "origin": origin or None},
                            client_ip(request))
    return _page(request, console, None, form, 200, error=error)


@router.post("/nuova")
def faq_create(request: Request, console: ConsoleDep, operator: CsrfOperatorDep, question: Line = "",
               variants: Text = "", answer_it: Text = "", answer_en: Text = "", sources: Line = "",
               expires_on: Line = "", origin: Line = ""):
    lang = language(request)
    values = _form_values(question=question, variants=variants, answer_it=answer_it, answer_en=answer_en,
                          sources=sources, expires_on=expires_on, origin=origin)
    try:
        form = FaqForm.parse(question, variants, answer_it, answer_en, sources, expires_on, origin, _known(console))
    except FaqError as exc:
        return _page(request, console, None, values, exc.code, error=_error(lang, exc))
    entry = _faq(console).create(form, operator.username, client_ip(request))
    return RedirectResponse(f"{PREFIX}/faq/{entry.id}?fatto=salvata", status_code=303)


# --- blocked passages (before /{faq_id}: fixed paths first) -------------------------------------------
@router.post("/passaggi/blocca")
def block_passage(request: Request, console: ConsoleDep, operator: CsrfOperatorDep, passage_id: Line = "",
                  reason: Line = ""):
    faq = _faq(console)
    try:
        faq.block(passage_id, reason, operator.username, client_ip(request), _known(console))
    except FaqError as exc:
        return _list_error(request, faq, exc)
    return RedirectResponse(f"{PREFIX}/faq?done=blocked", status_code=303)


@router.post("/passaggi/sblocca")
def unblock_passage(request: Request, console: ConsoleDep, operator: CsrfOperatorDep, passage_id: Line = ""):
    faq = _faq(console)
    try:
        faq.unblock(passage_id, operator.username, client_ip(request))
    except FaqError as exc:
        return _list_error(request, faq, exc)
    return RedirectResponse(f"{PREFIX}/faq?done=unblocked", status_code=303)


def _list_error(request: Request, faq: VerifiedAnswers, exc: FaqError):
    return render(request, "faq.html", {"entries": faq.entries(), "stato": "", "statuses": STATUSES,
                                        "blocked": faq.blocked(), "message": None,
                                        "error": _error(language(request), exc)}, exc.code)


# --- one verified answer -----------------------------------------------------------------------------
@router.get("/{faq_id}")
def faq_edit(request: Request, faq_id: int, console: ConsoleDep, operator: OperatorDep, fatto: str = ""):
    lang = language(request)
    entry = _faq(console).get(faq_id) if 1 <= faq_id <= 2**31 - 1 else None
    if entry is None:
        return _page(request, console, None, _form_values(), 404, error=t(lang, "faq_not_found"))
    console.operators.audit(operator.username, "view", {"page": "faq", "faq": faq_id}, client_ip(request))
    message = {"salvata": "faq_saved", "approvata": "faq_approved", "stato": "faq_status_changed"}.get(fatto)
    return _page(request, console, entry, _form_values(entry), message=t(lang, message) if message else None)


@router.post("/{faq_id}")
def faq_update(request: Request, faq_id: int, console: ConsoleDep, operator: CsrfOperatorDep, question: Line = "",
               variants: Text = "", answer_it: Text = "", answer_en: Text = "", sources: Line = "",
               expires_on: Line = ""):
    lang = language(request)
    faq = _faq(console)
    values = _form_values(question=question, variants=variants, answer_it=answer_it, answer_en=answer_en,
                          sources=sources, expires_on=expires_on)
    entry = faq.get(faq_id) if 1 <= faq_id <= 2**31 - 1 else None
    try:
        if entry is None:
            raise FaqError("faq_not_found", "no such verified answer", 404)
        form = FaqForm.parse(question, variants, answer_it, answer_en, sources, expires_on, "", _known(console))
        faq.update(faq_id, form, operator.username, client_ip(request))
    except FaqError as exc:
        return _page(request, console, entry, values, exc.code, error=_error(lang, exc))
    return RedirectResponse(f"{PREFIX}/faq/{faq_id}?fatto=salvata", status_code=303)


def _change(request: Request, console, operator, faq_id: int, action: str):
    faq = _faq(console)
    try:
        if action == "approve":
            faq.approve(faq_id, operator.username, client_ip(request))
        else:
            faq.set_status(faq_id, action, operator.username, client_ip(request))
    except FaqError as exc:
        entry = faq.get(faq_id) if 1 <= faq_id <= 2**31 - 1 else None
        return _page(request, console, entry, _form_values(entry), exc.code, error=_error(language(request), exc))
    done = "approvata" if action == "approve" else "stato"
    return RedirectResponse(f"{PREFIX}/faq/{faq_id}?fatto={done}", status_code=303)


# Sync endpoints: FastAPI runs them in its thread pool, so the database work stays off the event loop.
@router.post("/{faq_id}/approva")
def faq_approve(request: Request, faq_id: int, console: ConsoleDep, operator: CsrfOperatorDep):
    return _change(request, console, operator, faq_id, "approve")


@router.post("/{faq_id}/scadi")
def faq_expire(request: Request, faq_id: int, console: ConsoleDep, operator: CsrfOperatorDep):
    return _change(request, console, operator, faq_id, "scaduta")


@router.post("/{faq_id}/ritira")
def faq_withdraw(request: Request, faq_id: int, console: ConsoleDep, operator: CsrfOperatorDep):
    return _change(request, console, operator, faq_id, "ritirata")
