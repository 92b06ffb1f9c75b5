"""URP cases in the console (issue 15): the queue at /operatore/casi, a case's page (thread, handling, notes,
history, reply composer, sending), canned replies and the offices directory (admins only).

HTTP glue only: the domain is sibyl/backoffice/cases.py, offices.py, delivery.py and drafts.py. Endpoints are
plain `def` (FastAPI runs them in worker threads): database work, drafting and SMTP never block the loop.
"""

from __future__ import annotations

import functools
from datetime import date, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse

from api.operator.deps import (
    PREFIX,
    ConsoleDep,
    CsrfOperatorDep,
    OperatorDep,
    client_ip,
    get_console,
    language,
    render,
    templates,
)
from api.operator.present import t
from retrieval.pipeline import BadQuestion
from sibyl.backoffice.cases import OPEN, STATUSES, CaseError, conversation_of
from sibyl.backoffice.delivery import DeliveryError, send_email, send_telegram
from sibyl.backoffice.drafts import draft_reply
from sibyl.backoffice.offices import BadOffice, details
from sibyl.backoffice.search import BadFilter, ConsoleQuery, console_search, passage

router = APIRouter(prefix=PREFIX, tags=["operator"], include_in_schema=False)
ROME = ZoneInfo("Europe/Rome")
MAX_ID = 2**31 - 1
TEXT = 20_000  # form fields: the domain checks the real limits with a clear message


def rome(value: datetime | None) -> str:
    """A stored UTC time as the operator reads it (Europe/Rome)."""
    if value is None:
        return ""
    return value.replace(tzinfo=ZoneInfo("UTC")).astimezone(ROME).strftime("%d/%m/%Y %H:%M")


def open_cases(request: Request) -> int:
    """The menu's count of cases waiting (new + in progress)."""
    console = getattr(request.app.state, "operator_console", None)
    services = console.services if console is not None else None
    if services is None or services.cases is None:
        return 0
    counts = services.cases.counts()
    return counts["nuovo"] + counts["in_carico"]


templates.env.globals["open_cases"] = open_cases
templates.env.filters.setdefault("rome", rome)  # the console's own (api/operator/present.when) when it has one


class AdminOnly(Exception):
    """An operator without the admin role on an admin page: 403 with a clear page."""


def admin(request: Request, console: ConsoleDep, operator: OperatorDep):
    if console.operators.role(operator.username) != "admin":
        raise AdminOnly()
    return operator


def admin_csrf(request: Request, console: ConsoleDep, operator: CsrfOperatorDep):
    if console.operators.role(operator.username) != "admin":
        raise AdminOnly()
    return operator


AdminDep = Annotated[Any, Depends(admin)]
AdminCsrfDep = Annotated[Any, Depends(admin_csrf)]


async def admin_only(request: Request, exc: AdminOnly):
    return render(request, "error.html", {"error": t(language(request), "admin_only")}, 403)


def _error(request: Request, key: str, status: int):
    return render(request, "error.html", {"error": t(language(request), key)}, status)


def _cases(console):
    return console.services.cases


def _offices(console):
    return console.services.offices


# --- the queue ------------------------------------------------------------------------------------------
@router.get("/casi")
def cases_page(request: Request, console: ConsoleDep, operator: OperatorDep, stato: str = "aperti",
               assegnato: str = "", ufficio: str = "", q: str = ""):
    status = stato if stato in STATUSES else None
    office_id = int(ufficio) if ufficio.isdigit() and 0 < int(ufficio) <= MAX_ID else None
    rows = _cases(console).find(status=status, open_only=stato == "aperti", assignee=assegnato[:64] or None,
                                office_id=office_id, q=q[:200] or None)
    offices = {o.id: o.name(language(request)) for o in _offices(console).all()}
    console.operators.audit(operator.username, "view", {"page": "cases", "results": len(rows)}, client_ip(request))
    return render(request, "cases.html", {
        "active": "casi", "rows": rows, "counts": _cases(console).counts(), "statuses": STATUSES, "offices": offices,
        "operators": console.operators.usernames(), "today": date.today(),
        "form": {"stato": stato, "assegnato": assegnato, "ufficio": ufficio, "q": q}})


# --- one case ---------------------------------------------------------------------------------------------
def _case_page(request: Request, console, operator, case_id: int, status: int = 200, message: str | None = None,
               error: str | None = None, cerca: str = ""):
    view = _cases(console).get(case_id) if 0 < case_id <= MAX_ID else None
    if view is None:
        return _error(request, "case_not_found", 404)
    lang = language(request)
    hits, search_error = [], None
    if cerca.strip():
        try:
            hits = console_search(console.services.pipeline, ConsoleQuery.parse(cerca[:500])).hits[:8]
        except (BadFilter, BadQuestion) as exc:
            search_error = str(exc)
    offices = _offices(console).all()
    return render(request, "case.html", {
        "active": "casi", "view": view, "c": view.case, "statuses": STATUSES, "open": OPEN,
        "offices": [(o.id, o.name(lang)) for o in offices], "operators": console.operators.usernames(),
        "canned": _cases(console).canned(), "hits": hits, "cerca": cerca, "search_error": search_error,
        "message": message, "error": error, "office_names": {o.id: o.name(lang) for o in offices}}, status)


@router.get("/casi/{case_id}")
def case_page(request: Request, case_id: int, console: ConsoleDep, operator: OperatorDep, cerca: str = "",
              ok: str = ""):
    if 0 < case_id <= MAX_ID:
        console.operators.audit(operator.username, "view", {"page": "case", "case": case_id}, client_ip(request))
    message = t(language(request), ok) if ok in ("case_saved", "case_draft_saved", "case_sent_ok") else None
    return _case_page(request, console, operator, case_id, message=message, cerca=cerca)


def _done(case_id: int, key: str) -> RedirectResponse:
    return RedirectResponse(f"{PREFIX}/casi/{case_id}?ok={key}", status_code=303)


def _attempt(request: Request, console, operator, case_id: int, fn, ok: str):
    """Run a change; a CaseError becomes the case page with the message and its status."""
    try:
        fn()
    except CaseError as exc:
        if exc.key == "case_not_found":
            return _error(request, "case_not_found", 404)
        return _case_page(request, console, operator, case_id, exc.status, error=t(language(request), exc.key))
    return _done(case_id, ok)


@router.post("/casi/{case_id}/gestione")
def manage_case(request: Request, case_id: int, console: ConsoleDep, operator: CsrfOperatorDep,
                stato: Annotated[str, Form(max_length=32)] = "", assegnato: Annotated[str, Form(max_length=64)] = "",
                ufficio: Annotated[str, Form(max_length=12)] = "", scadenza: Annotated[str, Form(max_length=32)] = ""):
    lang = language(request)
    if not 0 < case_id <= MAX_ID:
        return _error(request, "case_not_found", 404)
    if stato and stato not in STATUSES:
        return _case_page(request, console, operator, case_id, 422, error=t(lang, "case_bad_status"))
    if assegnato and assegnato not in console.operators.usernames():
        return _case_page(request, console, operator, case_id, 422, error=t(lang, "case_bad_value"))
    office_id = int(ufficio) if ufficio.isdigit() and int(ufficio) <= MAX_ID else (0 if not ufficio else None)
    if office_id is None or (office_id and _offices(console).get(office_id) is None):
        return _case_page(request, console, operator, case_id, 422, error=t(lang, "case_bad_value"))
    due = None
    if scadenza.strip():
        try:
            due = date.fromisoformat(scadenza.strip())
        except ValueError:
            return _case_page(request, console, operator, case_id, 422, error=t(lang, "case_bad_date"))
    update = functools.partial(_cases(console).update, case_id, operator.username, client_ip(request),
                               status=stato or None, assignee=assegnato, office_id=office_id, due_date=due,
                               clear_due=not scadenza.strip())
    return _attempt(request, console, operator, case_id, update, "case_saved")


@router.post("/casi/{case_id}/note")
def add_note(request: Request, case_id: int, console: ConsoleDep, operator: CsrfOperatorDep,
             testo: Annotated[str, Form(max_length=TEXT)] = ""):
    if not 0 < case_id <= MAX_ID:
        return _error(request, "case_not_found", 404)
    note = functools.partial(_cases(console).add_note, case_id, operator.username, testo, client_ip(request))
    return _attempt(request, console, operator, case_id, note, "case_saved")


def _signature(request: Request, console, operator, case) -> str:
    lang = case.language
    office = _offices(console).get(case.office_id) if case.office_id else None
    office = office or next(iter(_offices(console).all()), None)
    return t(lang, "case_signature", name=operator.username, office=office.name(lang) if office else "URP")


@router.post("/casi/{case_id}/bozza")
def compose(request: Request, case_id: int, console: ConsoleDep, operator: CsrfOperatorDep,
            azione: Annotated[str, Form(max_length=16)] = "salva", oggetto: Annotated[str, Form(max_length=TEXT)] = "",
            testo: Annotated[str, Form(max_length=TEXT * 2)] = "", passaggio: Annotated[str, Form(max_length=300)] = "",
            pronta: Annotated[str, Form(max_length=12)] = ""):
    """salva: keep the edited text; genera: a draft from the documents in the citizen's language, signed;
    aggiungi: a search result's passage with its source; pronta: a canned reply — appended to the text."""
    lang = language(request)
    view = _cases(console).get(case_id) if 0 < case_id <= MAX_ID else None
    if view is None:
        return _error(request, "case_not_found", 404)
    case = view.case
    subject, body = oggetto, testo
    if azione == "genera":
        try:
            draft = draft_reply(console.services.pipeline, case.question, case.language)
        except BadQuestion as exc:
            return _case_page(request, console, operator, case_id, 422, error=str(exc))
        subject = f"[{case.number}] {draft.subject}"
        text, generic = draft.text.rstrip(), t(case.language, "draft_signature")
        text = text[: -len(generic)].rstrip() if text.endswith(generic) else text  # signed by the operator
        body = f"{text}\n{_signature(request, console, operator, case)}\n"
    elif azione == "aggiungi":
        record = passage(console.services.pipeline, passaggio)
        if record is None:
            return _case_page(request, console, operator, case_id, 404, error=t(lang, "passage_not_found"))
        text = record["text"].split("\n")
        quote = "\n".join(line for line in text if line.strip() not in (record["title"], record["section"])).strip()
        label = f"{record['title']} › {record['section']}"
        body = f"{body.rstrip()}\n\n«{quote}»\n({t(case.language, 'case_passage_source', label=label)})\n".lstrip()
    elif azione == "pronta":
        canned = {str(c.id): c for c in _cases(console).canned()}.get(pronta)
        if canned is None:
            return _case_page(request, console, operator, case_id, 404, error=t(lang, "case_bad_value"))
        body = f"{body.rstrip()}\n\n{canned.body}\n".lstrip()
    elif azione != "salva":
        return _case_page(request, console, operator, case_id, 422, error=t(lang, "case_bad_value"))
    save = functools.partial(_cases(console).save_draft, case_id, operator.username, subject, body,
                             client_ip(request))
    if azione == "genera":
        console.operators.audit(operator.username, "draft", {"case": case.number, "language": case.language},
                                client_ip(request))
    return _attempt(request, console, operator, case_id, save, "case_draft_saved")


@router.post("/casi/{case_id}/invia")
def send(request: Request, case_id: int, console: ConsoleDep, operator: CsrfOperatorDep,
         oggetto: Annotated[str, Form(max_length=TEXT)] = "", testo: Annotated[str, Form(max_length=TEXT * 2)] = ""):
    """Save the text, deliver it (e-mail or Telegram, whichever contact the case has), record what was sent."""
    lang = language(request)
    view = _cases(console).get(case_id) if 0 < case_id <= MAX_ID else None
    if view is None:
        return _error(request, "case_not_found", 404)
    case, ip = view.case, client_ip(request)
    if not testo.strip():
        return _case_page(request, console, operator, case_id, 422, error=t(lang, "case_send_empty"))
    try:
        _cases(console).save_draft(case_id, operator.username, oggetto, testo, ip)
    except CaseError as exc:
        return _case_page(request, console, operator, case_id, exc.status, error=t(lang, exc.key))
    settings = console.services.settings
    subject = " ".join(oggetto.split()) or case.number
    try:
        if case.email:
            send_email(settings, case.email, subject, testo)
            channel, recipient = "email", case.email
        elif case.telegram_chat:
            header = t(case.language, "case_telegram_header", number=case.number)
            send_telegram(settings, case.telegram_chat, f"{header}\n\n{testo}")
            channel, recipient = "telegram", case.telegram_chat
        else:
            return _case_page(request, console, operator, case_id, 409, error=t(lang, "case_no_contact"))
    except DeliveryError as exc:
        reason = t(lang, exc.key) if exc.key else str(exc)
        console.operators.audit(operator.username, "case_send_failed", {"case": case.number, "reason": reason}, ip)
        return _case_page(request, console, operator, case_id, 502 if exc.key is None else 409,
                          error=t(lang, "case_send_failed", reason=reason))
    _cases(console).record_sent(case_id, operator.username, channel, recipient, subject, testo, ip)
    return _done(case_id, "case_sent_ok")


# --- a conversation seen from the unanswered and feedback pages -------------------------------------------
@router.get("/conversazione")
def conversation_page(request: Request, console: ConsoleDep, operator: OperatorDep, messaggio: str = "",
                      feedback: str = ""):
    feedback_id = int(feedback) if feedback.isdigit() and 0 < int(feedback) <= MAX_ID else None
    messaggio = messaggio[:64].replace("\x00", "")  # ids are hex; PostgreSQL refuses NUL in a query
    thread = conversation_of(console.services.store, messaggio or None, feedback_id)
    if not thread:
        return _error(request, "conversation_not_found", 404)
    console.operators.audit(operator.username, "view", {"page": "conversation", "message": messaggio[:64] or None,
                                                        "feedback": feedback_id}, client_ip(request))
    return render(request, "conversation.html", {"thread": thread})


# --- canned replies ---------------------------------------------------------------------------------------
@router.get("/risposte-pronte")
def canned_page(request: Request, console: ConsoleDep, operator: OperatorDep):
    return render(request, "canned.html", {"active": "casi", "canned": _cases(console).canned(), "error": None})


@router.post("/risposte-pronte")
def add_canned(request: Request, console: ConsoleDep, operator: CsrfOperatorDep,
               titolo: Annotated[str, Form(max_length=TEXT)] = "", testo: Annotated[str, Form(max_length=TEXT)] = "",
               lingua: Annotated[str, Form(max_length=8)] = "it"):
    try:
        _cases(console).add_canned(titolo, testo, lingua, operator.username, client_ip(request))
    except CaseError as exc:
        return render(request, "canned.html", {"active": "casi", "canned": _cases(console).canned(),
                                               "error": t(language(request), exc.key)}, exc.status)
    return RedirectResponse(f"{PREFIX}/risposte-pronte", status_code=303)


@router.post("/risposte-pronte/{canned_id}/rimuovi")
def remove_canned(request: Request, canned_id: int, console: ConsoleDep, operator: CsrfOperatorDep):
    if not (0 < canned_id <= MAX_ID and _cases(console).delete_canned(canned_id, operator.username,
                                                                      client_ip(request))):
        return _error(request, "case_bad_value", 404)
    return RedirectResponse(f"{PREFIX}/risposte-pronte", status_code=303)


# --- offices directory (admins) ---------------------------------------------------------------------------
OFFICE_FIELDS = ("name_it", "name_en", "keywords_it", "keywords_en", "phone", "email", "address", "hours", "url")


def _offices_page(request: Request, console, status: int = 200, error: str | None = None,
                  message: str | None = None):
    lang = language(request)
    entries = [(o, details(o, lang)) for o in _offices(console).all()]
    return render(request, "offices.html", {"active": "uffici", "entries": entries, "fields": OFFICE_FIELDS,
                                            "error": error, "message": message}, status)


@router.get("/uffici")
def offices_page(request: Request, console: ConsoleDep, operator: AdminDep, ok: str = ""):
    message = t(language(request), ok) if ok in ("office_saved", "office_removed") else None
    return _offices_page(request, console, message=message)


@router.post("/uffici")
async def save_office(request: Request, console: ConsoleDep, operator: AdminCsrfDep):
    form = await request.form()
    values = {k: str(form.get(k) or "")[:5000] for k in OFFICE_FIELDS}
    raw_id = str(form.get("office_id") or "")
    office_id = int(raw_id) if raw_id.isdigit() and 0 < int(raw_id) <= MAX_ID else None
    if raw_id and office_id is None:
        return _offices_page(request, console, 404, error=t(language(request), "office_not_found"))
    return await _in_thread(_save_office, request, console, operator, values, office_id)


async def _in_thread(fn, *args):
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(fn, *args)


def _save_office(request: Request, console, operator, values: dict, office_id: int | None):
    lang = language(request)
    try:
        office = _offices(console).save(values, office_id)
    except BadOffice as exc:
        return _offices_page(request, console, 422, error=t(lang, str(exc)))
    except LookupError:
        return _offices_page(request, console, 404, error=t(lang, "office_not_found"))
    console.operators.audit(operator.username, "office_saved", {"office": office.id, "name": office.name_it},
                            client_ip(request))
    return RedirectResponse(f"{PREFIX}/uffici?ok=office_saved", status_code=303)


@router.post("/uffici/{office_id}/rimuovi")
def remove_office(request: Request, office_id: int, console: ConsoleDep, operator: AdminCsrfDep):
    if not (0 < office_id <= MAX_ID and _offices(console).delete(office_id)):
        return _offices_page(request, console, 404, error=t(language(request), "office_not_found"))
    console.operators.audit(operator.username, "office_removed", {"office": office_id}, client_ip(request))
    return RedirectResponse(f"{PREFIX}/uffici?ok=office_removed", status_code=303)


def install(app) -> None:
    app.include_router(router)
    app.add_exception_handler(AdminOnly, admin_only)


__all__ = ["install", "router", "get_console"]
