"""Retrieval against the real index (Chroma on disk + BM25) built from the seed corpus."""

from __future__ import annotations

import pytest

from retrieval.glossary import expand
from retrieval.language import detect_language
from retrieval.lexical import analyze, analyze_query
from retrieval.retriever import Filters


def _ids(result):
    return [h.id for h in result.hits]


def test_english_question_finds_italian_passages(pipeline):
    result = pipeline.search("Where does the city stand on bike lanes?", k=5)
    assert result.language == "en"
    assert any("Bicipolitana" in h.record["text"] or "ciclabil" in h.record["text"] for h in result.hits[:3])
    assert all(h.record["language"] == "it" for h in result.hits[:3])


def test_italian_question_ranks_the_structured_passage_first(pipeline):
    top = pipeline.search("attività per la Young Card", k=3).hits[0]
    assert top.record["metadata"]["objective"] == "11.4"


def test_acronyms_expand_from_the_glossary(pipeline):
    exp = expand("Cosa succede con la ZTL e il TPL?")
    assert "zona a traffico limitato" in exp.italian and "trasporto pubblico locale" in exp.italian
    assert "public transport" in exp.english
    hits = pipeline.search("PEBA?", k=3).hits
    assert any("barriere architettoniche" in h.record["text"] for h in hits)


def test_filters_restrict_results(pipeline):
    by_doc = pipeline.search("mobilità", k=8, filters=Filters(document="relazione-performance-2023"))
    assert by_doc.hits and all(h.record["document"] == "relazione-performance-2023" for h in by_doc.hits)
    by_area = pipeline.search("mobilità", k=8, filters=Filters(document="dup-2025-2027-obiettivi-strategici", area=4))
    assert by_area.hits and all(h.record["metadata"]["area"] == 4 for h in by_area.hits)
    by_year = pipeline.search("obiettivi", k=8, filters=Filters(year=2023))
    assert by_year.hits and all(h.record["document"] == "relazione-performance-2023" for h in by_year.hits)
    assert pipeline.search("obiettivi", k=5, filters=Filters(year=1990)).hits == []


def test_scores_are_ordered_and_k_respected(pipeline):
    hits = pipeline.search("protezione civile", k=4).hits
    assert len(hits) == 4
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_bm25_folds_accents_and_stems_both_languages():
    assert analyze("Mobilità sostenibile", "it") == analyze("mobilita SOSTENIBILE", "it")
    assert "ciclabil" in analyze_query("piste ciclabili")
    assert "transport" in analyze_query("transportation")


@pytest.mark.parametrize("text,expected", [
    ("Cosa fa il Comune per la mobilità?", "it"),
    ("What are the plans for the Villa Comunale?", "en"),
    ("e per le biciclette?", "it"),
    ("which of these are planned for 2026?", "en"),
    ("Is there a discount card for young people?", "en"),
    ("Quali sono le attività per l'emergenza abitativa?", "it"),
])
def test_language_detection(text, expected):
    assert detect_language(text) == expected


def test_language_detection_falls_back_on_uninformative_text():
    assert detect_language("PUMS?", fallback="en") == "en"
    assert detect_language("ZTL", fallback="it") == "it"
    assert detect_language("2026", fallback="en") == "en"
