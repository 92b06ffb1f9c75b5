"""URP operator console over HTTP: access control on every endpoint, CSRF, lockout, audit, and each feature
against the real index (a private copy) and the real conversation store."""

from __future__ import annotations

import contextlib
import csv
import io
import re
import subprocess
import sys
import tomllib
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from tests.operator_support import PASSWORD, add_operator, csrf_of, isolated_settings, login, login_token

pytestmark = pytest.mark.slow

# Every operator endpoint (method, path); test_route_list_is_complete keeps this in step with the router.
ENDPOINTS = [
    ("GET", "/operatore"),
    ("GET", "/operatore/"),
    ("GET", "/operatore/cerca?q=mobilita"),
    ("GET", "/operatore/passaggio/relazione-performance-2023:intro"),
    ("GET", "/operatore/bozza?q=mobilita"),
    ("GET", "/operatore/senza-risposta"),
    ("POST", "/operatore/senza-risposta/gestite"),
    ("GET", "/operatore/feedback"),
    ("POST", "/operatore/feedback/1/rivisto"),
    ("GET", "/operatore/temi"),
    ("GET", "/operatore/esporta/domande.csv"),
    ("GET", "/operatore/esporta/feedback.csv"),
    ("GET", "/operatore/esporta/domande.xlsx"),
    ("GET", "/operatore/esporta/feedback.xlsx"),
    ("GET", "/operatore/documenti"),
    ("POST", "/operatore/documenti"),
    ("POST", "/operatore/documenti/reindicizza"),
    ("POST", "/operatore/documenti/lecce-smart-city/rimuovi"),
    ("GET", "/operatore/documenti/lavori/1"),
    ("GET", "/operatore/registro"),
    ("GET", "/operatore/traduzioni"),
    ("POST", "/operatore/traduzioni"),
    ("POST", "/operatore/logout"),
]
PUBLIC = {("GET", "/operatore/login"), ("POST", "/operatore/login")}
POSTS = [(m, p) for m, p in ENDPOINTS if m == "POST" and p != "/operatore/logout"]

ABSTAIN_A = "Quando apre la piscina comunale di via Roma?"
ABSTAIN_B = "quando apre la piscina comunale in via roma"
ABSTAIN_OTHER = "Quanto costa il biglietto del treno per Bari?"


@pytest.fixture(scope="module")
def env(settings, built_index, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("operator")
    op_settings = isolated_settings(settings, tmp, operator_max_failed_logins=3, operator_lockout_minutes=1,
                                    upload_max_bytes=60_000)
    add_operator(op_settings)
    add_operator(op_settings, "lucia")
    return op_settings


@pytest.fixture(scope="module")
def app(env):
    from api.app import create_app

    return create_app(env)


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app) as c:  # runs the lifespan (index, store) for the whole module
        assert login(c).status_code == 303
        yield c


@pytest.fixture()
def anon(app, client):  # `client` first: the lifespan is running
    return TestClient(app)


@contextlib.contextmanager
def _client(app, **kwargs):
    """A second browser on the running app (no `with TestClient`: that would start another lifespan)."""
    c = TestClient(app, **kwargs)
    try:
        yield c
    finally:
        c.close()


def audit(app, action=None, username=None):
    return app.state.operator_console.operators.audit_log(1000, username=username, action=action)


def test_route_list_is_complete():
    from api.operator.routes import router

    declared = {(m, r.path) for r in router.routes for m in r.methods if m != "HEAD"}
    tested = {(m, p.split("?")[0]) for m, p in ENDPOINTS} | PUBLIC

    def shape(path):
        return re.sub(r"\{[^}]+\}", "{}", path)

    tested_shapes = {(m, re.sub(r"/(\d+|lecce-smart-city|relazione-performance-2023:intro)(?=/|$)", "/{}", p))
                     for m, p in tested}
    assert {(m, shape(p)) for m, p in declared} == tested_shapes


@pytest.mark.parametrize("method,path", ENDPOINTS)
def test_every_endpoint_needs_a_session(anon, method, path):
    r = anon.request(method, path, follow_redirects=False)
    assert r.status_code == 401, (method, path, r.status_code)
    assert r.json()["code"] == "login_required"
    forged = TestClient(anon.app, cookies={"sibyl_operator": "forged-token"})
    assert forged.request(method, path, follow_redirects=False).status_code == 401
    page = anon.request(method, path, headers={"accept": "text/html"}, follow_redirects=False)
    assert page.status_code == 401 and 'href="/operatore/login"' in page.text


def test_citizen_endpoints_stay_public(anon):
    assert anon.get("/").status_code == 200
    assert anon.get("/api/documents").status_code == 200
    assert anon.get("/operatore/login").status_code == 200


def test_login_cookie_flags_and_audit(app, env):
    with _client(app) as c:
        r = login(c)
        assert r.status_code == 303 and r.headers["location"] == "/operatore/cerca"
        cookie = [h for h in r.headers.get_list("set-cookie") if h.startswith("sibyl_operator=")][0].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/operatore" in cookie
        assert "secure" not in cookie  # plain http and the setting off
    with _client(app, base_url="https://testserver") as c:
        r = login(c)
        cookie = [h for h in r.headers.get_list("set-cookie") if h.startswith("sibyl_operator=")][0].lower()
        assert "secure" in cookie
    entry = audit(app, "login", "mario")[0]
    assert entry.ip and entry.at


def test_login_needs_its_csrf_token(app):
    with _client(app) as c:
        login_token(c)
        r = c.post("/operatore/login", data={"username": "mario", "password": PASSWORD, "csrf_token": "wrong"},
                   follow_redirects=False)
        assert r.status_code == 403
        r = c.post("/operatore/login", data={"username": "mario", "password": PASSWORD}, follow_redirects=False)
        assert r.status_code == 403
        assert c.get("/operatore/cerca").status_code == 401


def test_bad_login_then_lockout(app, env):
    from sibyl.backoffice.accounts import LoginState
    from sibyl.store import utcnow

    with _client(app) as c:
        r = login(c, "lucia", "wrong-password")
        assert r.status_code == 401 and "non corretti" in r.text
        assert login(c, "lucia", "wrong-again").status_code == 401
        assert login(c, "lucia", "wrong-thrice").status_code == 429  # max 3 failures
        r = login(c, "lucia", PASSWORD)
        assert r.status_code == 429 and "bloccato" in r.text  # the right password does not unlock early
        assert c.get("/operatore/cerca").status_code == 401
    assert len(audit(app, "login_failed", "lucia")) == 3
    assert audit(app, "login_locked", "lucia")
    ops = app.state.operator_console.operators
    with ops.Session() as db:  # the lock runs out
        db.get(LoginState, ("lucia", "testclient")).locked_until = utcnow() - timedelta(seconds=1)
        db.commit()
    with _client(app) as c:
        assert login(c, "lucia", PASSWORD).status_code == 303
    # an unknown user is locked the same way (no hint about which names exist)
    with _client(app) as c:
        codes = [login(c, "nobody", "x").status_code for _ in range(3)]
        assert codes == [401, 401, 429]


def test_sessions_expire():
    from sqlalchemy import create_engine

    from sibyl.backoffice.accounts import Operators, OperatorSession
    from sibyl.store import utcnow

    ops = Operators(create_engine("sqlite://"), session_hours=1)
    ops.add("anna", "password-lunga")
    session = ops.login("anna", "password-lunga")
    assert ops.session(session.token).username == "anna"
    assert ops.session("x" + session.token) is None
    with ops.Session() as db:
        for row in db.query(OperatorSession).all():
            row.expires_at = utcnow() - timedelta(seconds=1)
        db.commit()
    assert ops.session(session.token) is None


def test_logout_ends_the_session(app):
    with _client(app) as c:
        login(c)
        token = csrf_of(c)
        cookie = c.cookies.get("sibyl_operator", path="/operatore")
        assert c.post("/operatore/logout", data={}, follow_redirects=False).status_code == 403  # CSRF
        r = c.post("/operatore/logout", data={"csrf_token": token}, follow_redirects=False)
        assert r.status_code == 303
        assert c.get("/operatore/cerca").status_code == 401
        # the old cookie is dead server-side too
        assert TestClient(app, cookies={"sibyl_operator": cookie}).get("/operatore/cerca").status_code == 401
    assert audit(app, "logout", "mario")


@pytest.mark.parametrize("method,path", POSTS)
def test_every_post_needs_the_csrf_token(client, app, method, path):
    before = len(audit(app))
    r = client.post(path, data={}, follow_redirects=False)
    assert r.status_code == 403, (path, r.status_code)
    r = client.post(path, data={"csrf_token": "not-the-token"}, follow_redirects=False)
    assert r.status_code == 403
    r = client.post(path, headers={"X-CSRF-Token": "nope"}, follow_redirects=False)
    assert r.status_code == 403
    assert len(audit(app)) == before  # nothing happened
    # another operator's token does not work either
    with _client(app) as other:
        login(other, "mario")
        foreign = csrf_of(other)
    assert foreign != csrf_of(client)  # one token per session
    assert client.post(path, data={"csrf_token": foreign}, follow_redirects=False).status_code == 403


# --- search ---------------------------------------------------------------------------------------
def hits(page: str) -> list[tuple[str, str]]:
    return re.findall(r'<li class="hit" data-id="([^"]+)" data-area="([^"]*)">', page)


def test_search_with_filters_and_highlight(client, app):
    r = client.get("/operatore/cerca", params={"q": "mobilità sostenibile"})
    assert r.status_code == 200
    found = hits(r.text)
    assert found
    assert "<mark>mobilità</mark>" in r.text.lower() or "<mark>mobilita</mark>" in r.text.lower()
    assert "Content-Security-Policy" in r.headers

    dup = "dup-2025-2027-obiettivi-strategici"
    r = client.get("/operatore/cerca", params={"q": "mobilità sostenibile", "area": f"{dup}|4"})
    found = hits(r.text)
    assert found and all(cid.startswith(dup + ":") and area == "4" for cid, area in found)

    r = client.get("/operatore/cerca", params={"q": "mobilità", "objective": "4.3"})
    found = hits(r.text)
    assert found and all("obj-4-3" in cid for cid, _ in found)

    r = client.get("/operatore/cerca", params={"q": "obiettivi realizzazione", "realised_min": "99,6",
                                               "document": "relazione-performance-2023"})
    records = app.state.services.pipeline.index.records
    found = hits(r.text)
    assert found
    for cid, _ in found:
        assert float(records[cid]["metadata"]["realised"].replace(",", ".")) >= 99.6

    # every passage in the % range is found, not only those among the top candidates
    from sibyl.backoffice.search import realised_value

    expected = {cid for cid, rec in records.items() if rec["document"] == "relazione-performance-2023"
                and (realised_value(rec["metadata"]) or 100) <= 99}
    r = client.get("/operatore/cerca", params={"q": "realizzazione obiettivi", "realised_max": "99",
                                               "document": "relazione-performance-2023"})
    assert expected and {cid for cid, _ in hits(r.text)} == expected

    r = client.get("/operatore/cerca", params={"q": "progetti", "year": "2023"})
    assert all(records[cid]["metadata"].get("year_2023") for cid, _ in hits(r.text))

    r = client.get("/operatore/cerca", params={"q": "mobilità cultura sport turismo", "sort": "area"})
    areas = [records[cid]["metadata"].get("area") for cid, _ in hits(r.text)]
    keyed = [(records[cid]["document"], a) for (cid, _), a in zip(hits(r.text), areas, strict=True) if a is not None]
    assert keyed == sorted(keyed)
    assert audit(app, "search", "mario")


def test_search_escapes_before_highlighting(client):
    r = client.get("/operatore/cerca", params={"q": "<script>alert(1)</script> mobilità"})
    assert r.status_code == 200
    assert "<script>alert(1)" not in r.text
    assert "&lt;script&gt;" in r.text


@pytest.mark.parametrize("params", [{"q": "x", "year": "duemila"}, {"q": "x", "realised_min": "120"},
                                    {"q": "x", "objective": "4.a"}, {"q": "x", "sort": "random"},
                                    {"q": "x", "realised_min": "90", "realised_max": "10"},
                                    {"q": "x" * 5000}, {"q": "x", "area": "dup|tre"}])
def test_search_bad_input_is_422(client, params):
    r = client.get("/operatore/cerca", params=params)
    assert r.status_code == 422
    assert 'class="error"' in r.text


def test_highlight_unit():
    from api.operator.present import highlight
    from sibyl.backoffice.search import query_stems

    out = str(highlight("<b>Mobilità</b> & parcheggi", query_stems("mobilita parcheggio")))
    assert out == "&lt;b&gt;<mark>Mobilità</mark>&lt;/b&gt; &amp; <mark>parcheggi</mark>"


def test_full_passage(client):
    r = client.get("/operatore/passaggio/relazione-performance-2023:intro", params={"q": "performance"})
    assert r.status_code == 200 and 'id="passage"' in r.text
    assert client.get("/operatore/passaggio/nope:nothing").status_code == 404


# --- drafts -----------------------------------------------------------------------------------------
def test_reply_draft_italian_and_english(client, app):
    r = client.get("/operatore/bozza", params={"q": "Cosa fa il Comune per la mobilità sostenibile?", "lingua": "it"})
    assert r.status_code == 200
    text = re.search(r'<textarea id="draft-text"[^>]*>(.*?)</textarea>', r.text, re.S).group(1)
    assert text.startswith("Gentile cittadina")
    assert "Fonti:" in text and "[1]" in text and "Cordiali saluti" in text
    assert re.search(r"^\[1\] .+", text, re.M)
    html = re.search(r'<div class="draft-html" id="draft-html">(.*?)</div>', r.text, re.S).group(1)
    assert "<ol>" in html and '<li value="1">' in html

    r = client.get("/operatore/bozza", params={"q": "What does the City do for sustainable mobility?", "lingua": "en"})
    text = re.search(r'<textarea id="draft-text"[^>]*>(.*?)</textarea>', r.text, re.S).group(1)
    assert text.startswith("Dear citizen") and "Sources:" in text and "[1]" in text

    r = client.get("/operatore/bozza", params={"q": ABSTAIN_OTHER, "lingua": "it"})
    assert 'id="draft-not-answered"' in r.text and "Fonti:" not in r.text
    assert client.get("/operatore/bozza", params={"q": "x" * 5000}).status_code == 422
    assert client.get("/operatore/bozza", params={"q": "ciao", "lingua": "fr"}).status_code == 422
    assert audit(app, "draft", "mario")


def test_draft_unit_sources_numbered(pipeline):
    from sibyl.backoffice.drafts import draft_reply

    draft = draft_reply(pipeline, "Qual è il livello medio generale di realizzazione degli obiettivi 2023?", "it")
    assert draft.answered and draft.sources
    for src in draft.sources:
        assert f"[{src['n']}] {src['label']}" in draft.text
    assert "<script" not in draft.html


# --- unanswered questions ----------------------------------------------------------------------------
def test_unanswered_grouped_and_handled(client, app):
    conversation = app.state.services.conversation
    a = client.post("/api/chat", json={"message": ABSTAIN_A})
    assert a.status_code == 200 and a.json()["answered"] is False
    conversation.reply(ABSTAIN_B, channel="telegram", external_key="chat-42")
    conversation.reply(ABSTAIN_OTHER, channel="web")
    conversation.reply("Cosa prevede il DUP per la mobilità sostenibile?", channel="web")  # answered: not listed

    page = client.get("/operatore/senza-risposta").text
    rows = re.findall(r'<tr class="group">(.*?)</tr>', page, re.S)
    pool = [row for row in rows if "piscina" in row.lower()]
    assert len(pool) == 1, rows
    assert re.search(r'<td class="num">2</td>', pool[0])
    assert "telegram" in pool[0] and "web" in pool[0]
    assert any("treno" in row for row in rows)
    assert not any("mobilit" in re.search(r'class="question">(.*?)<', row).group(1).lower() for row in rows)

    ids = re.findall(r'name="message_id" value="([^"]+)"', pool[0])
    r = client.post("/operatore/senza-risposta/gestite", data={"csrf_token": csrf_of(client), "message_id": ids},
                    follow_redirects=False)
    assert r.status_code == 303
    page = client.get("/operatore/senza-risposta").text
    assert "piscina" not in page.lower() and "treno" in page
    entry = audit(app, "unanswered_handled", "mario")[0]
    assert sorted(entry.detail["message_ids"]) == sorted(ids)
    r = client.post("/operatore/senza-risposta/gestite", data={"csrf_token": csrf_of(client), "message_id": "nope"})
    assert r.status_code == 404


def test_grouping_unit():
    from sibyl.backoffice.reports import signature, similar

    assert similar(signature("Parcheggi a Lecce?"), signature("parcheggio lecce"))
    assert similar(signature("Quanto costa parcheggiare in centro?"), signature("Costo dei parcheggi in centro"))
    assert similar(signature("piscina comunale di via Roma orari"), signature("Orari della piscina di via Roma?"))
    assert not similar(signature("orari della biblioteca"), signature("costo del treno per Bari"))
    # the City's name is in every question: it does not make two questions the same
    assert not similar(signature("Cosa fa il Comune di Lecce per i rifiuti?"),
                       signature("Cosa fa il Comune di Lecce per il turismo?"))


def test_operator_strings_complete_and_safe():
    from api.operator.present import strings

    it, en = strings("it"), strings("en")
    assert set(it) == set(en)
    assert not set(it) & set(dir(dict))  # `s.update` in a template would be dict.update, not the text


# --- feedback -------------------------------------------------------------------------------------------
def test_feedback_review(client, app):
    services = app.state.services
    reply = services.conversation.reply("Quali obiettivi ha il DUP per il turismo?", channel="web")
    services.store.add_feedback(reply["session_id"], reply["message_id"], -1, "manca la data", channel="web")
    services.store.add_feedback(reply["session_id"], reply["message_id"], 1, "utile", channel="web")

    page = client.get("/operatore/feedback").text
    item = re.search(r'<article class="feedback" id="feedback-(\d+)">(.*?)</article>', page, re.S)
    assert item and "manca la data" in item.group(2) and "turismo" in item.group(2)
    assert "utile" not in page  # only thumbs-down
    assert '<li value="1">' in item.group(2)  # its sources
    fid = item.group(1)
    r = client.post(f"/operatore/feedback/{fid}/rivisto", data={"csrf_token": csrf_of(client)}, follow_redirects=False)
    assert r.status_code == 303
    assert f'id="feedback-{fid}"' not in client.get("/operatore/feedback").text
    assert f'id="feedback-{fid}"' in client.get("/operatore/feedback?all=true").text
    assert audit(app, "feedback_reviewed", "mario")[0].detail == {"feedback_id": int(fid)}
    r = client.post("/operatore/feedback/999999/rivisto", data={"csrf_token": csrf_of(client)})
    assert r.status_code == 404


# --- topics and CSV ---------------------------------------------------------------------------------------
def test_topics_chart_and_csv(client, app):
    services = app.state.services
    reply = services.conversation.reply("=HYPERLINK(\"http://x\") mobilità sostenibile", channel="web")
    for rating, voter in ((1, "topics:a"), (-1, "topics:b")):  # its own votes: the test runs alone too
        services.store.add_feedback(reply.session_id, reply.message_id, rating, voter=voter)
    r = client.get("/operatore/temi")
    assert r.status_code == 200
    svg = re.search(r"<svg.*?</svg>", r.text, re.S).group(0)
    assert "<rect" in svg and "<script" not in svg
    assert "built-in method" not in r.text
    assert re.search(r"4\. LECCE SI MUOVE SMART", svg)  # mobility questions land in DUP area 4

    r = client.get("/operatore/esporta/domande.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text.lstrip("\ufeff")), delimiter=";"))
    assert any(row["Domanda"].startswith("'=HYPERLINK") for row in rows)  # no formula injection
    assert any(row["Area DUP"] == "4" for row in rows)
    assert not any(row["Domanda"] == "ciao" for row in rows)

    r = client.get("/operatore/esporta/feedback.csv")
    rows = list(csv.DictReader(io.StringIO(r.text.lstrip("\ufeff")), delimiter=";"))
    assert {row["Valutazione"] for row in rows} >= {"👎 non utile", "👍 utile"}

    past = client.get("/operatore/esporta/domande.csv", params={"dal": "2020-01-01", "al": "2020-01-31"})
    assert len(list(csv.reader(io.StringIO(past.text.lstrip("\ufeff"))))) == 1  # header only
    for bad in ({"dal": "ieri"}, {"dal": "2025-02-01", "al": "2025-01-01"}):
        assert client.get("/operatore/esporta/domande.csv", params=bad).status_code == 422
        assert client.get("/operatore/esporta/feedback.csv", params=bad).status_code == 422
        assert client.get("/operatore/temi", params=bad).status_code == 422
    assert audit(app, "export_questions", "mario") and audit(app, "export_feedback", "mario")


# --- documents -----------------------------------------------------------------------------------------------
def upload(client, name: str, data: bytes):
    return client.post("/operatore/documenti", data={"csrf_token": csrf_of(client)},
                       files={"file": (name, data, "application/octet-stream")})


def state(app, env):
    pipeline = app.state.services.pipeline
    return (pipeline.index.manifest["generation"], sorted(p.name for p in env.corpus_dir.iterdir()))


NEW_DOC = ("# Biblioteca di quartiere San Pio\n\nIl Comune di Lecce apre la biblioteca di quartiere San Pio con "
           "una sala studio, prestito di libri e un laboratorio di lettura per bambini. La biblioteca di "
           "quartiere è aperta il sabato mattina e ospita corsi di alfabetizzazione digitale per anziani.\n")


def test_documents_list(client, app):
    page = client.get("/operatore/documenti").text
    for doc_id, info in app.state.services.pipeline.index.manifest["documents"].items():
        row = re.search(rf'<tr data-document="{re.escape(doc_id)}">(.*?)</tr>', page, re.S).group(1)
        assert f'<td class="num">{info["chunks"]}</td>' in row and f"<td>{info['language']}</td>" in row


@pytest.mark.parametrize("name,data,status", [
    ("foto.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, 415),
    ("relazione.pdf", b"%PDF-1.4\nthis is not really a pdf\n%%EOF", 422),
    ("vuoto.txt", b"   \n\n ", 422),
    ("grande.txt", b"parola " * 10_000, 413),
    ("lecce-smart-city.it.txt", b"Lecce smart city: un altro testo con lo stesso nome.", 409),
    ("archivio.docx", b"PK\x03\x04 not a zip at all", 415),
])
def test_rejected_upload_changes_nothing(client, app, env, name, data, status):
    before = state(app, env)
    r = upload(client, name, data)
    assert r.status_code == status, r.text[-500:]
    assert 'id="doc-error"' in r.text
    assert state(app, env) == before
    assert audit(app, "upload_rejected", "mario")[0].detail["file"] == name


def test_oversized_upload_refused_before_reading(client, app, env):
    before = state(app, env)
    r = upload(client, "enorme.txt", b"x" * 500_000)
    assert r.status_code == 413 and r.json()["code"] == "too_large"
    assert state(app, env) == before


def test_upload_search_remove_reindex(client, app, env):
    docs = app.state.operator_console.documents
    generation = app.state.services.pipeline.index.manifest["generation"]
    # a name that lies: .pdf with text inside is stored as text (type from content)
    r = upload(client, "Biblioteca San Pio.pdf", NEW_DOC.encode())
    assert r.status_code == 202, r.text[-500:]
    job = docs.wait(300)
    assert job.state == "done", job.message
    assert (env.corpus_dir / "biblioteca-san-pio.txt").exists()
    pipeline = app.state.services.pipeline
    assert pipeline.index.manifest["generation"] != generation
    assert "biblioteca-san-pio" in pipeline.index.manifest["documents"]
    status = client.get(f"/operatore/documenti/lavori/{job.id}").json()
    assert status["state"] == "done"
    assert client.get("/operatore/documenti/lavori/9999").status_code == 404

    found = hits(client.get("/operatore/cerca", params={"q": "biblioteca di quartiere San Pio"}).text)
    assert found and found[0][0].startswith("biblioteca-san-pio:")
    assert audit(app, "upload_done", "mario")

    r = client.post("/operatore/documenti/biblioteca-san-pio/rimuovi", data={"csrf_token": csrf_of(client)})
    assert r.status_code == 202
    assert docs.wait(300).state == "done"
    assert "biblioteca-san-pio" not in pipeline.index.manifest["documents"]
    assert not (env.corpus_dir / "biblioteca-san-pio.txt").exists()
    found = hits(client.get("/operatore/cerca", params={"q": "biblioteca di quartiere San Pio"}).text)
    assert not any(cid.startswith("biblioteca-san-pio:") for cid, _ in found)
    r = client.post("/operatore/documenti/nope/rimuovi", data={"csrf_token": csrf_of(client)})
    assert r.status_code == 404

    generation = pipeline.index.manifest["generation"]
    r = client.post("/operatore/documenti/reindicizza", data={"csrf_token": csrf_of(client)})
    assert r.status_code == 202
    assert docs.wait(300).state == "done"
    assert pipeline.index.manifest["generation"] != generation
    for action in ("upload", "remove", "reindex", "remove_done", "reindex_done"):
        assert audit(app, action, "mario"), action


def make_pdf(lines: list[str]) -> bytes:
    """A minimal one-page PDF with real text (Helvetica), offsets computed so any reader accepts it."""
    content = "BT /F1 12 Tf 50 750 Td 14 TL " + " ".join(f"({line}) '" for line in lines) + " ET"
    objs = ["<< /Type /Catalog /Pages 2 0 R >>", "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 4 0 R >> >> "
            "/Contents 5 0 R >>", "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
            f"<< /Length {len(content)} >>\nstream\n{content}\nendstream"]
    out, offsets = b"%PDF-1.4\n", []
    for i, obj in enumerate(objs, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n{obj}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


def make_docx(paragraphs: list[str]) -> bytes:
    import docx

    document = docx.Document()
    for text in paragraphs:
        document.add_paragraph(text)
    buf = io.BytesIO()
    document.save(buf)
    return buf.getvalue()


def test_upload_pdf_docx_html_by_content(client, app, env):
    docs = app.state.operator_console.documents
    cases = [
        ("mercato.pdf", make_pdf(["Mercato coperto di Piazza Libertini",
                                  "Il Comune ristruttura il mercato coperto con nuovi banchi e una tettoia."]),
         "mercato.pdf", "mercato coperto Piazza Libertini"),
        ("canile.txt", make_docx(["Canile municipale di Lecce", "Il canile municipale organizza giornate di "
                                  "adozione dei cani ogni prima domenica del mese."]),  # the name lies
         "canile.docx", "canile municipale adozione cani"),
        ("fontane.html", b"<!doctype html><html><head><title>Fontane storiche</title></head><body><h1>Fontane "
         b"storiche</h1><p>Il restauro delle fontane storiche del centro di Lecce comincia in primavera.</p>"
         b"<script>alert(1)</script></body></html>", "fontane.html", "restauro fontane storiche"),
    ]
    for name, data, stored, query in cases:
        r = upload(client, name, data)
        assert r.status_code == 202, r.text[-400:]
        job = docs.wait(300)
        assert job.state == "done", job.message
        assert (env.corpus_dir / stored).exists()
        found = hits(client.get("/operatore/cerca", params={"q": query}).text)
        assert found and found[0][0].startswith(stored.rsplit(".", 1)[0] + ":"), (name, found[:3])
    page = client.get("/operatore/documenti").text
    assert 'data-document="mercato"' in page and 'data-document="canile"' in page
    fontane = [r for r in app.state.services.pipeline.index.records.values() if r["document"] == "fontane"]
    assert fontane and not any("alert(1)" in r["text"] for r in fontane)  # scripts are not document text


@pytest.mark.parametrize("url", ["javascript:alert(1)", "ftp://comune.lecce.it/a.pdf", "https://",
                                 "www.comune.lecce.it", "https://comune.lecce.it/a b.pdf",
                                 "https://x.it/" + "a" * 600])
def test_upload_with_a_bad_official_link_changes_nothing(client, app, env, url):
    before = state(app, env)
    catalog = (env.corpus_dir / "catalog.toml").read_bytes()
    r = client.post("/operatore/documenti", data={"csrf_token": csrf_of(client), "url": url},
                    files={"file": ("notizie.md", b"# Notizie\n\nUn documento valido.\n", "text/markdown")})
    assert r.status_code == 422 and 'id="doc-error"' in r.text and "http(s)" in r.text
    assert state(app, env) == before and (env.corpus_dir / "catalog.toml").read_bytes() == catalog


def test_upload_keeps_its_official_link_for_the_public_view(client, app, env):
    docs = app.state.operator_console.documents
    original = (env.corpus_dir / "catalog.toml").read_text(encoding="utf-8")
    link = "https://www.comune.lecce.it/biblioteche/san-pio"
    r = client.post("/operatore/documenti", data={"csrf_token": csrf_of(client), "url": link},
                    files={"file": ("Biblioteca San Pio.md", NEW_DOC.encode(), "text/markdown")})
    assert r.status_code == 202, r.text[-500:]
    assert docs.wait(300).state == "done"
    text = (env.corpus_dir / "catalog.toml").read_text(encoding="utf-8")
    assert tomllib.loads(text)["biblioteca-san-pio.md"]["url"] == link
    assert text.startswith(original.rstrip("\n")), "the catalog's entries and comments are kept as they were"
    page = client.get("/documenti/biblioteca-san-pio")
    assert page.status_code == 200 and f'href="{link}"' in page.text
    assert audit(app, "upload", "mario")[0].detail["url"] == link
    r = client.post("/operatore/documenti/biblioteca-san-pio/rimuovi", data={"csrf_token": csrf_of(client)})
    assert r.status_code == 202 and docs.wait(300).state == "done"


def test_failed_ingest_rolls_the_upload_back(client, app, env, monkeypatch):
    store = app.state.services.pipeline.store
    before = state(app, env)
    catalog = (env.corpus_dir / "catalog.toml").read_text(encoding="utf-8")

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(store, "ingest", broken)  # fault injection at the edge: the index build itself
    r = client.post("/operatore/documenti", data={"csrf_token": csrf_of(client), "url": "https://example.org/n"},
                    files={"file": ("notizie.md", b"# Notizie\n\nUn documento valido ma l'indice non si aggiorna.\n",
                                    "text/markdown")})
    assert r.status_code == 202
    job = app.state.operator_console.documents.wait(60)
    assert job.state == "failed" and "disk full" in job.message
    assert state(app, env) == before
    assert "notizie.md" not in tomllib.loads((env.corpus_dir / "catalog.toml").read_text(encoding="utf-8"))
    assert tomllib.loads((env.corpus_dir / "catalog.toml").read_text(encoding="utf-8")) == tomllib.loads(catalog)
    assert audit(app, "upload_failed", "mario")


def test_busy_while_a_job_runs(client, app):
    import threading

    docs = app.state.operator_console.documents
    store = app.state.services.pipeline.store
    gate = threading.Event()
    real = store.ingest

    def slow(*args, **kwargs):
        gate.wait(30)
        return real(*args, **kwargs)

    store.ingest = slow
    try:
        assert client.post("/operatore/documenti/reindicizza", data={"csrf_token": csrf_of(client)}).status_code == 202
        assert client.post("/operatore/documenti/reindicizza", data={"csrf_token": csrf_of(client)}).status_code == 409
        assert upload(client, "altro.txt", b"Un altro documento sulla citta di Lecce.").status_code == 409
    finally:
        gate.set()
        docs.wait(300)
        del store.ingest
    assert docs.jobs[-1].state == "done"


def test_language_switch(client):
    r = client.get("/operatore/cerca", params={"lang": "en"})
    assert "Search the documents" in r.text
    assert "Search the documents" in client.get("/operatore/cerca").text  # remembered
    assert "Ricerca nei documenti" in client.get("/operatore/cerca", params={"lang": "it"}).text


def test_audit_page(client):
    client.get("/operatore/cerca", params={"q": "teatro <b>romano</b>"})
    r = client.get("/operatore/registro", params={"action": "search"})
    assert r.status_code == 200 and 'data-action="search"' in r.text
    assert "teatro &lt;b&gt;romano&lt;/b&gt;" in r.text and "<b>romano</b>" not in r.text
    assert 'data-action="login"' not in r.text  # filtered by action


# --- CLI ---------------------------------------------------------------------------------------------------
def test_cli_operator_add(tmp_path):
    def run(*args, stdin=""):
        return subprocess.run([sys.executable, "-m", "sibyl", "--data-dir", str(tmp_path), "operator", *args],
                              input=stdin, capture_output=True, text=True, timeout=120)

    assert run("add", "anna", stdin="password-lunga\n").returncode == 0
    dup = run("add", "anna", stdin="password-lunga\n")
    assert dup.returncode == 2 and "already exists" in dup.stderr
    short = run("add", "bruno", stdin="corta\n")
    assert short.returncode == 2 and "at least" in short.stderr
    assert run("add", "no spaces!", stdin="password-lunga\n").returncode == 2
    assert run("add", stdin="password-lunga\n").returncode == 2
    assert run("list").stdout.split() == ["anna"]
    assert run("passwd", "anna", stdin="nuova-password\n").returncode == 0

    from sibyl.backoffice.accounts import Operators
    from sibyl.settings import Settings

    ops = Operators.from_settings(Settings(data_dir=tmp_path, _env_file=None))
    assert ops.login("anna", "password-lunga") is None
    assert ops.login("anna", "nuova-password") is not None
    from sibyl.backoffice.accounts import Operator

    with ops.Session() as db:
        assert db.get(Operator, "anna").password_hash.startswith("$argon2")
