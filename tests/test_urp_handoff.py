"""Issue 15, the citizen's side of the URP loop: POST /api/handoff (the contract), the case it opens with the
whole conversation, the offices directory a decline names, contact retention and `sibyl cases list`.

Real API, store and conversation service on a fake pipeline (tests/fakes.py: no index), so this runs in the
unit tier; the full loop with the real index, the console and a real SMTP server is tests/test_urp_loop.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

import prompts
from api.app import create_app
from sibyl.db import utcnow
from sibyl.services import build_services
from sibyl.settings import Settings
from tests.fakes import FakePipeline

ROOT = Path(__file__).resolve().parents[1]
UNANSWERED = "Quando apre la piscina comunale?"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    data = tmp_path_factory.mktemp("urp-handoff")
    settings = Settings(data_dir=data, rate_limit="", case_retention_days=30, _env_file=None)
    app = create_app(settings, build=lambda s: build_services(s, pipeline=FakePipeline(settings=s)))  # type: ignore[arg-type]
    with TestClient(app) as client:
        yield client, settings


def conversation(client, *messages: str, language: str | None = None) -> list[dict]:
    replies, session = [], None
    for text in messages:
        body = {"message": text, **({"session_id": session} if session else {}),
                **({"language": language} if language else {})}
        reply = client.post("/api/chat", json=body).json()
        session = reply["session_id"]
        replies.append(reply)
    return replies


def test_handoff_opens_a_case_with_the_whole_conversation(env):
    client, _ = env
    replies = conversation(client, "Cosa fa il Comune per le bici?", "e per le piste ciclabili in centro?",
                           UNANSWERED)
    assert replies[-1]["answered"] is False
    session = replies[0]["session_id"]
    r = client.post("/api/handoff", json={"session_id": session, "consent": True, "email": "Anna.Rossi@Example.IT"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["case_id"] >= 1 and body["number"].startswith("URP-") and body["status"] == "nuovo"
    assert body["created"] is True and body["retention_days"] == 30
    assert body["number"] in body["message"] and "Anna.Rossi@example.it" in body["message"]
    view = client.app.state.services.cases.get(body["case_id"])
    assert [(m.role, m.text) for m in view.thread] == [
        ("user", "Cosa fa il Comune per le bici?"), ("assistant", replies[0]["answer"]),
        ("user", "e per le piste ciclabili in centro?"), ("assistant", replies[1]["answer"]),
        ("user", UNANSWERED), ("assistant", replies[2]["answer"])]
    assert view.case.question == UNANSWERED and view.case.email == "Anna.Rossi@example.it"
    assert view.case.channel == "web" and view.case.contact_until - view.case.consent_at == timedelta(days=30)
    assert [e.action for e in view.events] == ["created"]
    # Asking again from the same conversation updates its open case instead of opening another.
    conversation_more = client.post("/api/chat", json={"message": "E la palestra?", "session_id": session}).json()
    again = client.post("/api/handoff", json={"session_id": session, "consent": True, "email": "anna@example.it"})
    assert again.status_code == 200 and again.json()["case_id"] == body["case_id"] and not again.json()["created"]
    view = client.app.state.services.cases.get(body["case_id"])
    assert view.thread[-1].text == conversation_more["answer"] and view.case.email == "anna@example.it"
    assert [e.action for e in view.events] == ["created", "requested_again"]


def test_a_follow_up_carries_its_previous_question(env):
    client, _ = env
    from sibyl.backoffice.cases import _thread

    class Row:
        def __init__(self, id, role, text, reply_to=None, retrieval_query=None):
            self.id, self.role, self.text, self.reply_to = id, role, text, reply_to
            self.retrieval_query, self.answered, self.created_at = retrieval_query, None, utcnow()

    rows = [Row("u1", "user", "Piste ciclabili?"), Row("a1", "assistant", "…", "u1", "Piste ciclabili?"),
            Row("u2", "user", "e nel 2026?"), Row("a2", "assistant", "…", "u2", "Piste ciclabili? e nel 2026?")]
    lines = _thread(rows)
    assert [m.previous_question for m in lines] == [None, None, "Piste ciclabili?", None]


@pytest.mark.parametrize("body,status,code", [
    ({"consent": False, "email": "a@example.it"}, 422, "consent_required"),
    ({"consent": True, "email": "not-an-address"}, 422, "bad_email"),
    ({"consent": True, "email": "a@@example.it"}, 422, "bad_email"),
    ({"consent": True}, 422, "email_required"),
    ({"consent": True, "email": "   "}, 422, "email_required"),
])
def test_handoff_refuses_without_consent_or_a_good_email(env, body, status, code):
    client, _ = env
    session = conversation(client, UNANSWERED)[0]["session_id"]
    r = client.post("/api/handoff", json={"session_id": session, **body})
    assert r.status_code == status and r.json()["code"] == code
    assert r.json()["detail"] == prompts.text("it", f"handoff_{code}")
    assert client.app.state.services.cases.for_session(session) == []


def test_handoff_messages_follow_the_language(env):
    client, _ = env
    session = conversation(client, "When does the swimming pool open?", language="en")[0]["session_id"]
    r = client.post("/api/handoff", json={"session_id": session, "consent": False})
    assert r.status_code == 422 and r.json()["detail"] == prompts.text("en", "handoff_consent_required")
    r = client.post("/api/handoff", json={"session_id": session, "consent": True, "email": "x", "language": "it"})
    assert r.json()["detail"] == prompts.text("it", "handoff_bad_email")


def test_handoff_for_an_unknown_session_or_a_bad_body(env):
    client, _ = env
    r = client.post("/api/handoff", json={"session_id": "no-such-session", "consent": True, "email": "a@example.it"})
    assert r.status_code == 404 and r.json()["code"] == "unknown_session"
    assert r.json()["detail"] == prompts.text("it", "handoff_unknown_session")
    r = client.post("/api/handoff", json={"session_id": "x", "consent": "yes", "email": "a@example.it"})
    assert r.status_code == 422 and r.json()["code"] == "validation_error"  # a string is not consent
    r = client.post("/api/handoff", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["code"] == "invalid_json"


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=40),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=10), inner, max_size=3), max_leaves=8)


@given(body=st.fixed_dictionaries({}, optional={"session_id": st.text(max_size=70) | JSON, "consent": JSON,
                                                "email": st.emails() | st.text(max_size=400) | JSON,
                                                "language": st.sampled_from(["it", "en", "fr"]) | JSON}))
@hsettings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_handoff_body_gets_a_clear_answer(env, body):
    client, _ = env
    r = client.post("/api/handoff", json=body)
    assert r.status_code in (201, 200, 400, 404, 422), (body, r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    payload = r.json()
    assert payload.get("case_id") if r.status_code < 300 else (payload["detail"] and payload["code"])


def test_privacy_text_gives_the_retention_period(env):
    client, _ = env
    for lang in ("it", "en"):
        r = client.get(f"/api/handoff/privacy?lang={lang}").json()
        assert r["retention_days"] == 30 and r["text"] == prompts.text(lang, "handoff_privacy", days=30)
    assert client.get("/api/handoff/privacy?lang=fr").status_code == 422


def test_a_decline_names_the_office_whose_keywords_match(env):
    client, _ = env
    offices = client.app.state.services.offices
    shipped = offices.all()
    assert len(shipped) == 1 and shipped[0].url == "https://www.comune.lecce.it"  # the URP, nothing invented
    assert shipped[0].phone == shipped[0].email == shipped[0].hours == ""
    police = offices.save({"name_it": "Polizia Locale", "name_en": "Local Police",
                           "keywords_it": "multe, contravvenzioni", "keywords_en": "fines, parking ticket",
                           "phone": "0832 000000", "email": "",
                           "url": "https://www.comune.lecce.it/polizia-locale"})
    try:
        it = conversation(client, "Come posso pagare le MULTE prese in centro?")[0]
        assert not it["answered"]
        assert it["answer"].endswith("Per «multe»: Polizia Locale — tel. 0832 000000; "
                                     "https://www.comune.lecce.it/polizia-locale.")
        assert "e-mail" not in it["answer"]  # an empty field is not shown
        en = conversation(client, "How do I pay a parking ticket?", language="en")[0]
        assert en["answer"].endswith("For “parking ticket”: Local Police — tel. 0832 000000; "
                                     "https://www.comune.lecce.it/polizia-locale.")
        other = conversation(client, UNANSWERED)[0]
        assert "Polizia" not in other["answer"] and "Per «" not in other["answer"]
        answered = conversation(client, "multe e bici?")[0]
        assert answered["answered"] and "Polizia" not in answered["answer"]  # only declines name an office
    finally:
        offices.delete(police.id)


def test_expired_contacts_are_purged(env):
    client, settings = env
    session = conversation(client, UNANSWERED)[0]["session_id"]
    case_id = client.post("/api/handoff", json={"session_id": session, "consent": True,
                                                "email": "purge@example.it"}).json()["case_id"]
    services = client.app.state.services
    services.store.purge(utcnow() + timedelta(days=29))
    assert services.cases.get(case_id).case.email == "purge@example.it"
    services.store.purge(utcnow() + timedelta(days=31))
    view = services.cases.get(case_id)
    assert view.case.email is None and view.thread  # the contact goes; the case and its thread stay


def test_cases_list_prints_open_cases_with_their_conversation(env):
    client, settings = env
    session = conversation(client, "Dove si rinnova la carta d'identità?")[0]["session_id"]
    number = client.post("/api/handoff", json={"session_id": session, "consent": True,
                                               "email": "cli@example.it"}).json()["number"]
    run = {"cwd": ROOT, "capture_output": True, "text": True, "timeout": 120,
           "env": {**os.environ, "SIBYL_DATA_DIR": str(settings.data_dir)}}
    out = subprocess.run([sys.executable, "-m", "sibyl", "cases", "list", "--json"], **run)
    assert out.returncode == 0, out.stderr
    cases = {c["number"]: c for c in json.loads(out.stdout)}
    assert cases[number]["status"] == "nuovo" and cases[number]["contact"] == "cli@example.it"
    assert cases[number]["conversation"][0] == {**cases[number]["conversation"][0], "role": "user",
                                                "text": "Dove si rinnova la carta d'identità?"}
    text = subprocess.run([sys.executable, "-m", "sibyl", "cases", "list"], **run)
    assert text.returncode == 0 and number in text.stdout and "citizen: Dove si rinnova" in text.stdout


@given(text=st.text(max_size=5000) | st.text(alphabet="x\x00 \n", min_size=3990, max_size=4010))
@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_note_text_is_kept_or_refused_with_a_known_message(env, text):
    """Notes, drafts and canned replies are free text: stored as typed (no NUL), or a CaseError whose key has
    a message in both languages."""
    from sibyl.backoffice.cases import CaseError

    client, _ = env
    cases = client.app.state.services.cases
    case_id = cases.find()[0].id
    try:
        cases.add_note(case_id, "mario", text)
    except CaseError as exc:
        assert exc.status in (413, 422)
        assert prompts.render("operator", "it", exc.key) and prompts.render("operator", "en", exc.key)
    else:
        assert cases.get(case_id).notes[-1].text == text.replace("\x00", "").strip()
    cases.save_draft(case_id, "mario", "Oggetto\x00", text[:4000])
    assert cases.get(case_id).case.draft == text[:4000].replace("\x00", "")


def open_together(store, cases, sessions: int = 12) -> list[int]:
    """Two handoffs of each session at the same moment (a double click, the web chat and Telegram): the number
    of cases each session ends up with."""
    import threading

    def hand_over(barrier, session_id: str, messages, errors: list[BaseException]) -> None:
        barrier.wait()
        try:
            cases.open(session_id, messages, "web", "it", email="a@example.org")
        except BaseException as exc:  # reported by the caller
            errors.append(exc)

    counts = []
    for n in range(sessions):
        session = store.open_session(None, channel="web").session
        store.add_exchange(session.id, "web", f"{UNANSWERED} {n}", {"answer": "Non lo so.", "answered": False,
                                                                  "language": "it"})
        barrier, errors = threading.Barrier(2), []
        args = (barrier, session.id, store.messages(session.id), errors)
        threads = [threading.Thread(target=hand_over, args=args) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors, errors
        counts.append(len(cases.for_session(session.id)))
    return counts


def test_concurrent_handoffs_of_one_conversation_open_one_case(tmp_path):
    from sibyl.backoffice.cases import Cases
    from sibyl.store import Store

    store = Store(f"sqlite:///{tmp_path / 'race.db'}")
    assert open_together(store, Cases(store.engine)) == [1] * 12
