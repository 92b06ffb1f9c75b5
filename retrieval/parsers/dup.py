"""DUP 2025-2027 strategic objectives: area/objective headers followed by a tab table of activities.

The export is messy in known ways: some headers are bold markdown and wrap onto a second line,
one block has its table laid out one cell per line, rows repeat, and a row may lose its leading
tab. Everything here tolerates those shapes instead of assuming a clean table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from retrieval.text import clean, fold, strip_html

AREA_RE = re.compile(r"^AREA STRATEGICA\s*:\s*(\d+)\s*-\s*(.*)$")
OBJ_RE = re.compile(r"^OBIETTIVI STRATEGICI\s*:\s*(\d+)\s*-\s*(.*)$")
KIND_RE = re.compile(r"attivit[aà]\s+di\s+(sviluppo|miglioramento)", re.IGNORECASE)
YEAR_RE = re.compile(r"^(20\d\d)$")
MARK = "\u25a0"  # ■


@dataclass
class Activity:
    title: str
    kind: str | None
    years: list[int] = field(default_factory=list)


@dataclass
class Objective:
    area_number: int
    area_name: str
    number: int
    text: str
    activities: list[Activity] = field(default_factory=list)

    def add(self, activity: Activity) -> None:
        key = fold(clean(activity.title))
        for existing in self.activities:
            if fold(clean(existing.title)) == key:
                existing.years = sorted(set(existing.years) | set(activity.years))
                existing.kind = existing.kind or activity.kind
                return
        self.activities.append(activity)


def _is_header_start(line: str) -> bool:
    return bool(AREA_RE.match(line) or OBJ_RE.match(line))


def parse_dup(raw: str) -> list[Objective]:
    lines = [ln.replace("**", "").rstrip("\r") for ln in raw.split("\n")]
    objectives: dict[tuple[int, int], Objective] = {}
    order: list[tuple[int, int]] = []
    area: tuple[int, str] | None = None
    current: Objective | None = None
    kind: str | None = None
    year_cols: list[int] = []
    i = 0
    while i < len(lines):
        line = lines[i].strip(" ")
        stripped = line.strip()
        header = AREA_RE.match(stripped) or OBJ_RE.match(stripped)
        if header:
            # A wrapped header continues on the following plain lines (no tab, no new header).
            text = header.group(2)
            j = i + 1
            while j < len(lines):
                nxt = lines[j].strip()
                if not nxt or "\t" in lines[j] or _is_header_start(nxt) or KIND_RE.search(nxt):
                    break
                text += " " + nxt
                j += 1
            text = clean(text)
            if AREA_RE.match(stripped):
                area = (int(header.group(1)), text)
            elif area is not None:
                key = (area[0], int(header.group(1)))
                if key not in objectives:
                    objectives[key] = Objective(area[0], area[1], key[1], text)
                    order.append(key)
                current = objectives[key]
                kind = None
                year_cols = []
            i = j
            continue
        if current is None or not stripped:
            i += 1
            continue
        if "\t" in lines[i]:
            cells = [c.strip() for c in lines[i].split("\t")]
            years_here = [int(c) for c in cells if YEAR_RE.match(c)]
            if years_here and not any(strip_html(c) and not YEAR_RE.match(c) for c in cells):
                year_cols = years_here
                i += 1
                continue
            _table_row(current, cells, kind, year_cols)
            kind = _row_kind(cells) or kind
        else:
            # One cell per line: a kind line, a title line, bare year lines with no marks.
            m = KIND_RE.search(stripped)
            if m and len(strip_html(stripped)) < 40:
                kind = m.group(1).lower()
            elif YEAR_RE.match(stripped):
                year_cols.append(int(stripped))
            elif stripped != MARK:
                _append(current, Activity(strip_html(stripped), kind))
        i += 1
    return [objectives[k] for k in order]


def _row_kind(cells: list[str]) -> str | None:
    m = KIND_RE.search(cells[0]) if cells else None
    return m.group(1).lower() if m else None


def _table_row(obj: Objective, cells: list[str], kind: str | None, year_cols: list[int]) -> None:
    kind = _row_kind(cells) or kind
    start = 1 if (cells and (not cells[0] or _row_kind(cells))) else 0
    rest = cells[start:]
    if not rest or not strip_html(rest[0]):
        return
    title = strip_html(rest[0])
    marks = rest[1:]
    years = [year_cols[k] for k, cell in enumerate(marks[: len(year_cols)]) if MARK in cell]
    _append(obj, Activity(title, kind, years))


def _append(obj: Objective, activity: Activity) -> None:
    # A title ending with ':' was wrapped by the export: the next row is its continuation.
    if obj.activities and obj.activities[-1].title.endswith(":") and not activity.title.endswith(":"):
        last = obj.activities[-1]
        last.title = f"{last.title} {activity.title}"
        last.years = sorted(set(last.years) | set(activity.years))
        return
    obj.add(activity)
