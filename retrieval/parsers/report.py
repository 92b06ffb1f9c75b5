"""Relazione sulla Performance 2023: a ragged tab table with HTML inside cells.

Columns shift from row to row, so cells are read by what they look like (an objective number
such as 7.5, a percentage, a MEDIA marker) rather than by position. Area numbers come from the
objective number itself, because one area's name appears only after its first rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from retrieval.text import clean, strip_html

OBJ_NUM = re.compile(r"^(\d{1,2})\.(\d{1,2})\.?$")
AREA_NUM = re.compile(r"^\d{1,2}$")
PERCENT = re.compile(r"^(\d{1,3}(?:[.,]\d+)?|/)$")
ITEM_RE = re.compile(r"<(?:p|li)[^>]*>(.*?)</(?:p|li)>", re.IGNORECASE | re.DOTALL)


@dataclass
class ReportObjective:
    number: str
    area_number: int
    text: str
    operational: list[str] = field(default_factory=list)
    realised: str | None = None  # "100", "99,52" or "/" (not measured), as printed


@dataclass
class ReportArea:
    number: int
    name: str = ""
    starred: bool = False
    media: str | None = None
    objectives: list[ReportObjective] = field(default_factory=list)


@dataclass
class Report:
    title: str
    preamble: list[str]
    mandate: str
    areas: list[ReportArea]
    global_level: str | None
    global_label: str
    notes: list[str]


def html_items(cell: str) -> list[str]:
    """Split a cell's <p>/<li> markup into items; plain cells are one item."""
    items = [strip_html(m) for m in ITEM_RE.findall(cell)]
    items = [i.lstrip("- ").strip() for i in items if strip_html(i)]
    return items or ([strip_html(cell)] if strip_html(cell) else [])


def _cell_text(cell: str) -> str:
    items = html_items(cell)
    if len(items) <= 1:
        return items[0] if items else ""
    return items[0].rstrip(":") + ": " + "; ".join(items[1:])


def parse_report(raw: str) -> Report:
    lines = raw.split("\n")
    areas: dict[int, ReportArea] = {}
    names: dict[int, tuple[str, bool]] = {}
    preamble: list[str] = []
    notes: list[str] = []
    mandate = ""
    global_level: str | None = None
    global_label = ""
    current: ReportObjective | None = None
    last_area: int | None = None
    in_table = False

    def area(n: int) -> ReportArea:
        return areas.setdefault(n, ReportArea(n))

    for raw_line in lines:
        line = raw_line.rstrip("\r")
        if "\t" not in line:
            text = clean(line.replace("**", "").replace("\\*", "*"))
            if not text:
                continue
            if text.startswith("##"):
                mandate = text.lstrip("# ").strip()
                in_table = True
            elif text.startswith("*") and in_table:
                notes.append(text.lstrip("* ").strip())
            elif not in_table:
                preamble.append(text)
            continue
        cells = [c.strip() for c in line.split("\t")]
        nonempty = [(k, c) for k, c in enumerate(cells) if strip_html(c)]
        if not nonempty:
            continue
        plain = [strip_html(c) for _, c in nonempty]
        if plain[0].upper().startswith("AREA STRATEGICA"):
            continue  # the table header
        if any("LIVELLO MEDIO GENERALE" in p.upper() for p in plain):
            global_label = next(p for p in plain if "LIVELLO MEDIO GENERALE" in p.upper())
            global_level = next((p for p in plain if PERCENT.match(p)), None)
            continue
        if any(p.upper() == "MEDIA" for p in plain):
            idx = next(i for i, p in enumerate(plain) if p.upper() == "MEDIA")
            value = next((p for p in plain[idx + 1 :] if PERCENT.match(p)), None)
            if last_area is not None:
                area(last_area).media = value
            current = None
            continue
        obj_idx = next((i for i, p in enumerate(plain) if OBJ_NUM.match(p)), None)
        if obj_idx is not None and (m := OBJ_NUM.match(plain[obj_idx])):
            area_no = int(m.group(1))
            _remember_area_name(names, plain[:obj_idx])
            rest = [c for _, c in nonempty[obj_idx + 1 :]]
            text = _cell_text(rest[0]) if rest else ""
            current = ReportObjective(f"{m.group(1)}.{m.group(2)}", area_no, text)
            for cell in rest[1:]:
                _take_cell(current, cell)
            area(area_no).objectives.append(current)
            last_area = area_no
            continue
        # No objective number: an area label, a wrapped objective text, or more operational objectives.
        labels = _remember_area_name(names, plain)
        if current is None:
            continue
        for _, cell in nonempty[labels:]:
            first = strip_html(cell)
            if first and first[0].islower() and not current.operational:
                current.text = f"{current.text} {first}".strip()
            else:
                _take_cell(current, cell)

    for number, (name, starred) in names.items():
        area(number).name = name
        area(number).starred = starred
    ordered = [areas[k] for k in sorted(areas)]
    title = next((p for p in preamble if p.upper().startswith("RELAZIONE")), "Relazione sulla Performance")
    year = next((p for p in preamble if p.upper().startswith("ANNO")), "")
    if year:
        title = f"{title.title()} {year.split()[-1]}"
    return Report(title, preamble, mandate, ordered, global_level, global_label, notes)


def _remember_area_name(names: dict[int, tuple[str, bool]], plain: list[str]) -> int:
    """Cells like ['Mobilità sostenibile', '7'] name an area; returns how many cells they used."""
    for i in range(len(plain) - 1):
        if AREA_NUM.match(plain[i + 1]) and not AREA_NUM.match(plain[i]) and not PERCENT.match(plain[i]):
            name = plain[i]
            names[int(plain[i + 1])] = (name.rstrip("*").strip(), name.endswith("*"))
            return i + 2
    return 0


def _take_cell(obj: ReportObjective, cell: str) -> None:
    value = strip_html(cell)
    if PERCENT.match(value):
        if obj.realised is None:
            obj.realised = value
        return
    obj.operational.extend(html_items(cell))
