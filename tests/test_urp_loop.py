"""Issue 15, the whole URP loop over HTTP on the real index (a private copy): a citizen's unanswerable question ->
"talk to a person" with consent and e-mail -> an operator sees the case with its thread in /operatore/casi,
handles it (status, assignee, office, due date, notes, history, reopen), drafts, edits (a passage from search,
a canned reply), sends -> a real local SMTP server (aiosmtpd) receives it; the same reply to a Telegram case
reaches the chat through the local Bot API peer. Roles, audit and bad input too."""

from __future__ import annotations

import contextlib
import html
import re
import socket
from email import message_from_bytes, policy

import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient
from markupsafe import escape
from pydantic import SecretStr

import prompts
from tests.operator_support import add_operator, isolated_settings, login
from tests.telegram_peer import BotAPIPeer

pytestmark = pytest.mark.slow

TOKEN = "4242424242:AAE-test-token-for-the-urp-loop_x9"
ABSTAIN = "Quando apre la piscina comunale di via Roma?"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class Sink:
    """aiosmtpd handler keeping every message it is given."""

    def __init__(self) -> None:
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope)
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def smtp():
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, sink
    controller.stop()


@pytest.fixture(scope="module")
def peer():
    p = BotAPIPeer(TOKEN).start()
    yield p
    p.stop()


@pytest.fixture(scope="module")
def app(settings, built_index, tmp_path_factory, smtp, peer):
    from api.app import create_app

    controller, _ = smtp
    env = isolated_settings(settings, tmp_path_factory.mktemp("urp-loop"), smtp_host="127.0.0.1",
                            smtp_port=controller.port, smtp_starttls=False, smtp_from="urp@comune.lecce.it",
                            telegram_bot_token=SecretStr(TOKEN), telegram_api_base_url=peer.url)
    add_operator(env)  # mario: the first account, admin
    add_operator(env, "lucia", role="operator")
    return create_app(env)


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app) as c:
        assert login(c).status_code == 303
        yield c


@contextlib.contextmanager
def other(app, name):
    c = TestClient(app)
    try:
        assert login(c, name).status_code == 303
        yield c
    finally:
        c.close()


def shown(key: str) -> str:
    """A console text as the (autoescaped) page shows it."""
    return str(escape(prompts.render("operator", "it", key)))


def csrf(client, path="/operatore/casi") -> str:
    return CSRF.search(client.get(path).text).group(1)


def audit(app, action):
    return app.state.operator_console.operators.audit_log(1000, action=action)


def citizen_case(client, *questions, email="anna.rossi@example.it", language=None) -> dict:
    session = None
    for q in questions:
        body = {"message": q, **({"session_id": session} if session else {}),
                **({"language": language} if language else {})}
        session = client.post("/api/chat", json=body).json()["session_id"]
    r = client.post("/api/handoff", json={"session_id": session, "consent": True, "email": email})
    assert r.status_code == 201, r.text
    return r.json()


def test_the_whole_loop_ends_in_the_citizens_mailbox(app, client, smtp):
    _, sink = smtp
    decline = client.post("/api/chat", json={"message": ABSTAIN}).json()
    assert decline["answered"] is False
    case = citizen_case(client, "Cosa fa il Comune per la mobilità sostenibile?", ABSTAIN)
    cid, number = case["case_id"], case["number"]

    queue = client.get("/operatore/casi")
    assert queue.status_code == 200 and number in queue.text and ABSTAIN in queue.text
    assert re.search(r">Casi \(\d+\)</a>", queue.text)  # the menu counts the cases waiting
    page = client.get(f"/operatore/casi/{cid}")
    assert page.status_code == 200 and "Cosa fa il Comune per la mobilità sostenibile?" in page.text
    assert ABSTAIN in page.text and "anna.rossi@example.it" in page.text
    token = CSRF.search(page.text).group(1)

    r = client.post(f"/operatore/casi/{cid}/gestione", data={"csrf_token": token, "stato": "in_carico",
                                                             "assegnato": "lucia", "ufficio": "1",
                                                             "scadenza": "2026-12-01"}, follow_redirects=False)
    assert r.status_code == 303
    view = app.state.services.cases.get(cid)
    assert (view.case.status, view.case.assignee, view.case.office_id, str(view.case.due_date)) == \
        ("in_carico", "lucia", 1, "2026-12-01")
    assert [e.action for e in view.events] == ["created", "status", "assigned", "office", "due_date"]
    assert {e.detail["case"] for e in audit(app, "case_status")} == {number}  # every change is audited

    r = client.post(f"/operatore/casi/{cid}/bozza", data={"csrf_token": token, "azione": "genera"},
                    follow_redirects=False)
    assert r.status_code == 303
    draft = app.state.services.cases.get(cid).case.draft
    assert "non risultano nei documenti" in draft  # says plainly that the documents don't answer
    assert draft.rstrip().endswith("mario\nUfficio Relazioni con il Pubblico (URP)\nComune di Lecce")

    found = client.get(f"/operatore/casi/{cid}", params={"cerca": "piste ciclabili"})
    chunk = re.search(r'name="passaggio" value="([^"]+)"', found.text).group(1)
    edited = draft.replace("Gentile cittadina, gentile cittadino,", "Gentile signora Rossi,")
    r = client.post(f"/operatore/casi/{cid}/bozza", data={"csrf_token": token, "azione": "aggiungi",
                                                          "passaggio": chunk, "oggetto": "Piscina", "testo": edited},
                    follow_redirects=False)
    assert r.status_code == 303
    with_passage = app.state.services.cases.get(cid).case.draft
    assert with_passage.startswith("Gentile signora Rossi,") and "Fonte: " in with_passage and "«" in with_passage

    r = client.post("/operatore/risposte-pronte", data={"csrf_token": token, "titolo": "Orari URP", "lingua": "it",
                                                        "testo": "L'URP riceve su appuntamento."},
                    follow_redirects=False)
    assert r.status_code == 303
    canned = app.state.services.cases.canned()[0]
    client.post(f"/operatore/casi/{cid}/bozza", data={"csrf_token": token, "azione": "pronta", "pronta": canned.id,
                                                      "oggetto": "Piscina", "testo": with_passage})
    final = app.state.services.cases.get(cid).case.draft
    assert final.rstrip().endswith("L'URP riceve su appuntamento.")

    before = len(sink.messages)
    r = client.post(f"/operatore/casi/{cid}/invia", data={"csrf_token": token, "oggetto": f"[{number}] Piscina",
                                                          "testo": final}, follow_redirects=False)
    assert r.status_code == 303, r.text[:500]
    assert len(sink.messages) == before + 1
    sent = sink.messages[-1]
    mail = message_from_bytes(sent.content, policy=policy.default)
    assert sent.rcpt_tos == ["anna.rossi@example.it"] and mail["Subject"] == f"[{number}] Piscina"
    assert mail.get_content().replace("\r\n", "\n").rstrip() == final.rstrip()
    view = app.state.services.cases.get(cid)
    assert view.case.status == "risposto"
    assert [(r.channel, r.recipient, r.username) for r in view.replies] == [("email", "anna.rossi@example.it", "mario")]
    assert "risposta inviata" in client.get(f"/operatore/casi/{cid}").text.lower()

    # Close, then reopen: both in the history.
    for stato in ("chiuso", "in_carico"):
        client.post(f"/operatore/casi/{cid}/gestione", data={"csrf_token": token, "stato": stato, "assegnato": "lucia",
                                                             "ufficio": "1", "scadenza": "2026-12-01"})
    assert [e.action for e in app.state.services.cases.get(cid).events][-2:] == ["status", "reopened"]


def test_an_english_speaker_gets_an_english_draft_and_a_telegram_case_a_chat_reply(app, client, peer):
    case = citizen_case(client, "When does the municipal swimming pool open?", email="tom@example.com",
                        language="en")
    token = csrf(client)
    client.post(f"/operatore/casi/{case['case_id']}/bozza", data={"csrf_token": token, "azione": "genera"})
    draft = app.state.services.cases.get(case["case_id"]).case.draft
    assert draft.startswith("Dear") and "City of Lecce" in draft

    services = app.state.services
    session = services.store.open_session(None, channel="telegram", external_key="telegram:777").session
    services.store.add_exchange(session.id, "telegram", ABSTAIN, {"answer": "Non lo so.", "answered": False,
                                                                   "language": "it"})
    tg, _ = services.cases.open(session.id, services.store.messages(session.id), "telegram", "it",
                                telegram_chat="777")
    mark = peer.mark()
    r = client.post(f"/operatore/casi/{tg.id}/invia", data={"csrf_token": token, "oggetto": "x",
                                                            "testo": "La piscina riapre a giugno."},
                    follow_redirects=False)
    assert r.status_code == 303
    sent = peer.wait_sent(mark, chat_id=777)[0]
    assert sent.params["text"] == prompts.render("operator", "it", "case_telegram_header", number=tg.number) + \
        "\n\nLa piscina riapre a giugno."
    view = services.cases.get(tg.id)
    assert [(r.channel, r.recipient) for r in view.replies] == [("telegram", "777")] and view.case.status == "risposto"


def test_bad_input_gets_clear_errors(app, client):
    cid = citizen_case(client, ABSTAIN)["case_id"]
    token = csrf(client)
    cases = app.state.services.cases
    r = client.post(f"/operatore/casi/{cid}/note", data={"csrf_token": token, "testo": "x" * 5000})
    assert r.status_code == 413 and shown("case_note_too_long") in r.text
    r = client.post(f"/operatore/casi/{cid}/note", data={"csrf_token": token, "testo": "   "})
    assert r.status_code == 422 and shown("case_note_empty") in r.text
    r = client.post(f"/operatore/casi/{cid}/note", data={"csrf_token": token, "testo": "Chiamato il cittadino."},
                    follow_redirects=False)
    assert r.status_code == 303 and cases.get(cid).notes[0].text == "Chiamato il cittadino."
    for path in ("/operatore/casi/999999", "/operatore/casi/0", "/operatore/casi/99999999999"):
        r = client.get(path)
        assert r.status_code in (404, 422) and (r.status_code == 422 or "Caso non trovato." in r.text)
    r = client.post("/operatore/casi/999999/note", data={"csrf_token": token, "testo": "x"})
    assert r.status_code == 404 and "Caso non trovato." in r.text
    for data, key in (({"stato": "boh"}, "case_bad_status"), ({"scadenza": "31/12/2026"}, "case_bad_date"),
                      ({"assegnato": "nessuno-così"}, "case_bad_value"), ({"ufficio": "4242"}, "case_bad_value")):
        r = client.post(f"/operatore/casi/{cid}/gestione", data={"csrf_token": token, **data})
        assert r.status_code == 422 and shown(key) in r.text
    r = client.post(f"/operatore/casi/{cid}/invia", data={"csrf_token": token, "oggetto": "x", "testo": " "})
    assert r.status_code == 422 and shown("case_send_empty") in r.text
    r = client.post(f"/operatore/casi/{cid}/note", data={"testo": "senza token"})
    assert r.status_code == 403  # CSRF
    assert cases.get(cid).case.status == "nuovo" and len(cases.get(cid).notes) == 1


CONSOLE = [("GET", "/operatore/casi"), ("GET", "/operatore/casi/1"), ("POST", "/operatore/casi/1/gestione"),
           ("POST", "/operatore/casi/1/note"), ("POST", "/operatore/casi/1/bozza"), ("POST", "/operatore/casi/1/invia"),
           ("GET", "/operatore/risposte-pronte"), ("POST", "/operatore/risposte-pronte"),
           ("POST", "/operatore/risposte-pronte/1/rimuovi"), ("GET", "/operatore/uffici"),
           ("POST", "/operatore/uffici"), ("POST", "/operatore/uffici/1/rimuovi"), ("GET", "/operatore/conversazione")]


def test_every_case_page_needs_a_session_and_the_list_is_complete(app, client):
    from api.operator.cases import router

    declared = {(m, re.sub(r"\{[^}]+\}", "1", r.path)) for r in router.routes for m in r.methods if m != "HEAD"}
    assert declared == set(CONSOLE)
    anon = TestClient(app)
    for method, path in CONSOLE:
        r = anon.request(method, path, follow_redirects=False)
        assert r.status_code == 401 and r.json()["code"] == "login_required", (method, path)


def test_the_offices_directory_is_for_admins(app, client):
    with other(app, "lucia") as lucia:
        token = csrf(lucia)
        for r in (lucia.get("/operatore/uffici"), lucia.get("/operatore/documenti"),
                  lucia.post("/operatore/uffici", data={"csrf_token": token, "name_it": "Anagrafe"}),
                  lucia.post("/operatore/documenti/reindicizza", data={"csrf_token": token}),
                  lucia.post("/operatore/documenti/lecce-smart-city/rimuovi", data={"csrf_token": token})):
            assert r.status_code == 403 and shown("admin_only") in r.text
        assert lucia.get("/operatore/casi").status_code == 200  # cases are every operator's work
        assert app.state.operator_console.documents.running() is None  # nothing was re-indexed
    token = csrf(client)
    r = client.post("/operatore/uffici", data={"csrf_token": token, "name_it": "Anagrafe",
                                               "keywords_it": "carta d'identità", "url": "ftp://x"})
    assert r.status_code == 422 and shown("office_bad_url") in r.text
    r = client.post("/operatore/uffici", data={"csrf_token": token, "name_it": "", "name_en": ""})
    assert r.status_code == 422 and shown("office_name_required") in r.text
    r = client.post("/operatore/uffici", data={"csrf_token": token, "name_it": "Servizi Demografici",
                                               "keywords_it": "carta d'identità, anagrafe", "hours": "lun-ven 9-12"},
                    follow_redirects=False)
    assert r.status_code == 303
    page = client.get("/operatore/uffici").text
    assert "Servizi Demografici — orari: lun-ven 9-12" in page
    office = next(o for o in app.state.services.offices.all() if o.name_it == "Servizi Demografici")
    assert audit(app, "office_saved")[0].detail["office"] == office.id
    reply = client.post("/api/chat", json={"message": "Dove rinnovo la carta d'identità?"}).json()
    assert not reply["answered"]
    assert "Per «carta d'identità»: Servizi Demografici — orari: lun-ven 9-12." in reply["answer"]
    r = client.post(f"/operatore/uffici/{office.id}/rimuovi", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303 and all(o.id != office.id for o in app.state.services.offices.all())


def test_the_thread_is_one_click_from_the_unanswered_and_feedback_pages(app, client):
    first = client.post("/api/chat", json={"message": "Cosa fa il Comune per la mobilità sostenibile?"}).json()
    follow = client.post("/api/chat", json={"message": "Quando apre la piscina comunale di via Roma?",
                                            "session_id": first["session_id"]}).json()
    assert client.post("/api/feedback", json={"session_id": first["session_id"], "message_id": follow["message_id"],
                                              "rating": -1}).status_code in (200, 201)
    unanswered = client.get("/operatore/senza-risposta").text
    link = re.search(r'href="(/operatore/conversazione\?messaggio=[^"]+)"', unanswered).group(1)
    assert client.get(html.unescape(link)).status_code == 200
    feedback = client.get("/operatore/feedback").text
    links = re.findall(r'href="(/operatore/conversazione\?feedback=\d+)"', feedback)
    pages = [client.get(html.unescape(x)).text for x in links]
    page = next(p for p in pages if "Cosa fa il Comune per la mobilità sostenibile?" in p)
    assert "Quando apre la piscina comunale di via Roma?" in page and "senza risposta dai documenti" in page
    for bad in ("messaggio=nope", "feedback=99999999", "feedback=-1", ""):
        r = client.get(f"/operatore/conversazione?{bad}")
        assert r.status_code == 404 and shown("conversation_not_found") in r.text
