"""POST /api/handoff: a citizen asks to talk to a person (issue 15); GET /api/handoff/privacy: what they consent to.

The contract scripts rely on: `{"session_id", "consent": true|false, "email"?}` -> 201 `{"case_id", "number", ...}`
for a new case (200 with the same case when the session already has an open one: its conversation is
copied again); without consent, with a bad or missing e-mail, or for an unknown session: a 4xx
`{"detail", "code"}` whose detail is in the citizen's language (prompts/messages.*.toml).
"""

from __future__ import annotations

from typing import Annotated

from email_validator import EmailNotValidError, validate_email
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, StrictBool, StrictStr

import prompts
from api.deps import RateLimit, ServicesDep, client_key
from api.errors import error
from api.models import Language, SessionId, Strict
from sibyl.backoffice.cases import CaseError

router = APIRouter(prefix="/api", tags=["api"])


class HandoffRequest(Strict):
    session_id: SessionId
    consent: StrictBool = Field(description="The citizen's explicit consent to keeping the conversation and contact.")
    email: Annotated[StrictStr, Field(max_length=320, examples=["nome@esempio.it"])] | None = Field(
        None, description="Where the URP replies (required for a web conversation).")
    language: Language | None = Field(None, description="Language of the messages; default: the conversation's.")


class HandoffResponse(BaseModel):
    case_id: int
    number: str = Field(description="The case number the citizen keeps, e.g. URP-2026-00012.")
    status: str
    created: bool = Field(description="False: the session's open case was updated instead.")
    retention_days: int
    message: str


class Privacy(BaseModel):
    retention_days: int
    text: str


def _refuse(status: int, code: str, lang: str) -> JSONResponse:
    """`code` (consent_required, bad_email, email_required, unknown_session, empty) with its text handoff_<code>."""
    return error(status, code, prompts.text(lang, f"handoff_{code}"))


@router.get("/handoff/privacy", response_model=Privacy)
async def privacy(services: ServicesDep, lang: Annotated[Language, Query()] = "it") -> Privacy:
    """The consent text shown before a request, with the retention period (SIBYL_CASE_RETENTION_DAYS)."""
    days = services.settings.case_retention_days
    return Privacy(retention_days=days, text=prompts.text(lang, "handoff_privacy", days=days))


@router.post("/handoff", status_code=201, response_model=HandoffResponse, dependencies=[RateLimit],
             responses={status: {"model": dict} for status in (404, 422)})
async def handoff(body: HandoffRequest, request: Request, services: ServicesDep):
    """Open a case with the whole conversation of the session, for the URP to answer by e-mail."""
    return await services.run(_handoff, body, services, client_key(request))


def _handoff(body: HandoffRequest, services, ip: str):
    store, cases = services.store, services.cases
    session = store.get_session(body.session_id)
    lang = body.language or (session.language if session is not None else None) or "it"
    lang = lang if lang in ("it", "en") else "it"
    if not body.consent:
        return _refuse(422, "consent_required", lang)
    email = None
    if body.email is not None and body.email.strip():
        try:
            email = validate_email(body.email.strip(), check_deliverability=False).normalized
        except EmailNotValidError:
            return _refuse(422, "bad_email", lang)
    if session is None:
        return _refuse(404, "unknown_session", lang)
    if email is None and session.channel != "telegram":
        return _refuse(422, "email_required", lang)
    try:
        chat = (session.external_key or "").partition(":")[2] if session.channel == "telegram" else ""
        case, created = cases.open(session.id, store.messages(session.id), session.channel, lang, email=email,
                                   telegram_chat=chat or None, ip=ip)
    except CaseError as exc:
        return _refuse(exc.status, exc.key.removeprefix("handoff_"), lang)
    days = services.settings.case_retention_days
    payload = HandoffResponse(case_id=case.id, number=case.number, status=case.status, created=created,
                              retention_days=days,
                              message=prompts.text(lang, "handoff_created", number=case.number, contact=email or "-"))
    return JSONResponse(payload.model_dump(), status_code=201 if created else 200)
