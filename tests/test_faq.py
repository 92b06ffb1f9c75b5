"""Verified answers (FAQ) and blocked passages (issue 15): written and approved in the console, served to a
differently worded question through /api/chat (never to a near miss, never once expired), and a blocked
passage never cited. Real index (a private copy), real store, the real app in process."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from sibyl.backoffice.accounts import Operators
from sibyl.backoffice.faq import today
from tests.operator_support import PASSWORD, add_operator, csrf_of, isolated_settings, login

pytestmark = pytest.mark.slow

POOL = "Quando apre la piscina comunale di via Roma?"
POOL_EN = "When does the municipal swimming pool in via Roma open?"
ANSWER_IT = "La piscina comunale di via Roma apre alle 8:30 dal lunedì al sabato."
ANSWER_EN = "The municipal swimming pool in via Roma opens at 8:30, Monday to Saturday."
REWORDED = "A che ora apre la piscina comunale in via Roma?"
NEAR_MISSES = ["Quando chiude la piscina comunale di via Roma?",  # the opposite question
               "Quando apre la biblioteca comunale di via Roma?",  # another place
               "Quanto costa l'abbonamento alla piscina comunale?",  # another subject
               "Quando apre la piscina?"]  # too little of it: which pool?
# Each endpoint of the FAQ router (all need a session; POSTs also the CSRF token).
ENDPOINTS = [("GET", "/operatore/faq"), ("GET", "/operatore/faq/nuova"), ("POST", "/operatore/faq/nuova"),
             ("GET", "/operatore/faq/1"), ("POST", "/operatore/faq/1"), ("POST", "/operatore/faq/1/approva"),
             ("POST", "/operatore/faq/1/scadi"), ("POST", "/operatore/faq/1/ritira"),
             ("POST", "/operatore/faq/passaggi/blocca"), ("POST", "/operatore/faq/passaggi/sblocca")]


@pytest.fixture(scope="module")
def env(settings, built_index, tmp_path_factory):
    faq_settings = isolated_settings(settings, tmp_path_factory.mktemp("faq"))
    add_operator(faq_settings)
    operators = Operators.from_settings(faq_settings)
    operators.add("lucia", PASSWORD, role="operator")  # not an administrator
    operators.engine.dispose()
    return faq_settings


@pytest.fixture(scope="module")
def app(env):
    from api.app import create_app

    return create_app(env)


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app) as c:
        assert login(c).status_code == 303
        yield c


def source_id(app) -> str:
    return next(iter(app.state.services.pipeline.index.records))


def audit(app, action):
    return app.state.operator_console.operators.audit_log(1000, action=action)


def chat(client, message: str, language: str | None = None) -> dict:
    body = {"message": message, **({"language": language} if language else {})}
    r = client.post("/api/chat", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def create(client, app, **fields) -> int:
    data = {"csrf_token": csrf_of(client), "question": POOL, "variants": POOL_EN, "answer_it": ANSWER_IT,
            "answer_en": ANSWER_EN, "sources": source_id(app),
            "expires_on": (today() + timedelta(days=30)).isoformat(), **fields}
    r = client.post("/operatore/faq/nuova", data=data, follow_redirects=False)
    assert r.status_code == 303, r.text[:500]
    return int(re.search(r"/operatore/faq/(\d+)", r.headers["location"]).group(1))


def post(client, path: str, **data):
    return client.post(path, data={"csrf_token": csrf_of(client), **data}, follow_redirects=False)


@pytest.mark.parametrize("method,path", ENDPOINTS)
def test_every_faq_endpoint_needs_a_session(app, client, method, path):
    anon = TestClient(app)
    r = anon.request(method, path, follow_redirects=False)
    assert r.status_code == 401 and r.json()["code"] == "login_required"
    if method == "POST":  # signed in, but without the session's CSRF token: nothing done
        assert client.request(method, path, data={"question": "x"}, follow_redirects=False).status_code == 403


def test_an_approved_answer_is_served_to_a_reworded_question_and_not_to_near_misses(client, app):
    faq_id = create(client, app)
    assert chat(client, REWORDED)["mode"] != "verified"  # a draft is never served
    assert post(client, f"/operatore/faq/{faq_id}/approva").status_code == 303
    page = client.get(f"/operatore/faq/{faq_id}").text
    assert 'id="faq-status"' in page and "approvata" in page

    reply = chat(client, REWORDED)
    assert reply["mode"] == "verified" and reply["structured"]["mode"] == "verified" and reply["answered"]
    assert ANSWER_IT in reply["answer"]
    assert f"Risposta verificata dall'URP il {today():%d/%m/%Y}" in reply["answer"]
    assert reply["structured"]["notes"] == [f"✔ Risposta verificata dall'URP il {today():%d/%m/%Y}."]
    assert [s["id"] for s in reply["sources"]] == [source_id(app)]
    assert reply["evidence"]["verified_answer"] == faq_id

    # Telegram shares the conversation service: the same answer, rendered with its mark and sources.
    from bot.render import answer_html

    telegram = app.state.services.conversation.reply(REWORDED, channel="telegram", external_key="chat-1")
    assert telegram["mode"] == "verified"
    assert "Risposta verificata dall&#x27;URP" in answer_html(telegram) and "[1]" in answer_html(telegram)

    english = chat(client, "When does the municipal swimming pool in via Roma open, please?")
    assert english["mode"] == "verified" and english["language"] == "en"
    assert ANSWER_EN in english["answer"] and "Answer verified by the URP on" in english["answer"]

    for question in NEAR_MISSES:
        assert chat(client, question)["mode"] != "verified", question
    created, approved = audit(app, "faq_created"), audit(app, "faq_approved")
    assert [e.detail["faq"] for e in created + approved].count(faq_id) == 2

    # Edited: back to draft (not served) until approved again; expired: never served again.
    edited = post(client, f"/operatore/faq/{faq_id}", question=POOL, variants=POOL_EN,
                  answer_it=ANSWER_IT + " Chiusa ad agosto.", answer_en=ANSWER_EN, sources=source_id(app),
                  expires_on="")
    assert edited.status_code == 303
    assert chat(client, REWORDED)["mode"] != "verified"
    assert post(client, f"/operatore/faq/{faq_id}/approva").status_code == 303
    assert "Chiusa ad agosto." in chat(client, REWORDED)["answer"]
    assert post(client, f"/operatore/faq/{faq_id}/scadi").status_code == 303
    assert chat(client, REWORDED)["mode"] != "verified"
    assert audit(app, "faq_expired")[0].detail["faq"] == faq_id
    assert 'data-status="scaduta"' in client.get("/operatore/faq").text


def test_an_answer_past_its_expiry_date_is_not_served(client, app):
    faq = app.state.services.faq
    faq_id = create(client, app, question="Dove si ritira il kit per la raccolta differenziata?", variants="",
                    answer_en="")
    assert post(client, f"/operatore/faq/{faq_id}/approva").status_code == 303
    asked = "Dove posso ritirare il kit per la raccolta differenziata?"
    assert chat(client, asked)["mode"] == "verified"
    with faq.Session() as db:  # the calendar moves on: its expiry date is now yesterday
        from sibyl.backoffice.faq import VerifiedAnswer

        db.get(VerifiedAnswer, faq_id).expires_on = today() - timedelta(days=1)
        db.commit()
    faq.reload()
    assert chat(client, asked)["mode"] != "verified"
    assert faq.get(faq_id).effective_status() == "scaduta"
    # Approving again with a date in the past is refused with a message.
    r = post(client, f"/operatore/faq/{faq_id}/approva")
    assert r.status_code == 422 and "scadenza è già passata" in r.text


def test_a_blocked_passage_is_never_cited_until_unblocked(client, app):
    question = "Quali progetti ci sono per le piste ciclabili?"
    cited = [s["id"] for s in chat(client, question)["sources"]]
    assert cited
    r = post(client, "/operatore/faq/passaggi/blocca", passage_id=cited[0], reason="dati superati dal nuovo PUMS")
    assert r.status_code == 303
    page = client.get("/operatore/faq").text
    assert cited[0] in page and "dati superati dal nuovo PUMS" in page
    assert cited[0] not in [s["id"] for s in chat(client, question)["sources"]]
    search = app.state.services.conversation.pipeline.ask(question)
    assert cited[0] not in [s.id for s in search.sources]
    public = client.post("/api/search", json={"query": question, "k": 20}).json()["results"]
    assert public and cited[0] not in [h["id"] for h in public]  # the public search leaves it out too
    assert audit(app, "passage_blocked")[0].detail == {"passage": cited[0], "reason": "dati superati dal nuovo PUMS"}
    assert post(client, "/operatore/faq/passaggi/sblocca", passage_id=cited[0]).status_code == 303
    assert cited[0] in [s["id"] for s in chat(client, question)["sources"]]
    public = client.post("/api/search", json={"query": question, "k": 20}).json()["results"]
    assert cited[0] in [h["id"] for h in public]
    assert audit(app, "passage_unblocked")[0].detail == {"passage": cited[0]}


def test_an_operator_not_only_an_administrator_approves(client, app):
    faq_id = create(client, app, question="Dove si trova lo sportello SUAP?", variants="", answer_en="")
    assert app.state.operator_console.operators.role("lucia") == "operator"
    lucia = TestClient(app)
    assert login(lucia, "lucia").status_code == 303
    r = lucia.post(f"/operatore/faq/{faq_id}/approva", data={"csrf_token": csrf_of(lucia)}, follow_redirects=False)
    assert r.status_code == 303
    assert app.state.services.faq.get(faq_id).approver == "lucia"
    assert audit(app, "faq_approved")[0].username == "lucia"


def test_bad_input_gets_clear_errors(client, app):
    cases = [({"question": "  "}, 422, "La domanda è vuota"),
             ({"answer_it": ""}, 422, "risposta in italiano è vuota"),
             ({"sources": "nessun-passaggio:99"}, 422, "Fonte sconosciuta"),
             ({"expires_on": "31/12/2026"}, 422, "AAAA-MM-GG"),
             ({"question": "x" * 501}, 422, "troppo lungo")]
    for fields, status, text in cases:
        data = {"csrf_token": csrf_of(client), "question": POOL, "answer_it": ANSWER_IT, **fields}
        r = client.post("/operatore/faq/nuova", data=data)
        assert r.status_code == status and text in r.text, (fields, r.status_code)
        assert 'id="faq-form"' in r.text  # the form again, with what was typed
    assert client.get("/operatore/faq/999999").status_code == 404
    assert client.get(f"/operatore/faq/{2**40}").status_code == 404
    assert post(client, "/operatore/faq/999999/approva").status_code == 404
    assert post(client, "/operatore/faq/999999", question=POOL, answer_it=ANSWER_IT).status_code == 404
    r = post(client, "/operatore/faq/passaggi/blocca", passage_id="nessun-passaggio:1", reason="x")
    assert r.status_code == 404 and "Passaggio sconosciuto" in r.text
    r = post(client, "/operatore/faq/passaggi/blocca", passage_id=source_id(app), reason=" ")
    assert r.status_code == 422 and "motivo" in r.text
    assert post(client, "/operatore/faq/passaggi/sblocca", passage_id="nessun-passaggio:1").status_code == 404


def test_started_from_an_unanswered_group_and_from_a_thumbs_down(client, app):
    services = app.state.services
    asked = "Quanto costa il biglietto del treno per Bari?"
    reply = chat(client, asked)
    assert not reply["answered"]
    page = client.get("/operatore/senza-risposta").text
    row = next(r for r in page.split('<tr class="group">') if asked in r)
    link = re.search(r'href="(/operatore/faq/nuova\?from=senza-risposta:[^"]+)"', row)
    assert link
    form = client.get(link.group(1).replace("&amp;", "&")).text
    assert f'value="{asked}"' in form.replace("&#39;", "'")

    handed = client.post("/api/handoff", json={"session_id": reply["session_id"], "consent": True,
                                                "email": "cittadina@example.it"})
    assert handed.status_code == 201, handed.text
    form = client.get(f"/operatore/faq/nuova?from=caso:{handed.json()['case_id']}").text
    assert f'value="{asked}"' in form.replace("&#39;", "'") and 'value="caso:' in form

    answered = chat(client, "Quali progetti ci sono per le piste ciclabili?")
    services.store.add_feedback(answered["session_id"], answered["message_id"], -1, "manca la data", channel="web")
    page = client.get("/operatore/feedback").text
    fid = re.search(r'href="/operatore/faq/nuova\?from=feedback:(\d+)"', page).group(1)
    form = client.get(f"/operatore/faq/nuova?from=feedback:{fid}").text
    assert "piste ciclabili" in form and answered["sources"][0]["id"] in form
    gone = client.get("/operatore/faq/nuova?from=feedback:999999")
    assert gone.status_code == 200 and "non esiste più" in gone.text


@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(question=st.text(max_size=600), variants=st.text(max_size=300), answer=st.text(max_size=300),
       sources=st.text(max_size=80), expiry=st.text(max_size=12))
def test_any_form_text_is_saved_or_refused_with_a_message(client, question, variants, answer, sources, expiry):
    data = {"csrf_token": csrf_of(client), "question": question, "variants": variants, "answer_it": answer,
            "sources": sources, "expires_on": expiry}
    r = client.post("/operatore/faq/nuova", data=data, follow_redirects=False)
    assert r.status_code in (303, 422), r.status_code
    assert r.status_code == 303 or 'id="faq-error"' in r.text


@given(question=st.text(max_size=300))
@hsettings(max_examples=200, deadline=None)
def test_form_parsing_raises_only_its_own_error(question):
    from sibyl.backoffice.faq import FaqError, FaqForm

    try:
        form = FaqForm.parse(question, question, question, question, question, question, question)
    except FaqError as exc:
        assert exc.code in (404, 422) and exc.key.startswith("faq_")
    else:
        assert form.question and "\n" not in form.question and form.answer_it
