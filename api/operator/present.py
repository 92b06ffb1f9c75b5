"""The console's presentation: its texts (t/strings), highlighted passages (Markup), the topics chart
(inline SVG) and the CSV exports. The back office (sibyl/backoffice/) hands over plain data; everything
that is HTML, SVG or a spreadsheet cell is made here."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from html import escape
from zoneinfo import ZoneInfo

from markupsafe import Markup

import prompts
from sibyl.backoffice.reports import AreaClassifier, FeedbackItem, QuestionRow, TopicStats
from sibyl.backoffice.search import WORD, matches


def strings(language: str) -> dict:
    """Operator console texts (UI and draft templates) in one language; Italian when unknown."""
    return prompts.catalog("operator", language)


def t(language: str, key: str, /, **values) -> str:
    return prompts.render("operator", language, key, **values)


# --- passages -----------------------------------------------------------------------------------------
def highlight(text: str, stems: set[str]) -> Markup:
    """Escape every piece of the passage, then wrap the words that share a stem with the query in <mark>."""
    out, pos = [], 0
    for m in WORD.finditer(text):
        if matches(m.group(), stems):
            out.append(escape(text[pos : m.start()]))
            out.append(f"<mark>{escape(m.group())}</mark>")
            pos = m.end()
    out.append(escape(text[pos:]))
    return Markup("".join(out))


def snippet(text: str, stems: set[str], section: str = "", width: int = 320) -> Markup:
    """The passage body around its first matched word (the title line is shown separately)."""
    lines = text.split("\n")
    skip = 2 if section and not section.startswith("§") and len(lines) > 2 else 1  # title (+ section) lines
    body = " ".join(line.strip() for line in lines[skip:] if line.strip()) or text
    first = next((m.start() for m in WORD.finditer(body) if matches(m.group(), stems)), 0)
    start = max(0, first - width // 3)
    if start:
        start = body.rfind(" ", 0, start) + 1
    end = min(len(body), start + width)
    if end < len(body):
        end = body.rfind(" ", start, end) if body.rfind(" ", start, end) > start else end
    piece = highlight(body[start:end], stems)
    return Markup(("… " if start else "") + piece + (" …" if end < len(body) else ""))


# --- topics chart -------------------------------------------------------------------------------------
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#aaaaaa"]


def area_color(area: int | None) -> str:
    return PALETTE[-1] if area is None else PALETTE[(int(area) - 1) % (len(PALETTE) - 1)]


def topics_svg(stats: TopicStats, title: str, week_label: str = "week", empty_label: str = "no questions") -> str:
    """A stacked bar chart (one bar per week, one colour per area) as inline SVG: no script, no CDN."""
    width, height, left, bottom, top = 760, 300, 40, 40, 30
    legend_rows = max(1, len(stats.areas))
    total_h = height + 18 * legend_rows + 10
    plot_w, plot_h = width - left - 10, height - bottom - top
    peak = max([sum(stats.counts.get((w, a), 0) for a in stats.areas) for w in stats.weeks] or [0])
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(title)}" '
           f'viewBox="0 0 {width} {total_h}" width="100%" class="topics-chart">',
           f"<title>{escape(title)}</title>",
           f'<text x="{left}" y="18" font-size="14" font-weight="bold">{escape(title)}</text>']
    if peak == 0:
        out.append(f'<text x="{left}" y="{top + plot_h / 2}" font-size="13">{escape(empty_label)}</text>')
    scale = plot_h / peak if peak else 0
    step = max(1, -(-peak // 5)) if peak else 1
    for v in range(0, peak + 1, step):
        y = top + plot_h - v * scale
        out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="10" text-anchor="end">{v}</text>')
    n = max(1, len(stats.weeks))
    slot = plot_w / n
    bar = max(4.0, slot * 0.7)
    for i, w in enumerate(stats.weeks):
        x = left + i * slot + (slot - bar) / 2
        y = top + plot_h
        for area in stats.areas:
            c = stats.counts.get((w, area), 0)
            if not c:
                continue
            h = c * scale
            y -= h
            label = f"{week_label} {w.isoformat()} · {stats.areas[area]}: {c}"
            out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                       f'fill="{area_color(area)}"><title>{escape(label)}</title></rect>')
        if n <= 16 or i % max(1, n // 12) == 0:
            out.append(f'<text x="{x + bar / 2:.1f}" y="{top + plot_h + 14}" font-size="9" '
                       f'text-anchor="middle">{w.strftime("%d/%m")}</text>')
    y = height + 4
    for area, name in stats.areas.items():
        label = name if area is None else f"{area}. {name}"
        out.append(f'<rect x="{left}" y="{y}" width="12" height="12" fill="{area_color(area)}"/>')
        out.append(f'<text x="{left + 18}" y="{y + 10}" font-size="11">{escape(label)}</text>')
        y += 18
    out.append("</svg>")
    return "\n".join(out)


# --- readable reasons, audit rows, job outcomes -------------------------------------------------------
def reason(lang: str, exc: Exception) -> str:
    """A typed error's text in the console language (BadFilter, BadRange carry a `key`); else its message."""
    key = getattr(exc, "key", "")
    return t(lang, key) if key and key in strings(lang) else str(exc)



def age_labels(lang: str) -> list[str]:
    return [t(lang, f"dash_age_{i}") for i in range(4)]


def audit_action(lang: str, action: str) -> str:
    """An audit action ('export_questions') as words ('Esportazione domande'); an unknown one as it is."""
    return strings(lang).get(f"audit_action_{action}", action.replace("_", " "))


def audit_actions(lang: str) -> list[tuple[str, str]]:
    """(code, words) of every known audit action, for the log's filter menu."""
    prefix = "audit_action_"
    return sorted(((k[len(prefix):], v) for k, v in strings(lang).items() if k.startswith(prefix)),
                  key=lambda kv: kv[1].lower())


def _value(lang: str, value) -> str:
    if isinstance(value, bool):
        return t(lang, "export_yes") if value else t(lang, "export_no")
    if isinstance(value, list):
        return ", ".join(_value(lang, v) for v in value[:20]) + (" …" if len(value) > 20 else "")
    if isinstance(value, dict):
        return "; ".join(f"{_key(lang, k)} {_value(lang, v)}" for k, v in value.items())
    if value is None:
        return "—"
    return str(value)


def _key(lang: str, key: str) -> str:
    return strings(lang).get(f"audit_key_{key}", key.replace("_", " "))


def audit_detail(lang: str, detail: dict | None) -> str:
    """An audit row's details as one readable line ('pagina: Temi · dal: 2025-01-01'), not a raw dict."""
    if not detail:
        return ""
    parts = []
    for key, value in detail.items():
        if key == "page":
            value = strings(lang).get(f"audit_page_{value}", value)
        parts.append(f"{_key(lang, key)}: {_value(lang, value)}")
    return " · ".join(parts)


def job_outcome(lang: str, job) -> str:
    """An indexing job's result in the console language ('147 passaggi, 6 documenti')."""
    chunks, documents = job.info.get("indexed_chunks"), job.info.get("indexed_documents")
    if job.state == "done" and chunks is not None and documents is not None:
        return t(lang, "job_done", message=t(lang, "job_counts", chunks=chunks, documents=documents))
    if job.state == "done":
        return t(lang, "job_done", message=job.message)
    return t(lang, "job_failed", message=job.message)


# --- times ---------------------------------------------------------------------------------------------
ROME = ZoneInfo("Europe/Rome")


def local(value: datetime | None) -> datetime | None:
    """A stored time (naive UTC, sibyl.db.utcnow) as Rome's wall clock: operators read local time."""
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(ROME)


def when(value: datetime | None, fmt: str = "%d/%m/%Y %H:%M") -> str:
    """Rome time for a page ('' for none); the console's one date format."""
    shown = local(value)
    return shown.strftime(fmt) if shown else ""


# --- exports: CSV for Italian Excel, XLSX -------------------------------------------------------------
def _cell(value) -> str:
    """Spreadsheet-safe: a cell starting with = + - @ would run as a formula in Excel/LibreOffice."""
    if isinstance(value, (int, float)):
        return str(value)
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _csv(header: list[str], rows: list[list]) -> str:
    """Semicolon-separated with a UTF-8 BOM: what Italian Excel opens as columns, accents intact."""
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=";")
    writer.writerow(header)
    for row in rows:
        writer.writerow([_cell(v) for v in row])
    return "\ufeff" + buf.getvalue()


def xlsx(header: list[str], rows: list[list], sheet: str) -> bytes:
    """The same table as an Excel workbook (openpyxl): numbers stay numbers, text cells never run as formulas."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    ws = book.active
    ws.title = sheet[:31]
    ws.append(header)
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for row in rows:
        ws.append([v if isinstance(v, (int, float)) and not isinstance(v, bool) else _cell(v) for v in row])
    ws.freeze_panes = "A2"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _yes_no(lang: str, value: bool | None) -> str:
    return t(lang, "export_yes") if value else t(lang, "export_no")


def questions_table(rows: list[QuestionRow], classifier: AreaClassifier | None = None,
                    lang: str = "it") -> tuple[list[str], list[list]]:
    """Header and rows of the questions export: Rome times, the console's words for channel and outcome."""
    out = []
    for r in rows:
        area = classifier.area(r) if classifier else r.area
        area_name = classifier.names.get(area, "") if classifier and area is not None else ""
        out.append([when(r.created_at, "%d/%m/%Y %H:%M:%S"), channel_name(lang, r.channel), r.language or "",
                    r.question, _yes_no(lang, r.answered), "" if area is None else area, area_name,
                    "; ".join(f"[{s.get('n')}] {s.get('document')} {s.get('section', '')}".strip()
                              for s in r.sources)])
    keys = ["date", "channel", "language", "question", "answered", "area", "area_name", "sources"]
    return [t(lang, f"export_col_{k}") for k in keys], out


def feedback_table(items: list[FeedbackItem], lang: str = "it") -> tuple[list[str], list[list]]:
    out = [[when(f.created_at, "%d/%m/%Y %H:%M:%S"), channel_name(lang, f.channel),
            t(lang, "export_rating_up") if f.rating > 0 else t(lang, "export_rating_down"), f.comment or "",
            f.question, f.answer, "; ".join(f"[{s.get('n')}] {s.get('document')}" for s in f.sources),
            _yes_no(lang, f.reviewed), f.reviewed_by or ""] for f in items]
    keys = ["date", "channel", "rating", "comment", "question", "answer", "sources", "reviewed", "reviewed_by"]
    return [t(lang, f"export_col_{k}") for k in keys], out


def channel_name(lang: str, channel: str | None) -> str:
    """'web' / 'telegram' as the console says them; an unknown channel as it is."""
    names = strings(lang)
    return names.get(f"channel_{channel}", channel or "")


def questions_csv(rows: list[QuestionRow], classifier: AreaClassifier | None = None, lang: str = "it") -> str:
    return _csv(*questions_table(rows, classifier, lang))


def feedback_csv(items: list[FeedbackItem], lang: str = "it") -> str:
    return _csv(*feedback_table(items, lang))
