"""Citizens inflect and glue words: the glossary still finds its entry (and keeps the question's own form)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

import prompts
from retrieval.glossary import expand


def test_inflected_and_glued_italian_forms_reach_their_entry():
    assert "anziani" in expand("mio padre è anziano e vive solo").matched
    glued = expand("ci sono nuove pisteciclabili?")
    assert "piste ciclabili" in glued.matched and "pisteciclabili" in glued.matched  # the form the evidence reads
    assert "Bicipolitana" in glued.italian


def test_english_terms_are_not_inflected():
    assert "rent" not in expand("a renta in the city").matched
    assert expand("help with rent").matched == ("rent",)


@given(st.text(max_size=300))
def test_any_text_expands_without_error(text):
    ex = expand(text)
    assert len(set(ex.matched)) == len(ex.matched)


def test_objective_counts_agree_in_number():
    assert prompts.text("it", "objectives_one") == "un obiettivo"
    assert prompts.text("en", "objectives_many", n=3) == "3 objectives"
    lead = prompts.text("it", "lead_overview_plan", planned=prompts.text("it", "objectives_one"))
    assert "1 obiettivi" not in lead and "un obiettivo" in lead
