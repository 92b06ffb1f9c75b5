"""Parsers against the real seed files, and the generic loader against real files of each type."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from retrieval.corpus import load_corpus
from retrieval.parsers.dup import parse_dup
from retrieval.parsers.generic import UnreadableDocument, read_generic, sniff_kind
from retrieval.parsers.report import parse_report

CORPUS = Path(__file__).resolve().parents[1] / "corpus"


@pytest.fixture(scope="module")
def dup():
    return parse_dup((CORPUS / "dup-2025-2027-obiettivi-strategici.it.txt").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def report():
    return parse_report((CORPUS / "relazione-performance-2023.it.txt").read_text(encoding="utf-8"))


def _obj(dup, area, number):
    return next(o for o in dup if o.area_number == area and o.number == number)


def test_dup_has_every_area_and_objective_block(dup):
    raw = (CORPUS / "dup-2025-2027-obiettivi-strategici.it.txt").read_text(encoding="utf-8")
    assert {o.area_number for o in dup} == set(range(1, 14))
    assert len(dup) == raw.count("OBIETTIVI STRATEGICI :") == 45


def test_dup_known_objective_activities_and_years(dup):
    obj = _obj(dup, 1, 5)
    assert obj.area_name == "LECCE SMART CITY- GOVERNANCE E UFFICI PUBBLICI"
    titles = [a.title for a in obj.activities]
    assert "Sibyl Intelligenza Artificiale Chatbot e Voicebot" in titles
    sibyl = obj.activities[titles.index("Sibyl Intelligenza Artificiale Chatbot e Voicebot")]
    assert sibyl.kind == "sviluppo" and sibyl.years == [2025, 2026, 2027]
    assert obj.activities[0].years == [2025]  # "Transizione alla PA digitale" is marked for 2025 only


def test_dup_kinds_inherit_down_the_table(dup):
    acts = _obj(dup, 1, 1).activities
    assert acts[0].kind == "miglioramento"
    assert all(a.kind == "sviluppo" for a in acts[1:])


def test_dup_bold_wrapped_headers(dup):
    obj = _obj(dup, 13, 2)
    assert obj.area_name == "LECCE CHE SOGNA- LA VISIONE PER IL FUTURO 2054"
    assert obj.text == "Rivisitare la proposta di nuovo PUG rispettando la visione di una città barocca sul mare."
    assert "PUG (Piano Urbanistico Generale)" in [a.title for a in obj.activities]
    assert _obj(dup, 5, 3).text == "Implementare sistemi di videosorveglianza in aree strategiche."


def test_dup_one_cell_per_line_blocks(dup):
    assert [a.title for a in _obj(dup, 8, 1).activities] == ["Festività dei Santi Patroni"]
    assert [a.title for a in _obj(dup, 7, 4).activities] == ["Rassegne cinematografiche"]
    assert _obj(dup, 7, 4).activities[0].kind == "sviluppo"


def test_dup_duplicate_rows_kept_once(dup):
    titles = [a.title for a in _obj(dup, 1, 1).activities]
    assert titles.count("Attività di lotta all'evasione IMU/TARI e tributi minori- attività incentivata") == 1
    support = "Supporto tecnico ai Settori comunali per partecipazione a Bandi e/o procedure di Negoziazione"
    assert [a.title for a in _obj(dup, 1, 3).activities].count(support) == 1  # also the row with no leading tab


def test_dup_wrapped_activity_row_is_joined(dup):
    titles = [a.title for a in _obj(dup, 8, 12).activities]
    assert "Benessere Ambientale.PNRR M2C4 I2.1: Mitigazione del rischio idrogeologico" in titles


def test_report_rows_areas_and_levels(report):
    objectives = [o for a in report.areas for o in a.objectives]
    assert len(report.areas) == 10
    assert len(objectives) == 55
    assert report.global_level == "99,39"
    by = {o.number: o for o in objectives}
    assert (by["7.5"].realised == "100"
            and by["7.5"].operational == ["Benessere Ambientale: Potenziamento rete ciclabile"])
    assert by["1.13"].realised == "96,67"
    assert by["10.1"].realised == "90"
    assert by["5.6"].realised == "100"  # the % sits one column further right on this row
    assert by["9.1"].realised == "/"  # not measured
    assert by["9.2"].text.endswith("interventi urbanistici di rigenerazione delle aree commerciali cittadine;")
    assert len(by["1.1"].operational) == 3  # split out of <p> cells
    areas = {a.number: a for a in report.areas}
    assert areas[1].media == "99,52" and areas[10].media == "95,00" and areas[9].media is None
    assert areas[7].name == "Mobilità sostenibile"
    assert areas[9].name == "Commercio" and areas[9].starred
    assert report.notes == ["obiettivi in parte raggiunti negli anni precedenti."]


def test_chunks_stand_alone_with_metadata():
    corpus = load_corpus(CORPUS)
    assert not corpus.skipped
    assert set(corpus.documents) == {
        "dup-2025-2027-obiettivi-strategici", "relazione-performance-2023", "lecce-smart-city",
        "city-lab-area-vasta", "lecce-city4age-municipality"}
    ids = [c.id for c in corpus.chunks]
    assert len(ids) == len(set(ids))
    for chunk in corpus.chunks:
        assert chunk.text.startswith(chunk.title)
        meta = chunk.flat_metadata()
        assert meta["source_file"].endswith(".txt") and meta["document"] == chunk.document
        assert all(isinstance(v, (str, int, float, bool)) for v in meta.values())
    sibyl = next(c for c in corpus.chunks if c.id.endswith(":obj-1-5"))
    assert "Area strategica 1" in sibyl.section and "Obiettivo strategico 1.5" in sibyl.section
    assert sibyl.metadata["objective"] == "1.5" and sibyl.metadata["marked_years"] == [2025, 2026, 2027]
    level = next(c for c in corpus.chunks if c.id.endswith(":livello-medio-generale"))
    assert "99,39" in level.text and level.metadata["realised"] == "99,39"
    starred = next(c for c in corpus.chunks if c.id.endswith(":obj-9-3"))
    assert "obiettivi in parte raggiunti negli anni precedenti" in starred.text
    english = [c for c in corpus.chunks if c.document == "lecce-city4age-municipality"]
    assert english and all(c.language == "en" for c in english)


def _pdf_with_text(text: str) -> bytes:
    """A minimal one-page PDF with a Helvetica text stream (what a scanner-free export looks like)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % i + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for off in offsets:
        out.write(b"%010d 00000 n \n" % off)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def test_generic_loader_reads_each_type(tmp_path):
    import docx

    (tmp_path / "mercati.md").write_text("# Mercati rionali\n\nIl mercato di Piazza Libertini apre il giovedì.\n",
                                         encoding="utf-8")
    (tmp_path / "orari.html").write_text("<html><head><title>Orari URP</title><script>alert(1)</script></head>"
                                         "<body><h1>Orari</h1><p>Lo sportello apre alle 9.</p></body></html>")
    document = docx.Document()
    document.core_properties.title = "Regolamento verde"
    document.add_paragraph("Gli alberi monumentali sono tutelati dal regolamento.")
    document.save(tmp_path / "verde.docx")
    (tmp_path / "bilancio.pdf").write_bytes(_pdf_with_text("Bilancio partecipativo 2026 del Comune"))
    (tmp_path / "rotto.pdf").write_bytes(b"%PDF-1.4\n garbage that is not a pdf")
    (tmp_path / "immagine.txt").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "vuoto.md").write_text("   \n")

    corpus = load_corpus(tmp_path)
    by_doc = {c.document: c for c in corpus.chunks}
    assert "giovedì" in by_doc["mercati"].text and by_doc["mercati"].title == "Mercati rionali"
    assert by_doc["orari"].title == "Orari URP" and "alert" not in by_doc["orari"].text
    assert by_doc["verde"].title == "Regolamento verde" and "alberi monumentali" in by_doc["verde"].text
    assert "Bilancio partecipativo 2026" in by_doc["bilancio"].text
    skipped = dict(corpus.skipped)
    assert set(skipped) == {"rotto.pdf", "immagine.txt", "vuoto.md"}


def test_sniffing_is_by_content_not_name(tmp_path):
    assert sniff_kind(_pdf_with_text("x")) == "pdf"
    assert sniff_kind(b"<!DOCTYPE html><html></html>") == "html"
    assert sniff_kind(b"\x00\x01\x02") == "binary"
    fake = tmp_path / "not-really.docx"
    fake.write_text("plain words")
    title, text, pieces = read_generic(fake)
    assert pieces == ["plain words"]
    with pytest.raises(UnreadableDocument):
        bad = tmp_path / "x.pdf"
        bad.write_bytes(b"%PDF-1.7 nonsense")
        read_generic(bad)
