"""Corpus folder -> chunks. Known document shapes get their own parser; anything else the generic one."""

from __future__ import annotations

import logging
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from retrieval.chunks import Chunk, slug
from retrieval.parsers.dup import parse_dup
from retrieval.parsers.generic import UnreadableDocument, read_generic
from retrieval.parsers.prose import group_paragraphs, paragraphs
from retrieval.parsers.report import parse_report

log = logging.getLogger(__name__)

SUPPORTED = {".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx"}
DUP_ACTIVITIES_PER_CHUNK = 9


@dataclass
class CorpusReport:
    chunks: list[Chunk] = field(default_factory=list)
    documents: dict[str, dict] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def load_catalog(corpus_dir: Path) -> dict[str, dict]:
    path = corpus_dir / "catalog.toml"
    if not path.exists():
        return {}
    with path.open("rb") as fh:
        return tomllib.load(fh)


def document_id(path: Path) -> str:
    name = path.name
    for suffix in (".it.txt", ".en.txt"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def guess_parser(raw: str) -> str:
    if "AREA STRATEGICA :" in raw and "OBIETTIVI STRATEGICI :" in raw:
        return "dup"
    if "LIVELLO MEDIO GENERALE" in raw and "\t" in raw:
        return "performance_report"
    return "generic"


def load_corpus(corpus_dir: Path, detect_language=None) -> CorpusReport:
    """Parse every supported file; a file that cannot be read is reported and skipped."""
    if not corpus_dir.is_dir():
        raise FileNotFoundError(f"corpus directory not found: {corpus_dir}")
    catalog = load_catalog(corpus_dir)
    report = CorpusReport()
    for path in sorted(corpus_dir.iterdir()):
        if not path.is_file() or path.name.startswith(".") or path.name == "catalog.toml":
            continue
        if path.suffix.lower() not in SUPPORTED:
            report.skipped.append((path.name, f"unsupported file type {path.suffix or '(none)'}"))
            continue
        try:
            chunks, info = parse_file(path, catalog.get(path.name, {}), detect_language)
        except (UnreadableDocument, UnicodeDecodeError, OSError, ValueError) as exc:
            log.warning("skipping %s: %s", path.name, exc)
            report.skipped.append((path.name, str(exc)))
            continue
        report.chunks.extend(chunks)
        report.documents[info["id"]] = info
    return report


def parse_file(path: Path, entry: dict, detect_language=None) -> tuple[list[Chunk], dict]:
    doc_id = document_id(path)
    parser = entry.get("parser")
    raw = None
    if parser is None and path.suffix.lower() in {".txt", ".md", ".markdown"}:
        raw = path.read_bytes().decode("utf-8", errors="replace")
        parser = guess_parser(raw)
    parser = parser or "generic"
    if parser != "generic" and raw is None:
        raw = path.read_text(encoding="utf-8")
    source = raw or ""  # the generic parser reads the file itself
    period = entry.get("period")
    period_years = list(range(period[0], period[1] + 1)) if period else []
    base = {"source_file": path.name, "doc_kind": parser, "period_years": period_years}
    if parser == "dup":
        title = entry.get("title", "DUP – Obiettivi strategici")
        chunks = dup_chunks(doc_id, title, source, base)
        language = entry.get("language", "it")
    elif parser == "performance_report":
        report = parse_report(source)
        title = entry.get("title", report.title)
        chunks = report_chunks(doc_id, title, report, base)
        language = entry.get("language", "it")
    elif parser == "prose":
        title = entry["title"] if "title" in entry else paragraphs(source)[0]
        language = entry.get("language") or _detect(detect_language, source)
        chunks = [
            _chunk(doc_id, title, f"§{i}", body, language, base)
            for i, body in enumerate(group_paragraphs(paragraphs(source)), start=1)
        ]
    else:
        title, text, pieces = read_generic(path)
        title = entry.get("title", title)
        language = entry.get("language") or _detect(detect_language, text)
        chunks = [_chunk(doc_id, title, f"§{i}", body, language, base) for i, body in enumerate(pieces, start=1)]
    if parser in ("dup", "performance_report"):
        for c in chunks:
            c.language = language
    if not chunks:
        raise UnreadableDocument("no passages found")
    info = {"id": doc_id, "title": title, "language": language, "source_file": path.name, "parser": parser,
            "chunks": len(chunks)}
    return chunks, info


def _detect(detect_language, text: str) -> str:
    return detect_language(text[:2000]) if detect_language else "it"


def _chunk(
    doc_id: str, title: str, section: str, body: str, language: str, meta: dict, key: str | None = None
) -> Chunk:
    text = f"{title}\n{section}\n{body}" if section and not section.startswith("§") else f"{title}\n{body}"
    return Chunk(
        id=f"{doc_id}:{key or slug(section)}",
        document=doc_id,
        title=title,
        section=section,
        text=text,
        language=language,
        metadata=dict(meta),
    )


def dup_chunks(doc_id: str, title: str, raw: str, base: dict) -> list[Chunk]:
    objectives = parse_dup(raw)
    chunks: list[Chunk] = []
    by_area: dict[int, list] = {}
    for obj in objectives:
        by_area.setdefault(obj.area_number, []).append(obj)
    for area_no in sorted(by_area):
        objs = by_area[area_no]
        area_label = f"Area strategica {area_no} – {objs[0].area_name}"
        lines = [f"Obiettivi strategici dell'area {area_no} ({len(objs)}):"]
        lines += [f"- {area_no}.{o.number}: {o.text}" for o in objs]
        chunks.append(_chunk(doc_id, title, area_label, "\n".join(lines), "it",
                             {**base, "area": area_no, "area_name": objs[0].area_name, "level": "area"},
                             key=f"area-{area_no}"))
        for obj in objs:
            section = f"{area_label} › Obiettivo strategico {area_no}.{obj.number}"
            groups = [obj.activities[i : i + DUP_ACTIVITIES_PER_CHUNK]
                      for i in range(0, len(obj.activities), DUP_ACTIVITIES_PER_CHUNK)] or [[]]
            for part, acts in enumerate(groups, start=1):
                body = [f"Obiettivo strategico {area_no}.{obj.number}: {obj.text}"]
                if acts:
                    body.append("Attività:")
                for act in acts:
                    details = [f"attività di {act.kind}"] if act.kind else []
                    if act.years:
                        details.append("anni " + ", ".join(str(y) for y in act.years))
                    body.append(f"- {act.title}" + (f" ({'; '.join(details)})" if details else ""))
                part_section = section if len(groups) == 1 else f"{section} (parte {part}/{len(groups)})"
                meta = {
                    **base,
                    "area": area_no,
                    "area_name": obj.area_name,
                    "objective": f"{area_no}.{obj.number}",
                    "objective_text": obj.text,
                    "marked_years": sorted({y for a in acts for y in a.years}),
                    "activities": len(acts),
                    "level": "objective",
                }
                key = f"obj-{area_no}-{obj.number}" + (f"-p{part}" if len(groups) > 1 else "")
                chunks.append(_chunk(doc_id, title, part_section, "\n".join(body), "it", meta, key=key))
    return chunks


def report_chunks(doc_id: str, title: str, report, base: dict) -> list[Chunk]:
    chunks: list[Chunk] = []
    note = report.notes[0] if report.notes else None
    intro = [p for p in report.preamble]
    if report.mandate:
        intro.append(f"Linee programmatiche di mandato: {report.mandate.split('MANDATO')[-1].strip()}")
    chunks.append(_chunk(doc_id, title, "Introduzione", "\n".join(intro), "it", {**base, "level": "document"},
                         key="intro"))
    summary = []
    for area in report.areas:
        star = "*" if area.starred else ""
        label = f"Area {area.number} – {area.name}{star}"
        area_meta = {**base, "area": area.number, "area_name": area.name, "level": "area"}
        lines = ["Obiettivi strategici 2019-2024 dell'area e realizzazione degli obiettivi operativi 2023:"]
        for obj in area.objectives:
            lines.append(f"- {obj.number} {obj.text} ({_realised_label(obj.realised)})")
        media = area.media if area.media else "non indicata"
        lines.append(f"MEDIA di realizzazione dell'area nel 2023: {media}")
        if area.starred and note:
            lines.append(f"Nota (*): {note}")
            area_meta["note"] = note
        if area.media:
            area_meta["realised"] = area.media
        summary.append(f"- Area {area.number} {area.name}{star}: media {media}")
        chunks.append(_chunk(doc_id, title, label, "\n".join(lines), "it", area_meta, key=f"area-{area.number}"))
        for obj in area.objectives:
            body = [f"Obiettivo strategico 2019-2024 {obj.number}: {obj.text}"]
            if obj.operational:
                body.append("Obiettivi operativi di sviluppo 2023:")
                body += [f"- {item}" for item in obj.operational]
            body.append(f"Realizzazione degli obiettivi operativi 2023: {_realised_label(obj.realised)}")
            meta = {**base, "area": area.number, "area_name": area.name, "objective": obj.number,
                    "objective_text": obj.text, "level": "objective"}
            if obj.realised and obj.realised != "/":
                meta["realised"] = obj.realised
            if area.starred and note:
                body.append(f"Nota (*): {note}")
                meta["note"] = note
            chunks.append(_chunk(doc_id, title, f"{label} › Obiettivo {obj.number}", "\n".join(body), "it", meta,
                                 key=f"obj-{obj.number.replace('.', '-')}"))
    if report.global_level:
        body = [f"{report.global_label}: {report.global_level}", "Media di realizzazione per area:"] + summary
        chunks.append(_chunk(doc_id, title, "Livello medio generale", "\n".join(body), "it",
                             {**base, "realised": report.global_level, "level": "document"},
                             key="livello-medio-generale"))
    return chunks


def _realised_label(value: str | None) -> str:
    if value is None:
        return "percentuale non indicata"
    if value == "/":
        return "non misurata (/)"
    return f"{value}%"
