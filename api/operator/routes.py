"""URP operator console pages under /operatore (HTTP glue only; logic lives in sibyl/ and retrieval/)."""

from __future__ import annotations

import functools
import logging
import secrets
from collections.abc import Callable
from datetime import date
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from api.deps import RateLimited
from api.operator import present
from api.operator.cases import AdminCsrfDep, AdminDep  # documents are administrators' work (issue 15)
from api.operator.deps import (
    COOKIE,
    LOGIN_COOKIE,
    PREFIX,
    SECURITY_HEADERS,
    ConsoleDep,
    CsrfOperatorDep,
    OperatorDep,
    client_ip,
    cookie_secure,
    language,
    render,
)
from api.operator.present import t
from retrieval.pipeline import BadQuestion
from sibyl.backoffice import reports
from sibyl.backoffice.accounts import LockedOut
from sibyl.backoffice.documents import Busy, UploadRejected
from sibyl.backoffice.drafts import draft_reply
from sibyl.backoffice.search import BadFilter, ConsoleQuery, console_search, facets, passage, query_stems

log = logging.getLogger(__name__)

router = APIRouter(prefix=PREFIX, tags=["operator"], include_in_schema=False)

# Ids in paths are database integers: anything outside 1..2^31-1 (PostgreSQL's integer) cannot exist,
# and passing it on overflowed SQLite (500, connection reset) instead of a 404.
MAX_ID = 2**31 - 1


def _valid_id(value: int) -> bool:
    return 1 <= value <= MAX_ID


def _audit(console, request: Request, operator, action: str, **detail) -> None:
    console.operators.audit(operator.username, action, detail or None, client_ip(request))


# --- access --------------------------------------------------------------------------------------
@router.get("/login")
def login_form(request: Request):
    token = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(32)
    response = render(request, "login.html", {"login_token": token, "error": None})
    response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="strict", path=PREFIX, max_age=3600)
    return response


@router.post("/login")
async def login(request: Request, console: ConsoleDep, username: Annotated[str, Form(max_length=200)] = "",
                password: Annotated[str, Form(max_length=1000)] = "", csrf_token: Annotated[str, Form()] = ""):
    """Throttled per client address before anything costly; the argon2 check runs in a worker thread,
    at most SIBYL_OPERATOR_LOGIN_CONCURRENCY at once (waiting logins hold no thread)."""
    lang = language(request)
    ip = client_ip(request)
    cookie_token = request.cookies.get(LOGIN_COOKIE, "")
    fresh = secrets.token_urlsafe(32)

    def again(message: str, status: int):
        response = render(request, "login.html", {"login_token": fresh, "error": message, "username": username},
                          status)
        response.set_cookie(LOGIN_COOKIE, fresh, httponly=True, samesite="strict", path=PREFIX, max_age=3600)
        return response

    try:
        console.login_limiter.check(f"operator-login/{ip}")
    except RateLimited as exc:
        log.warning("operator login throttled for %s (%s)", ip, exc.limit)
        response = again(t(lang, "login_throttled", seconds=exc.retry_after), 429)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    if not cookie_token or not secrets.compare_digest(cookie_token.encode(), csrf_token.encode()):
        return again(t(lang, "csrf_failed"), 403)
    try:
        session = await anyio.to_thread.run_sync(functools.partial(console.operators.login, username, password, ip),
                                                 limiter=console.login_slots)
    except LockedOut as exc:
        return again(t(lang, "login_locked", until=exc.until.strftime("%H:%M")), 429)
    if session is None:
        return again(t(lang, "login_failed"), 401)
    response = RedirectResponse(f"{PREFIX}/cerca", status_code=303)
    response.set_cookie(COOKIE, session.token, httponly=True, samesite="strict", path=PREFIX,
                        secure=cookie_secure(request, console.services.settings),
                        max_age=int(console.services.settings.operator_session_hours * 3600))
    response.delete_cookie(LOGIN_COOKIE, path=PREFIX)
    return response


@router.post("/logout")
def logout(request: Request, console: ConsoleDep, operator: CsrfOperatorDep):
    console.operators.logout(operator.token, client_ip(request))
    response = RedirectResponse(f"{PREFIX}/login?out=1", status_code=303)
    response.delete_cookie(COOKIE, path=PREFIX, httponly=True, samesite="strict")
    return response


@router.get("")
@router.get("/")
def home(operator: OperatorDep):
    return RedirectResponse(f"{PREFIX}/cerca", status_code=303)


# --- search ----------------------------------------------------------------------------------------
@router.get("/cerca")
def search_page(request: Request, console: ConsoleDep, operator: OperatorDep, q: str = "", document: str = "",
                area: str = "", objective: str = "", year: str = "", realised_min: str = "", realised_max: str = "",
                sort: str = "relevance"):
    lang = language(request)
    pipeline = console.services.pipeline
    form = {"q": q, "document": document, "area": area, "objective": objective, "year": year,
            "realised_min": realised_min, "realised_max": realised_max, "sort": sort}
    context: dict[str, Any] = {"form": form, "facets": facets(pipeline), "result": None, "error": None}
    if not q.strip():
        _audit(console, request, operator, "view", page="search")
        return render(request, "search.html", context)
    try:
        query = ConsoleQuery.parse(q, document, area, objective, year, realised_min, realised_max, sort)
        context["result"] = console_search(pipeline, query)
    except BadFilter as exc:
        context["error"] = t(lang, "bad_filter", reason=present.reason(lang, exc))
        return render(request, "search.html", context, 422)
    except BadQuestion as exc:
        context["error"] = str(exc)
        return render(request, "search.html", context, 422)
    _audit(console, request, operator, "search", q=q[:200],
           filters={k: v for k, v in form.items() if v and k != "q"}, results=len(context["result"].hits))
    return render(request, "search.html", context)


@router.get("/passaggio/{chunk_id:path}")
def passage_page(request: Request, chunk_id: str, console: ConsoleDep, operator: OperatorDep, q: str = ""):
    record = passage(console.services.pipeline, chunk_id)
    if record is None:
        return render(request, "passage.html", {"record": None, "q": q}, 404)
    _audit(console, request, operator, "view_passage", id=chunk_id)
    return render(request, "passage.html", {"record": record, "q": q,
                                            "full": present.highlight(record["text"], query_stems(q) if q else set())})


# --- reply draft -------------------------------------------------------------------------------------
@router.get("/bozza")
def draft_page(request: Request, console: ConsoleDep, operator: OperatorDep, q: str = "",
               lingua: Annotated[str, Query(pattern="^(it|en)$")] = "it"):
    context: dict[str, Any] = {"q": q, "lingua": lingua, "draft": None, "error": None}
    if q.strip():
        try:
            context["draft"] = draft_reply(console.services.pipeline, q, lingua,
                                           reports.feedback_items(console.services.store, rating=-1,
                                                                  include_reviewed=True))
        except BadQuestion as exc:
            context["error"] = str(exc)
            return render(request, "draft.html", context, 422)
        _audit(console, request, operator, "draft", q=q[:200], language=lingua,
               answered=context["draft"].answered)
    return render(request, "draft.html", context)


# --- unanswered questions ---------------------------------------------------------------------------
@router.get("/senza-risposta")
def unanswered_page(request: Request, console: ConsoleDep, operator: OperatorDep, done: int | None = None):
    groups = reports.unanswered_groups(console.services.store, console.operators.handled_ids())
    _audit(console, request, operator, "view", page="unanswered", groups=len(groups))
    return render(request, "unanswered.html", {"groups": groups, "done": done})


@router.post("/senza-risposta/gestite")
async def mark_handled(request: Request, console: ConsoleDep, operator: CsrfOperatorDep):
    form = await request.form()
    ids = [str(v) for v in form.getlist("message_id")][:1000]
    return await run_in_threadpool(_mark_handled, request, console, operator, ids)  # database work


def _mark_handled(request: Request, console, operator, ids: list[str]):
    known = {m.id for m, _ in reports.abstentions(console.services.store)}
    ids = [i for i in ids if i in known]
    if not ids:
        return JSONResponse({"detail": t(language(request), "unanswered_not_found"), "code": "not_found"}, 404,
                            headers=SECURITY_HEADERS)
    done = console.operators.mark_handled(ids, operator.username)
    _audit(console, request, operator, "unanswered_handled", message_ids=ids, count=done)
    return RedirectResponse(f"{PREFIX}/senza-risposta?done={done}", status_code=303)


# --- feedback review ------------------------------------------------------------------------------
@router.get("/feedback")
def feedback_page(request: Request, console: ConsoleDep, operator: OperatorDep, all: bool = False):
    items = reports.feedback_items(console.services.store, rating=-1, include_reviewed=all)
    _audit(console, request, operator, "view", page="feedback", items=len(items))
    return render(request, "feedback.html", {"items": items, "show_all": all})


@router.post("/feedback/{feedback_id}/rivisto")
def mark_reviewed(request: Request, feedback_id: int, console: ConsoleDep, operator: CsrfOperatorDep):
    if not _valid_id(feedback_id) or not reports.mark_feedback_reviewed(console.services.store, feedback_id,
                                                                        operator.username):
        return JSONResponse({"detail": t(language(request), "feedback_not_found"), "code": "not_found"}, 404,
                            headers=SECURITY_HEADERS)
    _audit(console, request, operator, "feedback_reviewed", feedback_id=feedback_id)
    return RedirectResponse(f"{PREFIX}/feedback", status_code=303)


# --- topics and exports ----------------------------------------------------------------------------
@router.get("/temi")
def topics_page(request: Request, console: ConsoleDep, operator: OperatorDep, dal: str = "", al: str = ""):
    lang = language(request)
    try:
        start, end = reports.parse_range(dal or None, al or None)
    except reports.BadRange as exc:
        error = t(lang, "bad_range", reason=present.reason(lang, exc))
        return render(request, "topics.html", {"error": error, "svg": None, "dal": dal, "al": al, "stats": None}, 422)
    rows = reports.questions(console.services.store, start, end)
    _audit(console, request, operator, "view", page="topics", start=start, end=end)
    stats = reports.topic_stats(rows, console.classifier(), start, end, t(lang, "topics_unclassified"))
    svg = present.topics_svg(stats, t(lang, "topics_chart_title"), t(lang, "topics_week"), t(lang, "topics_empty"))
    return render(request, "topics.html", {"error": None, "svg": svg, "stats": stats, "dal": start.isoformat(),
                                           "al": end.isoformat(), "start": start, "end": end,
                                           "colors": {a: present.area_color(a) for a in stats.areas}})


CSV = "text/csv; charset=utf-8"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _download(body: str | bytes, name: str, media_type: str) -> Response:
    return Response(body, media_type=media_type,
                    headers={"Content-Disposition": f'attachment; filename="{name}"', **SECURITY_HEADERS})


def _range_or_error(request: Request, dal: str, al: str):
    try:
        return reports.parse_range(dal or None, al or None)
    except reports.BadRange as exc:
        lang = language(request)
        return JSONResponse({"detail": t(lang, "bad_range", reason=present.reason(lang, exc)), "code": "bad_range"},
                            422, headers=SECURITY_HEADERS)


def _export(request: Request, console, operator, dal: str, al: str, action: str,
            fetch: Callable[[Any, date, date], list], build: Callable[[list, str], str | bytes],
            name: str, media_type: str) -> Response:
    """One export: the period (422 when it is not one), the rows, an audit line, then the file."""
    xlsx = media_type == XLSX
    got = _range_or_error(request, dal, al)
    if isinstance(got, Response):
        return got
    start, end = got
    rows = fetch(console.services.store, start, end)
    _audit(console, request, operator, action, start=start, end=end, rows=len(rows),
           **({"format": "xlsx"} if xlsx else {}))
    return _download(build(rows, language(request)), f"{name}-{start}-{end}.{'xlsx' if xlsx else 'csv'}",
                     media_type)


def _sheet(table: tuple[list[str], list[list]], sheet: str, lang: str) -> bytes:
    header, rows = table
    return present.xlsx(header, rows, t(lang, sheet))


@router.get("/esporta/domande.csv")
def export_questions(request: Request, console: ConsoleDep, operator: OperatorDep, dal: str = "", al: str = ""):
    return _export(request, console, operator, dal, al, "export_questions", reports.questions,
                   lambda rows, lang: present.questions_csv(rows, console.classifier(), lang),
                   "sibyl-domande", CSV)


@router.get("/esporta/feedback.csv")
def export_feedback(request: Request, console: ConsoleDep, operator: OperatorDep, dal: str = "", al: str = ""):
    return _export(request, console, operator, dal, al, "export_feedback", reports.feedback_in_range,
                   present.feedback_csv, "sibyl-feedback", CSV)


@router.get("/esporta/domande.xlsx")
def export_questions_xlsx(request: Request, console: ConsoleDep, operator: OperatorDep, dal: str = "", al: str = ""):
    return _export(request, console, operator, dal, al, "export_questions", reports.questions,
                   lambda rows, lang: _sheet(present.questions_table(rows, console.classifier(), lang),
                                             "export_sheet_questions", lang),
                   "sibyl-domande", XLSX)


@router.get("/esporta/feedback.xlsx")
def export_feedback_xlsx(request: Request, console: ConsoleDep, operator: OperatorDep, dal: str = "", al: str = ""):
    return _export(request, console, operator, dal, al, "export_feedback", reports.feedback_in_range,
                   lambda rows, lang: _sheet(present.feedback_table(rows, lang), "export_sheet_feedback", lang),
                   "sibyl-feedback", XLSX)


# --- documents ----------------------------------------------------------------------------------------
def _documents(request: Request, console, status: int = 200, message: str | None = None, error: str | None = None,
               job=None):
    manager = console.documents
    return render(request, "documents.html", {
        "documents": manager.documents(), "skipped": manager.skipped(), "message": message, "error": error,
        "job": job or manager.running() or (manager.jobs[-1] if manager.jobs else None),
        "max_mb": round(manager.max_bytes / 1_000_000, 1)}, status)


@router.get("/documenti")
def documents_page(request: Request, console: ConsoleDep, operator: AdminDep):
    _audit(console, request, operator, "view", page="documents")
    return _documents(request, console)


@router.post("/documenti")
async def upload_document(request: Request, console: ConsoleDep, operator: AdminCsrfDep,
                          file: Annotated[UploadFile | None, File()] = None,
                          url: Annotated[str, Form(max_length=2000)] = ""):
    if file is None or not file.filename:
        return await run_in_threadpool(_documents, request, console, 422,
                                       error=t(language(request), "upload_missing"))
    data = await file.read(console.documents.max_bytes + 1)
    # Parsing takes seconds for a large document (and the index, audit and page touch disk): a worker
    # thread, so citizens' chat keeps being served meanwhile.
    return await run_in_threadpool(_upload, request, console, operator, file.filename[:200], data, url)


def _upload(request: Request, console, operator, name: str, data: bytes, url: str = ""):
    lang = language(request)
    manager = console.documents
    max_mb = round(manager.max_bytes / 1_000_000, 1)
    try:
        job = manager.upload(name, data, operator.username, url=url)
    except UploadRejected as exc:
        _audit(console, request, operator, "upload_rejected", file=name, reason=str(exc), bytes=len(data))
        return _documents(request, console, exc.code, error=t(lang, exc.key, reason=str(exc), max=max_mb))
    except Busy:
        return _documents(request, console, 409, error=t(lang, "busy"))
    _audit(console, request, operator, "upload", file=name, document=job.document, bytes=len(data), job=job.id,
           **({"url": url.strip()} if url.strip() else {}))
    return _documents(request, console, 202, job=job,
                      message=t(lang, "upload_started", name=job.document, chunks=job.info.get("chunks", 0)))


@router.post("/documenti/reindicizza")
def reindex(request: Request, console: ConsoleDep, operator: AdminCsrfDep):
    lang = language(request)
    try:
        job = console.documents.reindex(operator.username)
    except Busy:
        return _documents(request, console, 409, error=t(lang, "busy"))
    _audit(console, request, operator, "reindex", job=job.id)
    return _documents(request, console, 202, job=job, message=t(lang, "reindex_started"))


@router.post("/documenti/{doc_id}/rimuovi")
def remove_document(request: Request, doc_id: str, console: ConsoleDep, operator: AdminCsrfDep):
    lang = language(request)
    try:
        job = console.documents.remove(doc_id, operator.username)
    except KeyError:
        return _documents(request, console, 404, error=t(lang, "document_not_found"))
    except UploadRejected as exc:
        return _documents(request, console, exc.code, error=t(lang, exc.key))
    except Busy:
        return _documents(request, console, 409, error=t(lang, "busy"))
    _audit(console, request, operator, "remove", document=doc_id, job=job.id)
    return _documents(request, console, 202, job=job, message=t(lang, "remove_started", name=doc_id))


@router.get("/documenti/lavori/{job_id}")
def job_status(request: Request, job_id: int, console: ConsoleDep, operator: AdminDep):
    job = console.documents.job(job_id) if _valid_id(job_id) else None
    if job is None:
        return JSONResponse({"detail": t(language(request), "job_not_found"), "code": "not_found"}, 404,
                            headers=SECURITY_HEADERS)
    return JSONResponse(job.to_dict(), headers=SECURITY_HEADERS)


# --- audit -------------------------------------------------------------------------------------------
@router.get("/registro")
def audit_page(request: Request, console: ConsoleDep, operator: OperatorDep, who: str = "", action: str = ""):
    entries = console.operators.audit_log(300, username=who or None, action=action or None)
    _audit(console, request, operator, "view", page="audit")
    return render(request, "audit.html", {"entries": entries, "who": who, "action": action})


# --- translation review (api/operator/translations.py) ----------------------------------------------
from api.operator import translations as _translations  # noqa: E402  (its own module, this router)

router.get("/traduzioni")(_translations.translations_page)
router.post("/traduzioni")(_translations.translation_action)
