"""Console fixes of issue 15 (item 6) over HTTP on the real app, index and store: search relevance cut-off and
labels, topics by the cited sources' areas, Italian-Excel CSV and XLSX, no English on Italian screens, Rome
times, 👎 warnings on drafts, and the dashboard (item 8)."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from tests.operator_support import add_operator, isolated_settings, login

pytestmark = pytest.mark.slow

NONSENSE = ["xyzqwk", "ricetta del pasticciotto", "qwzzkx vvbnm"]
REAL = ["mobilità sostenibile", "piste ciclabili", "PUMS", "cycle lanes", "raccolta differenziata rifiuti"]


@pytest.fixture(scope="module")
def env(settings, built_index, tmp_path_factory):
    own = isolated_settings(settings, tmp_path_factory.mktemp("console-fixes"))
    add_operator(own)
    return own


@pytest.fixture(scope="module")
def app(env):
    from api.app import create_app

    return create_app(env)


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app) as c:  # one lifespan (index, store) for the module
        assert login(c).status_code == 303
        yield c


def shown_hits(page: str) -> list[str]:
    return re.findall(r'<li class="hit" data-id="([^"]+)"', page)


# --- 1. search: relevance cut-off, empty state, plain labels ---------------------------------------------------
@pytest.mark.parametrize("q", NONSENSE)
def test_nonsense_search_shows_the_empty_state(client, q):
    r = client.get("/operatore/cerca", params={"q": q})
    assert r.status_code == 200
    assert shown_hits(r.text) == []
    assert 'id="no-results"' in r.text and "Nessun passaggio abbastanza pertinente" in r.text


@pytest.mark.parametrize("q", REAL)
def test_real_search_keeps_results_with_plain_labels(client, q):
    r = client.get("/operatore/cerca", params={"q": q})
    assert len(shown_hits(r.text)) >= 5
    labels = re.findall(r'class="tag relevance relevance-(\w+)"[^>]*>([^<]+)<', r.text)
    assert len(labels) == len(shown_hits(r.text))
    assert {text for _, text in labels} <= {"molto pertinente", "pertinente", "poco pertinente"}
    assert labels[0][0] == "high"
    assert "punteggio" not in r.text and 'id="no-results"' not in r.text


def test_labels_in_english(client):
    r = client.get("/operatore/cerca", params={"q": "piste ciclabili", "lang": "en"})
    assert "highly relevant" in r.text and "molto pertinente" not in r.text
    client.get("/operatore/cerca", params={"lang": "it"})


def test_cutoff_keeps_every_passage_in_a_filtered_range(app):
    from sibyl.backoffice.search import ConsoleQuery, console_search, realised_value

    pipeline = app.state.services.pipeline
    expected = {cid for cid, rec in pipeline.index.records.items() if rec["document"] == "relazione-performance-2023"
                and (realised_value(rec["metadata"]) or 100) <= 99}
    query = ConsoleQuery.parse("realizzazione obiettivi", document="relazione-performance-2023", realised_max="99")
    assert expected and {h.id for h in console_search(pipeline, query).hits} == expected


@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(min_size=1, max_size=120))
def test_any_text_hits_are_above_the_cutoff(app, text):
    from retrieval.pipeline import BadQuestion
    from sibyl.backoffice.search import RELATIVE, ConsoleQuery, console_search

    pipeline = app.state.services.pipeline
    try:
        result = console_search(pipeline, ConsoleQuery.parse(text))
    except BadQuestion:
        return
    best = max((h.relevance for h in result.hits), default=0.0)
    assert all(h.relevance >= pipeline.config.abstain_threshold for h in result.hits)
    assert all(h.relevance >= RELATIVE * best for h in result.hits)
    assert all(h.relevance_level in ("high", "medium", "low") for h in result.hits)
