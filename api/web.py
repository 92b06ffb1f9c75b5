"""The web chat: the page at / and an iframe-friendly /embed, strings from prompts/ui.<lang>.toml.

The page is rendered on the server in the visitor's language (every label, heading and placeholder is
there before any script runs), and its form posts to the same path: without JavaScript a question
gets a server-rendered answer page; with JavaScript chat.js takes the form over and talks to /api/chat.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape

import prompts
from api.deps import client_key
from retrieval.pipeline import BadQuestion
from sibyl.ratelimit import RateLimited
from sibyl.store import UnknownSession

STATIC = Path(__file__).parent / "static"
LANGS = ("it", "en")

router = APIRouter(include_in_schema=False)

# Scripts and styles only from this origin: even if some text slipped through unescaped,
# an injected <script> or inline handler would not run.
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "media-src 'self' blob:; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors {ancestors}")

# The page is a Jinja template (autoescaped: questions and passages are data, never markup).
_pages = Environment(loader=FileSystemLoader(STATIC), autoescape=select_autoescape(["html"]),
                     trim_blocks=True, lstrip_blocks=True)


def ui_strings(lang: str) -> dict[str, str]:
    return prompts.catalog("ui", lang)


def page_language(request: Request, asked: str | None = None) -> str:
    """?lang= (or the form's language) first, then the browser's Accept-Language, then Italian."""
    if asked in LANGS:
        return asked
    for part in request.headers.get("accept-language", "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGS:
            return code
    return "it"


def answer_blocks(answer: str) -> list[dict[str, Any]]:
    """The answer text as paragraphs and bullet lists, without its trailing plain-text source list
    (the page lists the sources itself), as chat.js's bodyLines does."""
    lines = answer.split("\n")
    for i in range(len(lines) - 1, -1, -1):
        line = lines[i].strip()
        if not line or re.match(r"^\[\d+\]\s", line):
            continue
        if line.endswith(":") and i < len(lines) - 1:
            lines = lines[:i]
        break
    blocks: list[dict[str, Any]] = []
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        if re.match(r"^[-•]\s+", line):
            item = re.sub(r"^[-•]\s+", "", line)
            if blocks and "bullets" in blocks[-1]:
                blocks[-1]["bullets"].append(item)
            else:
                blocks.append({"bullets": [item]})
        else:
            blocks.append({"text": line})
    return blocks


def _passage(source: dict[str, Any]) -> str:
    lines = str(source.get("text") or "").split("\n")
    while lines and lines[0].strip() in (source.get("title"), source.get("section")):
        lines.pop(0)
    return "\n".join(lines)


def reply_turn(question: str, reply: dict[str, Any]) -> dict[str, Any]:
    """One question and its answer, as the no-JavaScript page shows them."""
    no_answer = reply.get("answered") is False and reply.get("intent") not in ("greeting", "help")
    sources = [{"n": s["n"], "title": s.get("title", ""), "section": s.get("section", ""), "passage": _passage(s)}
               for s in reply.get("sources") or []]
    return {"question": question, "language": reply.get("language") or "it", "no_answer": no_answer,
            "blocks": answer_blocks(str(reply.get("answer") or "")), "sources": sources,
            "suggestions": reply.get("suggestions") or []}


def _headers(ancestors: str) -> dict[str, str]:
    headers = {"Content-Security-Policy": _CSP.format(ancestors=ancestors), "Cache-Control": "no-cache",
               "Referrer-Policy": "same-origin", "X-Content-Type-Options": "nosniff"}
    if ancestors == "'none'":
        headers["X-Frame-Options"] = "DENY"
    return headers


def render_page(lang: str, base_path: str, ancestors: str, *, turns: list[dict[str, Any]] | None = None,
                session_id: str | None = None, status: int = 200) -> HTMLResponse:
    html = _pages.get_template("index.html").render(
        lang=lang, other_lang="en" if lang == "it" else "it", ui=ui_strings(lang), base_path=base_path,
        turns=turns or [], session_id=session_id)
    return HTMLResponse(html, status_code=status, headers=_headers(ancestors))


def _ancestors(request: Request, embed: bool) -> str:
    return (request.app.state.settings.embed_ancestors or "'none'") if embed else "'none'"


async def _answer_form(request: Request, base_path: str, embed: bool) -> HTMLResponse:
    """The no-JavaScript chat: the form's question answered like /api/chat, shown on a rendered page.
    Bad input and the rate limit are shown on the page with their 4xx status, never a 500."""
    form = await request.form()

    def field(name: str) -> str:  # a file sent in place of a text field counts as nothing
        value = form.get(name)
        return value if isinstance(value, str) else ""

    message = field("message")
    session_id = field("session_id") or None
    lang = page_language(request, field("language") or None)
    ui = ui_strings(lang)
    ancestors = _ancestors(request, embed)
    services = request.app.state.services

    def refused(text: str, status: int, keep_session: str | None) -> HTMLResponse:
        turn = {"question": message, "language": lang, "error": text}
        return render_page(lang, base_path, ancestors, turns=[turn], session_id=keep_session, status=status)

    if not message.strip():
        return refused(ui["error_empty"], 422, session_id)
    try:
        services.rate_limiter.check(client_key(request))
    except RateLimited as exc:
        return refused(ui["error_rate"].format(seconds=exc.retry_after), 429, session_id)
    try:
        try:
            reply = await services.run(services.conversation.reply, message, session_id=session_id, channel="web",
                                       language_hint=lang)
        except UnknownSession:  # expired: carry on in a new conversation, as the script does
            reply = await services.run(services.conversation.reply, message, channel="web", language_hint=lang)
    except BadQuestion as exc:
        return refused(ui["error_input"].format(detail=str(exc)), 422, session_id)
    data = reply.to_dict()
    return render_page(lang, base_path, ancestors, turns=[reply_turn(message, data)],
                       session_id=data.get("session_id"))


@router.get("/")
def index(request: Request, lang: str | None = None) -> HTMLResponse:
    return render_page(page_language(request, lang), "/", "'none'")


@router.post("/")
async def index_form(request: Request) -> HTMLResponse:
    return await _answer_form(request, "/", embed=False)


@router.get("/embed")
def embed(request: Request, lang: str | None = None) -> HTMLResponse:
    """The same page, allowed inside an iframe on the sites in SIBYL_EMBED_ANCESTORS (compact layout)."""
    return render_page(page_language(request, lang), "/embed", _ancestors(request, True))


@router.post("/embed")
async def embed_form(request: Request) -> HTMLResponse:
    return await _answer_form(request, "/embed", embed=True)


def mount(app) -> None:
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
