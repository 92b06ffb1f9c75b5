"""URP operator console: `install(app)` adds the /operatore pages, their static files and auth errors."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from api.operator import cases as cases_console
from api.operator.dashboard import router as dashboard_router
from api.operator.deps import (
    COOKIE,
    HERE,
    PREFIX,
    SECURITY_HEADERS,
    CsrfFailed,
    NotLoggedIn,
    client_ip,
    get_console,
    language,
    render,
)
from api.operator.faq import router as faq_router
from api.operator.present import t
from api.operator.routes import router

log = logging.getLogger(__name__)


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


async def not_logged_in(request: Request, exc: NotLoggedIn):
    if _wants_html(request):
        return render(request, "login.html", {"login_token": None, "error": t(language(request), "login_required"),
                                              "need_login": True}, 401)
    return JSONResponse({"detail": t(language(request), "login_required"), "code": "login_required"}, 401,
                        headers=SECURITY_HEADERS)


async def csrf_failed(request: Request, exc: CsrfFailed):
    if _wants_html(request):
        return render(request, "error.html", {"error": t(language(request), "csrf_failed")}, 403)
    return JSONResponse({"detail": t(language(request), "csrf_failed"), "code": "csrf_failed"}, 403,
                        headers=SECURITY_HEADERS)


def audit_refused_upload(request: Request, size: int, limit: int) -> None:
    """Audit an upload refused before reading (address and declared size, never content), under the
    operator's name when the cookie is a live session. Blocking: run it in a thread."""
    try:
        operators = get_console(request).operators
        session = operators.session(request.cookies.get(COOKIE))
        operators.audit(session.username if session else "-", "upload_rejected",
                        {"reason": "too_large", "bytes": size, "limit": limit}, client_ip(request))
    except Exception:  # auditing must not turn a 413 into a 500
        log.exception("could not audit a refused upload")


class UploadLimit:
    """Refuse an oversized upload from its Content-Length, before the multipart body is read and spooled
    (the manager checks the real size again after reading), and one without a Content-Length (a
    chunked body could not be refused before reading; browsers always send the length)."""

    MARGIN = 64 * 1024  # multipart boundaries and the CSRF field

    def __init__(self, app, path: str) -> None:
        self.app = app
        self.path = path

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == self.path:
            settings = scope["app"].state.settings
            limit = settings.upload_max_bytes + self.MARGIN
            length = dict(scope["headers"]).get(b"content-length", b"")
            request = Request(scope)
            if not length.isdigit():
                response = JSONResponse({"detail": t(language(request), "upload_length_required"),
                                         "code": "length_required"}, 411,
                                        headers={**SECURITY_HEADERS, "Connection": "close"})
                await response(scope, receive, send)
                return
            if int(length) > limit:
                await run_in_threadpool(audit_refused_upload, request, int(length), limit)
                detail = t(language(request), "upload_too_large", max=round(settings.upload_max_bytes / 1_000_000, 1))
                response = JSONResponse({"detail": detail, "code": "too_large"}, 413,
                                        headers={**SECURITY_HEADERS, "Connection": "close"})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def install(app: FastAPI) -> None:
    app.add_middleware(UploadLimit, path=f"{PREFIX}/documenti")
    app.include_router(router)
    app.include_router(dashboard_router)  # dashboard (issue 15)
    cases_console.install(app)  # URP cases, canned replies, offices directory (issue 15)
    app.include_router(faq_router)  # verified answers and blocked passages (/operatore/faq)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=str(HERE / "static")), name="operator-static")
    # Starlette types handlers as taking a plain Exception, not the class they are registered for.
    app.add_exception_handler(NotLoggedIn, not_logged_in)  # type: ignore[arg-type]
    app.add_exception_handler(CsrfFailed, csrf_failed)  # type: ignore[arg-type]
