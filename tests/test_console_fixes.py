"""Console fixes of issue 15 (item 6) over HTTP on the real app, index and store: search relevance cut-off and
labels, topics by the cited sources' areas, Italian-Excel CSV and XLSX, no English on Italian screens, Rome
times, 👎 warnings on drafts, and the dashboard (item 8)."""

from __future__ import annotations

import html
import re

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

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


# --- 2. topics from the cited sources' areas ----------------------------------------------------------------------
def _seeded(app, text: str, channel: str = "web") -> dict:
    return app.state.services.conversation.reply(text, channel=channel)


def test_topics_use_the_cited_sources_areas(client, app):
    from sibyl.backoffice.reports import AreaClassifier, QuestionRow

    classifier = AreaClassifier(app.state.services.pipeline)
    mobility = next(a for a, name in classifier.names.items() if "MOBILIT" in name.upper())
    for question in ("Cosa prevede il PUMS?", "Quali piste ciclabili sono previste?"):
        reply = _seeded(app, question)
        assert reply["answered"] and reply["sources"]
        row = QuestionRow("x", None, "web", "it", question, True, "question", reply["sources"])
        assert classifier.area(row) == mobility, (question, reply["sources"])
    # no cited source with an area: not classified, not guessed from the words
    assert classifier.area(QuestionRow("y", None, "web", "it", "mobilità sostenibile", False, "abstain", [])) is None


# --- 3. CSV for Italian Excel, XLSX --------------------------------------------------------------------------------
def test_csv_opens_in_italian_excel(client, app):
    import csv
    import io

    _seeded(app, "=HYPERLINK(\"http://x\") piste ciclabili")
    r = client.get("/operatore/esporta/domande.csv")
    assert r.status_code == 200 and r.content.startswith("\ufeff".encode())
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig")), delimiter=";"))
    assert rows and set(rows[0]) == {"Data e ora", "Canale", "Lingua", "Domanda", "Risposta data", "Area DUP",
                                     "Nome area DUP", "Fonti"}
    assert {row["Risposta data"] for row in rows} <= {"sì", "no"}
    assert any(row["Domanda"].startswith("'=HYPERLINK") for row in rows)
    assert re.fullmatch(r"\d\d/\d\d/\d{4} \d\d:\d\d:\d\d", rows[0]["Data e ora"])
    feedback = client.get("/operatore/esporta/feedback.csv")
    header = feedback.content.decode("utf-8-sig").splitlines()[0]
    assert header.split(";")[:3] == ["Data e ora", "Canale", "Valutazione"]


def test_xlsx_export_opens_with_openpyxl(client, app):
    import io

    from openpyxl import load_workbook

    _seeded(app, "=SUM(1;2) mobilità sostenibile")
    r = client.get("/operatore/esporta/domande.xlsx")
    assert r.status_code == 200 and "spreadsheetml" in r.headers["content-type"]
    sheet = load_workbook(io.BytesIO(r.content)).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:4] == ("Data e ora", "Canale", "Lingua", "Domanda")
    assert any(str(row[3]).startswith("'=SUM") for row in rows[1:])  # text, never a formula
    assert all(row[4] in ("sì", "no") for row in rows[1:])
    fb = load_workbook(io.BytesIO(client.get("/operatore/esporta/feedback.xlsx").content)).active
    assert next(fb.iter_rows(values_only=True))[2] == "Valutazione"
    assert client.get("/operatore/esporta/domande.xlsx", params={"dal": "ieri"}).status_code == 422
    topics = client.get("/operatore/temi").text
    link = re.search(r'id="export-questions-xlsx"', topics) and re.search(r'href="([^"]+domande\.xlsx[^"]*)"', topics)
    assert link and client.get(html.unescape(link.group(1))).status_code == 200


# --- 4. no English on Italian screens; Rome times ---------------------------------------------------------------------
@pytest.mark.parametrize("params,reason", [({"q": "x", "year": "duemila"}, "l'anno deve essere un numero"),
                                           ({"q": "x", "objective": "4.a"}, "l'obiettivo si scrive come 4 o 4.2"),
                                           ({"q": "x", "realised_min": "90", "realised_max": "10"},
                                            "la % di realizzazione minima supera la massima")])
def test_filter_errors_are_italian(client, params, reason):
    r = client.get("/operatore/cerca", params=params)
    assert r.status_code == 422 and reason in html.unescape(r.text)


def test_range_errors_are_italian(client):
    r = client.get("/operatore/esporta/domande.csv", params={"dal": "ieri"})
    assert r.status_code == 422 and "AAAA-MM-GG" in r.json()["detail"]
    assert "la data di inizio è dopo quella di fine" in html.unescape(client.get(
        "/operatore/temi", params={"dal": "2025-02-01", "al": "2025-01-01"}).text)


def test_audit_log_reads_as_italian_text(client):
    client.get("/operatore/cerca", params={"q": "teatro <b>romano</b>", "year": "2023"})
    r = client.get("/operatore/registro", params={"action": "search"})
    row = re.search(r'<tr data-action="search">(.*?)</tr>', r.text, re.S).group(1)
    assert '<td class="action">Ricerca</td>' in row
    detail = re.search(r'<td class="detail">(.*?)</td>', row, re.S).group(1)
    assert "ricerca: teatro &lt;b&gt;romano&lt;/b&gt;" in detail and "filtri: anno 2023" in detail
    assert "{" not in detail and "'" not in detail and "q:" not in detail
    assert 'data-action="login"' not in r.text


def test_times_are_rome_across_dst():
    from datetime import datetime

    from api.operator.present import when

    assert when(datetime(2025, 1, 15, 12, 0)) == "15/01/2025 13:00"  # CET, UTC+1
    assert when(datetime(2025, 7, 15, 12, 0)) == "15/07/2025 14:00"  # CEST, UTC+2
    assert when(datetime(2025, 3, 30, 0, 59)) == "30/03/2025 01:59"  # just before the spring change
    assert when(datetime(2025, 3, 30, 1, 0)) == "30/03/2025 03:00"  # just after
    assert when(datetime(2025, 10, 26, 0, 30)) == "26/10/2025 02:30"  # first 02:30 (CEST)
    assert when(datetime(2025, 10, 26, 1, 30)) == "26/10/2025 02:30"  # second 02:30 (CET)
    assert when(None) == ""
    from sibyl.backoffice.documents import _when

    assert _when("2026-01-21T22:47:42+0000") == "21/01/2026 23:47"  # the documents table, CET
    assert _when("2026-07-21T22:47:42+0000") == "22/07/2026 00:47"  # CEST: the next day in Rome


def test_job_outcome_is_italian():
    from api.operator.present import job_outcome
    from sibyl.backoffice.documents import Job

    job = Job(1, "reindex", None, "mario", state="done", message="147 chunks, 6 documents",
              info={"indexed_chunks": 147, "indexed_documents": 6})
    assert job_outcome("it", job) == "Indicizzazione completata: 147 passaggi, 6 documenti."
    assert "chunks" not in job_outcome("it", job) and "147 passages, 6 documents" in job_outcome("en", job)


# --- 6. drafts for 👎 answers --------------------------------------------------------------------------------
def test_draft_warns_about_thumbs_down_and_shows_confidence(client, app):
    question = "Quali interventi per il verde pubblico sono previsti?"
    page = client.get("/operatore/bozza", params={"q": question}).text
    assert 'id="draft-downvoted"' not in page
    assert re.search(r'id="draft-confidence">\s*Affidabilità della bozza: \d+%', page)
    reply = _seeded(app, question)
    app.state.services.store.add_feedback(reply["session_id"], reply["message_id"], -1, "non c'è la data",
                                          channel="web")
    page = client.get("/operatore/bozza", params={"q": "interventi previsti per il verde pubblico"}).text
    warning = re.search(r'<div class="warn downvoted" id="draft-downvoted" role="alert">(.*?)</div>', page, re.S)
    assert warning and "1 volte con 👎" in warning.group(1) and "non c&#39;è la data" in warning.group(1)
    assert 'id="draft-confidence"' in page


# --- 7. dashboard ------------------------------------------------------------------------------------------
def test_dashboard_figures_and_drill_down(client, app):
    services = app.state.services
    before = client.get("/operatore/cruscotto")
    assert before.status_code == 200
    answered = _seeded(app, "Cosa prevede il PUMS per la mobilità?")
    _seeded(app, "Quando apre la piscina comunale di via Roma?", channel="telegram")
    _seeded(app, "quando apre la piscina comunale in via roma")
    services.store.add_feedback(answered["session_id"], answered["message_id"], 1, None, channel="web")
    case, _ = services.cases.open(answered["session_id"], services.store.messages(answered["session_id"]), "web", "it",
                                  email="a@example.org")
    r = client.get("/operatore/cruscotto")
    assert r.status_code == 200
    questions = int(re.search(r'id="kpi-questions"><span class="kpi-value">(\d+)<', r.text).group(1))
    pct = re.search(r'id="kpi-answered"><span class="kpi-value">(\d+)%', r.text)
    assert questions >= 3 and pct and 0 < int(pct.group(1)) < 100
    assert re.search(r'id="kpi-satisfaction"><span class="kpi-value">\d+%', r.text)
    pool = re.search(r'<li data-count="(\d+)"><details><summary><span class="question">([^<]*piscina[^<]*)<', r.text,
                     re.I)
    assert pool and int(pool.group(1)) == 2
    new_row = re.search(r'<tr data-status="nuovo">(.*?)</tr>', r.text, re.S).group(1)
    assert int(re.findall(r'<td class="num">(\d+)</td>', new_row)[0]) >= 1  # under one day old
    area = re.search(r'<tr data-area="(\d+)">\s*<td><a href="([^"]+)"', r.text)
    drill = client.get(area.group(2).replace("&amp;", "&"))
    assert drill.status_code == 200 and 'id="dash-drill"' in drill.text
    assert client.get("/operatore/cruscotto", params={"area": "999"}).status_code == 404
    assert client.get("/operatore/cruscotto", params={"dal": "ieri"}).status_code == 422
    assert case.number


@pytest.mark.parametrize("path", ["/operatore/cruscotto", "/operatore/esporta/domande.xlsx",
                                  "/operatore/esporta/feedback.xlsx"])
def test_new_pages_need_a_session(app, client, path):
    anon = TestClient(app)
    r = anon.get(path)
    assert r.status_code == 401 and r.json()["code"] == "login_required"


@pytest.mark.parametrize("area", ["²", "-1", "x" * 300, "4.5", "none"])
def test_dashboard_odd_area_is_a_clear_4xx(client, area):
    r = client.get("/operatore/cruscotto", params={"area": area})
    assert r.status_code in (200, 404) and "Traceback" not in r.text
    assert r.status_code == 404 or area == "none"
