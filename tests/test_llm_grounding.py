"""Grounding checks on language-model answers: citations, numbers, language (no index, no model)."""

from __future__ import annotations

import pytest

from retrieval.grounding import check, citations, number_forms, numbers

SOURCES = {
    1: "Relazione sulla Performance 2023\nArea 7 – Mobilità sostenibile\nMedia di realizzazione: 99,39%.",
    2: "DUP 2025-2027\nSpesa corrente prevista: 15.659.005 euro per la mobilità, di cui 10,00 milioni per il TPL.",
    3: "Smart City\nIl progetto ha coinvolto 120 cittadini nel 2021.",
}


def test_citation_forms_are_parsed():
    assert citations("a [1] b [2][3] c [1, 3] d [fonte 2] e [Source 1]") == [1, 2, 3, 1, 3, 2, 1]
    assert citations("nel [2025] e nel 2026") == []  # a bracketed year is not a source number


def test_numbers_compare_without_separators():
    assert number_forms("99,39") == number_forms("99.39") == {"9939"}
    assert number_forms("15.659.005") == number_forms("15659005") == {"15659005"}
    assert "10" in number_forms("10,00") and "1" not in number_forms("1.000")
    assert numbers("1. Primo punto [1]\n2) Secondo, nel 2023 [2]") == ["2023"]  # list numbering and [n] skipped
    assert numbers("Missione M1C1 del PNRR") == []  # codes glued to letters are names


def test_grounded_answer_passes():
    text = ("Nel 2023 l'area Mobilità sostenibile è stata realizzata al 99.39% [1]. "
            "Per il periodo 2025-2027 il DUP prevede 15659005 euro [2].")
    result = check(text, SOURCES, "Quanto ha realizzato l'area mobilità?", "it")
    assert result.ok, result.reason
    assert result.cited == [1, 2] and not result.declined


def test_rounded_amount_with_zero_decimals_passes():
    assert check("Per il TPL sono previsti 10 milioni di euro [2].", SOURCES, "Quanto per il TPL?", "it").ok


def test_citation_of_a_source_not_given_fails():
    result = check("Il Comune ha realizzato il 99,39% degli obiettivi [4].", SOURCES, "domanda", "it")
    assert not result.ok and "not given" in result.reason and "[4]" in result.reason


def test_answer_without_citation_fails():
    result = check("Il Comune sta migliorando la mobilità sostenibile in città.", SOURCES, "domanda", "it")
    assert not result.ok and result.reason == "no citation"


@pytest.mark.parametrize("text", [
    "L'area è stata realizzata al 98,5% [1].",                  # invented percentage
    "Nel 2024 sono stati coinvolti 120 cittadini [3].",          # invented year
    "La spesa prevista è di 15.659.006 euro [2].",               # one digit off
    "La media di realizzazione è del 99,39% [2].",               # real number, but its source is not cited
])
def test_number_not_in_the_cited_sources_fails(text):
    result = check(text, SOURCES, "Quali sono i risultati?", "it")
    assert not result.ok and result.reason.startswith("numbers not in the cited sources")


def test_number_from_the_question_is_allowed():
    text = "Per il 2026 il DUP prevede di migliorare la mobilità [2]."
    assert check(text, SOURCES, "Cosa è previsto per il 2026?", "it").ok
    assert not check(text, SOURCES, "Cosa è previsto?", "it").ok


def test_wrong_language_fails_and_quotes_do_not_count():
    english = "In 2023 the sustainable mobility area reached 99.39% of its targets [1]."
    assert check(english, SOURCES, "What did the city achieve on mobility?", "en").ok
    result = check(english, SOURCES, "Cosa ha realizzato il Comune per la mobilità?", "it")
    assert not result.ok and "expected 'it'" in result.reason
    quoting = ("The performance report for 2023 says that the area achieved an average of 99,39% "
               "(“Media di realizzazione della mobilità sostenibile per le aree della città”) [1].")
    assert check(quoting, SOURCES, "What did the city achieve?", "en").ok


def test_declining_with_the_urp_passes_without_citation():
    text = ("Non lo so: le fonti non ne parlano. "
            "Ti suggerisco di rivolgerti all'Ufficio Relazioni con il Pubblico (URP).")
    result = check(text, SOURCES, "Quando apre la piscina comunale?", "it")
    assert result.ok and result.declined and result.cited == []


def test_empty_answer_fails():
    assert not check("   ", SOURCES, "domanda", "it").ok


def test_an_echo_of_the_instructions_fails_even_with_citations():
    rules = "Dopo ogni affermazione cita la fonte da cui viene con il suo numero tra parentesi quadre, per esempio [1]."
    echo = "Regole. " + rules + " Rispondi in italiano [1]."
    assert check(echo, SOURCES, "domanda", "it").ok  # citations, no numbers, Italian: only the echo check stops it
    result = check(echo, SOURCES, "domanda", "it", instructions="Sei Sibyl.\n" + rules)
    assert not result.ok and result.reason == "repeats the instructions"
    answer = "L'area Mobilità sostenibile è stata realizzata al 99,39% nel 2023, dice la fonte [1]."
    assert check(answer, SOURCES, "domanda", "it", instructions="Sei Sibyl.\n" + rules).ok
    tagged = '<fonte n="1">L\'area è stata realizzata al 99,39% [1].</fonte>'
    assert not check(tagged, SOURCES, "domanda", "it", instructions=rules).ok  # prompt markup echoed
