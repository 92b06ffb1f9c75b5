"""URP operator console: `install(app)` adds the /operatore pages, their static files and auth errors."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from api.operator.deps import HERE, PREFIX, SECURITY_HEADERS, CsrfFailed, NotLoggedIn, language, render
from api.operator.routes import router
from retrieval.drafts import t


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


class UploadLimit:
    """Refuse an oversized upload from its Content-Length, before the multipart body is read and spooled
    (the manager checks the real size again after reading)."""

    MARGIN = 64 * 1024  # multipart boundaries and the CSRF field

    def __init__(self, app, path: str) -> None:
        self.app = app
        self.path = path

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == self.path:
            limit = scope["app"].state.settings.upload_max_bytes + self.MARGIN
            length = dict(scope["headers"]).get(b"content-length", b"0")
            if length.isdigit() and int(length) > limit:
                response = JSONResponse({"detail": "upload larger than the configured limit", "code": "too_large"},
                                        413, headers={**SECURITY_HEADERS, "Connection": "close"})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def install(app: FastAPI) -> None:
    app.add_middleware(UploadLimit, path=f"{PREFIX}/documenti")
    app.include_router(router)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=str(HERE / "static")), name="operator-static")
    app.add_exception_handler(NotLoggedIn, not_logged_in)
    app.add_exception_handler(CsrfFailed, csrf_failed)
