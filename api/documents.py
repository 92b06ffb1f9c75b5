"""`GET /documenti/<id>`: a public, read-only view of one indexed document, so a citizen can read what an
answer cites. Every passage is anchored by its id (`/documenti/<doc>#<passage id>`, the `id` of an answer's
source) and the cited one is highlighted with CSS `:target`. Only the index's own text, title and ingest date
are shown (plus the catalog's official link): nothing about sessions, operators or the console.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

import prompts
from api.deps import PipelineDep
from api.models import Language
from retrieval.corpus import load_catalog

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))  # autoescape on for .html

router = APIRouter(include_in_schema=False)

DOCUMENT_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]{0,199}")
_CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'")
_HEADERS = {"Content-Security-Policy": _CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
            "Cache-Control": "no-cache"}


def document_path(document: str, passage: str | None = None) -> str:
    """The view's path for a document (and one of its passages): what the channels link to."""
    return f"/documenti/{document}" + (f"#{passage}" if passage else "")


def official_url(corpus_dir: Path, source_file: str | None) -> str | None:
    """The catalog's `url` for the file, if it is an http(s) address."""
    if not source_file:
        return None
    url = str(load_catalog(corpus_dir).get(source_file, {}).get("url") or "").strip()
    return url if re.match(r"https?://[^\s\"'<>]+$", url) else None


def _passages(records: dict, document: str) -> list[dict]:
    """The document's passages in index order, without the title/section lines the index prepends."""
    out = []
    for record in records.values():
        if record.get("document") != document:
            continue
        lines = str(record.get("text", "")).split("\n")
        for label in (record.get("title"), record.get("section")):
            if lines and label and lines[0].strip() == str(label).strip():
                lines = lines[1:]
        out.append({"id": record["id"], "section": record.get("section") or "", "text": "\n".join(lines).strip()})
    return out


@router.get("/documenti/{document_id}", response_class=HTMLResponse)
def document_view(request: Request, document_id: str, pipeline: PipelineDep,
                  lang: Annotated[Language, Query()] = "it") -> HTMLResponse:
    strings = prompts.catalog("ui", lang)
    manifest = pipeline.index.manifest
    info = manifest.get("documents", {}).get(document_id) if DOCUMENT_ID.fullmatch(document_id) else None
    if info is None:
        return templates.TemplateResponse(request, "document_missing.html", {"s": strings, "lang": lang},
                                          status_code=404, headers=_HEADERS)
    settings = request.app.state.settings
    context = {"s": strings, "lang": lang, "title": info.get("title", document_id),
               "language": info.get("language") or "it", "ingested": str(manifest.get("built_at") or "")[:10],
               "official": official_url(settings.corpus_dir, info.get("source_file")),
               "passages": _passages(pipeline.index.records, document_id)}
    return templates.TemplateResponse(request, "document.html", context, headers=_HEADERS)
