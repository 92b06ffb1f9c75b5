"""The console's presentation: its texts (t/strings), highlighted passages (Markup), the topics chart
(inline SVG) and the CSV exports. The back office (sibyl/backoffice/) hands over plain data; everything
that is HTML, SVG or a spreadsheet cell is made here."""

from __future__ import annotations

import csv
import io
from html import escape

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


# --- CSV ----------------------------------------------------------------------------------------------
def _cell(value) -> str:
    """Spreadsheet-safe: a cell starting with = + - @ would run as a formula in Excel/LibreOffice."""
    if isinstance(value, (int, float)):
        return str(value)
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _csv(header: list[str], rows: list[list]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    for row in rows:
        writer.writerow([_cell(v) for v in row])
    return "\ufeff" + buf.getvalue()  # BOM: Excel opens UTF-8 (accents) correctly


def questions_csv(rows: list[QuestionRow], classifier: AreaClassifier | None = None) -> str:
    out = []
    for r in rows:
        area = classifier.area(r) if classifier else r.area
        out.append([r.created_at.isoformat(timespec="seconds"), r.channel, r.language or "", r.question,
                    "yes" if r.answered else "no", r.intent or "", "" if area is None else area,
                    "; ".join(f"[{s.get('n')}] {s.get('document')} {s.get('section', '')}".strip() for s in r.sources)])
    return _csv(["date", "channel", "language", "question", "answered", "intent", "dup_area", "sources"], out)


def feedback_csv(items: list[FeedbackItem]) -> str:
    out = [[f.created_at.isoformat(timespec="seconds"), f.channel, f.rating, f.comment or "", f.question, f.answer,
            "; ".join(f"[{s.get('n')}] {s.get('document')}" for s in f.sources), "yes" if f.reviewed else "no",
            f.reviewed_by or ""] for f in items]
    header = ["date", "channel", "rating", "comment", "question", "answer", "sources", "reviewed", "reviewed_by"]
    return _csv(header, out)
