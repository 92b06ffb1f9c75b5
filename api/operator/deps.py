"""Operator console state and dependencies: the logged-in operator, CSRF check, language, rendering."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import anyio
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from api.deps import client_key
from api.operator import present
from api.operator.present import strings, t
from sibyl.backoffice.accounts import LoginSession, Operators
from sibyl.backoffice.documents import DocumentManager
from sibyl.backoffice.reports import AreaClassifier
from sibyl.ratelimit import RateLimiter
from sibyl.services import Services

HERE = Path(__file__).parent
COOKIE = "sibyl_operator"
LOGIN_COOKIE = "sibyl_operator_login"  # double-submit CSRF token for the login form (no session yet)
LANG_COOKIE = "sibyl_operator_lang"
PREFIX = "/operatore"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.globals.update(snippet=present.snippet, highlight=present.highlight)  # search results' Markup
# Italian screens in Italian: audit actions and details as words, job outcomes, times in Europe/Rome.
templates.env.globals.update(audit_action=present.audit_action, audit_actions=present.audit_actions,
                             audit_detail=present.audit_detail, job_outcome=present.job_outcome, when=present.when)
templates.env.filters["rome"] = present.when


class NotLoggedIn(Exception):
    """No valid operator session: 401 (the login form for a browser)."""


class CsrfFailed(Exception):
    """Missing or wrong CSRF token: 403."""


@dataclass
class Console:
    """The console's view of the process's services (sibyl.services: operators, documents, login throttle)
    plus its own cache of the topic classifier. Built once by the app's lifespan (`Console.of`)."""

    operators: Operators
    documents: DocumentManager
    services: Services
    # Login attempts per client address, counted before any password hashing (argon2: 64 MiB, ~0.1 s).
    login_limiter: RateLimiter = field(default_factory=lambda: RateLimiter(""))
    # Logins waiting for a hash slot wait here, not in a thread of the shared pool.
    login_slots: anyio.CapacityLimiter = field(default_factory=lambda: anyio.CapacityLimiter(2))
    _classifier: AreaClassifier | None = None
    _classifier_generation: str | None = None

    @classmethod
    def of(cls, services: Services) -> Console:
        office = services.backoffice
        if office is None:
            raise ValueError("services built without the back office (build_services(backoffice=False))")
        return cls(office.operators, office.documents, services, office.login_limiter, office.login_slots)

    def classifier(self) -> AreaClassifier:
        """Rebuilt when the index generation changes (an upload may add DUP areas)."""
        pipeline = self.services.pipeline
        generation = pipeline.index.manifest.get("generation")
        if self._classifier is None or self._classifier_generation != generation:
            self._classifier, self._classifier_generation = AreaClassifier(pipeline), generation
        return self._classifier


def get_console(request: Request) -> Console:
    return request.app.state.operator_console


ConsoleDep = Annotated[Console, Depends(get_console)]


def client_ip(request: Request) -> str:
    """The client's address as the rest of the API sees it (api.deps: one helper, proxy-aware)."""
    return client_key(request)


def language(request: Request) -> str:
    lang = request.query_params.get("lang") or request.cookies.get(LANG_COOKIE) or "it"
    return lang if lang in ("it", "en") else "it"


def current_operator(request: Request, console: ConsoleDep) -> LoginSession:
    session = console.operators.session(request.cookies.get(COOKIE))
    if session is None:
        raise NotLoggedIn()
    request.state.operator = session
    return session


OperatorDep = Annotated[LoginSession, Depends(current_operator)]


async def csrf_protected(request: Request, operator: OperatorDep) -> LoginSession:
    """Every state-changing request carries the session's token, in a form field or X-CSRF-Token."""
    token = request.headers.get("x-csrf-token")
    if not token and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()  # cached by Starlette: the endpoint reads the same form
        field = form.get("csrf_token")
        token = field if isinstance(field, str) else None
    if not Operators.csrf_ok(operator, token):
        raise CsrfFailed()
    return operator


CsrfOperatorDep = Annotated[LoginSession, Depends(csrf_protected)]


def cookie_secure(request: Request, settings) -> bool:
    return bool(settings.operator_cookie_secure) or request.url.scheme == "https"


def render(request: Request, name: str, context: dict, status_code: int = 200) -> HTMLResponse:
    lang = language(request)
    operator = getattr(request.state, "operator", None)
    ctx = {"lang": lang, "s": strings(lang), "t": lambda key, **kw: t(lang, key, **kw), "operator": operator,
           "csrf": operator.csrf if operator else "", "prefix": PREFIX, **context}
    response = templates.TemplateResponse(request, name, ctx, status_code=status_code)
    response.headers.update(SECURITY_HEADERS)
    if request.query_params.get("lang") in ("it", "en"):
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, path=PREFIX, samesite="strict", httponly=True)
    return response
