"""Question analysis (kinds, year, required focus) and plan facts from the real corpus."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from retrieval.answer import Bullet, content_words, near_duplicate, render
from retrieval.corpus import load_corpus
from retrieval.facts import build_facts, strip_label
from retrieval.index import chunk_record
from retrieval.question import analyse, asks_achievement, rank_direction, required_focus

CORPUS = Path(__file__).resolve().parents[1] / "corpus"


@pytest.mark.parametrize("question,kind", [
    ("Quale settore ha avuto il risultato peggiore?", "rank"),
    ("Which area did best last year?", "rank"),
    ("Quanti obiettivi ha l'area sociale?", "quantity"),
    ("How much money went into the smart city?", "quantity"),
    ("Chi ha guidato il laboratorio?", "who"),
    ("Who signed the agreement?", "who"),
    ("Quando si è svolto l'incontro?", "when"),
    ("When did the workshop take place?", "when"),
    ("Il piano del traffico è stato adottato?", "status"),
    ("Was the cycling network completed?", "status"),
    ("Cosa è in programma per le periferie?", "planned"),
    ("What will the city do for the seaside?", "planned"),
    ("C'è un'iniziativa per i cani?", "yesno"),
    ("Is there anything for families?", "yesno"),
    ("Politiche culturali?", "overview"),
])
def test_question_kinds(question, kind):
    assert analyse(question).kind == kind


def test_year_makes_a_planned_question():
    analysis = analyse("e nel 2027 cosa succede con il museo?")
    assert analysis.year == 2027 and analysis.has("planned")


def test_achievement_is_a_kind_of_quantity_question():
    assert asks_achievement("che percentuale di realizzazione ha avuto l'area mobilità?")
    assert asks_achievement("what was the average score of the culture area?")
    assert not asks_achievement("quanto costa il parcheggio in centro?")
    assert not asks_achievement("how many km of cycle lanes are there?")


def test_rank_direction_both_languages():
    assert rank_direction("quale area è andata peggio, la più bassa?") == "low"
    assert rank_direction("which area was the weakest?") == "low"
    assert rank_direction("quali aree sono al 100%?") == "high"


@pytest.mark.parametrize("question,language,focus", [
    ("a che ora apre il cimitero?", "it", "a che ora"),
    ("come si paga una multa per divieto di sosta?", "it", "multa"),
    ("What are the opening hours of the museum?", "en", "opening hours"),
    ("lavori in via Roma quando finiscono?", "it", "roma"),
    ("lavori in viale della Libertà quando finiscono?", "it", "liberta"),
    ("ciao? lavori in via Roma quando finiscono", "it", "roma"),
])
def test_required_focus(question, language, focus):
    assert focus in required_focus(question, language)


def test_no_required_focus_in_a_plan_question():
    assert required_focus("Cosa prevede il DUP per la mobilità sostenibile?", "it") == []


def test_a_street_in_a_remark_after_the_question_is_not_required():
    # The question is the traffic plan; the street is where the asker suffers it.
    assert required_focus("c'è un piano per il traffico a lecce? in viale della libertà è un inferno", "it") == []


@given(st.text(max_size=300), st.text(max_size=300))
def test_analysis_never_fails_on_free_text(text, previous):
    analysis = analyse(text)
    assert analysis.kind in analysis.kinds
    assert isinstance(required_focus(text, "it"), list)
    followed = analysis.following(previous)  # a follow-up framed by any previous message
    assert followed.kind in followed.kinds and set(analysis.kinds) - {"overview"} <= set(followed.kinds)


@pytest.fixture(scope="module")
def facts():
    report = load_corpus(CORPUS)
    return build_facts({c.id: chunk_record(c) for c in report.chunks})


def test_facts_counts(facts):
    assert len({o.area for o in facts.plan.values()}) == 13
    assert len(facts.plan) == 45
    assert sum(len(o.activities) for o in facts.plan.values()) > 150
    assert len(facts.areas) == 10 and len(facts.measured_areas()) == 9
    assert facts.overall is not None and facts.overall[0] == pytest.approx(99.39)


def test_facts_planned_years_and_realised(facts):
    marked = [a for o in facts.plan.values() for a in o.activities if a.years]
    assert any(a.years == [2025] for a in marked) and any(a.years == [2025, 2026, 2027] for a in marked)
    low = min(facts.measured_areas(), key=lambda a: a.realised)
    assert low.realised == pytest.approx(95.0)
    assert all(f.passage for f in facts.results.values())


def test_facts_amount_with_unit(facts):
    money = [f for f in facts.figures if f.money]
    assert money and money[0].display("it") == "€ 15.659.005"
    assert money[0].display("en") == "€ 15,659,005"
    assert any(f.label == "Progetti" and f.value == 25 for f in facts.figures)


def test_facts_complete_list(facts):
    lst = next(x for x in facts.lists if x.intro.endswith("tra i seguenti Enti:"))
    assert "Università del Salento" in lst.items
    assert any(i.startswith("CNR") for i in lst.items) and len(lst.items) >= 6


def test_facts_people_and_dates(facts):
    people = [m.text for m in facts.mentions if m.kind == "person"]
    assert any("Camilla Perrone" in p for p in people)
    assert any(m.kind == "date" for m in facts.mentions)


def test_labels_stripped():
    assert strip_label("Benessere Ambientale: Potenziamento del TPL (attività di sviluppo)") == "Potenziamento del TPL"
    assert strip_label("OB. TRASV. - Aggiornamento sito web") == "Aggiornamento sito web"
    assert strip_label("Benessere Istituzionale e Sociale: X (attività di miglioramento; anni 2025)") == "X"


def test_near_duplicates_by_the_scorers_rule():
    a = content_words("Obiettivo strategico 2019-2024 7.6: Riattivazione del sistema park & ride")
    b = content_words("7.6 Riattivazione del sistema park & ride")
    assert near_duplicate(a, b)
    assert not near_duplicate(content_words("Bicipolitana e rete ciclabile"), content_words("Orari della ZTL"))


def test_render_keeps_the_layout():
    text = render("Lead.", [Bullet("uno", 1, "it", "planned", [2025])], [], "it")
    assert text.split("\n") == ["Lead.", "", "- uno [1]", "", "Fonti:"]


@pytest.mark.parametrize("question,yesno", [
    ("è previsto un nuovo parcheggio?", True),
    ("la ztl cambia orari?", True),
    ("ma la ztl cambia orari? lavoro in centro", True),
    ("e per le bici?", False),  # "e" is "and": folded, "è" would read the same
    ("e lo sport?", False),  # a follow-up naming a topic
    ("il pums?", False),
])
def test_yes_no_openings(question, yesno):
    assert analyse(question).has("yesno") is yesno


def test_a_followup_keeps_its_previous_questions_frame():
    followed = analyse("e il commercio?").following("quanto ha preso il turismo nel 2023?")
    assert followed.has("quantity") and followed.year == 2023
    assert "quanto" in followed.words("e il commercio?")
