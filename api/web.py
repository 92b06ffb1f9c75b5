"""The web chat: static page at / and an iframe-friendly /embed, strings from prompts/ui.<lang>.toml."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

import prompts

STATIC = Path(__file__).parent / "static"

router = APIRouter(include_in_schema=False)

# Scripts and styles only from this origin: even if some text slipped through unescaped,
# an injected <script> or inline handler would not run.
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "media-src 'self' blob:; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors {ancestors}")


def ui_strings(lang: str) -> dict[str, str]:
    return prompts.catalog("ui", lang)


def _page(name: str, ancestors: str) -> FileResponse:
    headers = {"Content-Security-Policy": _CSP.format(ancestors=ancestors), "Cache-Control": "no-cache",
               "Referrer-Policy": "same-origin", "X-Content-Type-Options": "nosniff"}
    if ancestors == "'none'":
        headers["X-Frame-Options"] = "DENY"
    return FileResponse(STATIC / name, media_type="text/html; charset=utf-8", headers=headers)


@router.get("/")
def index() -> FileResponse:
    return _page("index.html", "'none'")


@router.get("/embed")
def embed(request: Request) -> FileResponse:
    """The same page, allowed inside an iframe on the sites in SIBYL_EMBED_ANCESTORS (compact layout)."""
    return _page("index.html", request.app.state.settings.embed_ancestors or "'none'")


def mount(app) -> None:
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
