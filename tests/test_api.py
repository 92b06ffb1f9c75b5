"""HTTP API over a real index (Chroma on disk + BM25, built once per session) and a real SQLite store."""

from __future__ import annotations

import re
import time
import tomllib
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import prompts
from api.app import create_app
from sibyl.store import ChatSession, Message, Store, utcnow

pytestmark = pytest.mark.slow

MOBILITY = "Cosa fa il Comune per la mobilità?"
STATIC = Path(__file__).resolve().parents[1] / "api" / "static"


def app_settings(settings, tmp_path: Path, **overrides):
    """The session's built index, a fresh conversation database per test; no rate limit unless asked."""
    values = {"database_url": f"sqlite:///{tmp_path / 'sibyl.db'}", "rate_limit": "", "cors_origins": ""}
    values.update(overrides)
    return settings.model_copy(update=values)


def client_for(settings, **kwargs) -> TestClient:
    # raise_server_exceptions=False: a 500 must show up as a status code the tests can reject
    return TestClient(create_app(settings), raise_server_exceptions=False, **kwargs)


@pytest.fixture(scope="module")
def client(settings, built_index, tmp_path_factory):
    with client_for(app_settings(settings, tmp_path_factory.mktemp("api"))) as c:
        yield c


@pytest.fixture(scope="module")
def conversation(client):
    """A mobility question and its answer, reused by several tests."""
    r = client.post("/api/chat", json={"message": MOBILITY})
    assert r.status_code == 200, r.text
    return r.json()


# --- happy paths ------------------------------------------------------------------------------
def test_chat_answers_with_cited_sources_session_and_suggestions(conversation):
    body = conversation
    assert body["answered"] is True and body["language"] == "it"
    assert body["sources"], "an answered question cites sources"
    markers = {int(n) for n in re.findall(r"\[(\d+)\]", body["answer"])}
    assert markers and markers <= {s["n"] for s in body["sources"]}
    for source in body["sources"]:
        assert source["title"] and source["section"] and source["text"] and source["document"]
    assert body["session_id"] and body["message_id"] and body["followup"] is False
    assert 2 <= len(body["suggestions"]) <= 3
    assert body["question"] not in body["suggestions"]
    assert any("mobilit" in s.lower() for s in body["suggestions"]), body["suggestions"]


def _template_prefixes(lang: str) -> list[str]:
    return [v.split("{")[0] for k, v in prompts.messages(lang).items() if k.startswith("suggest_")]


def test_english_question_gets_english_answer_and_suggestions(client):
    r = client.post("/api/chat", json={"message": "What is the city doing to make cycling safer?"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["language"] == "en" and body["answered"]
    assert body["suggestions"]
    assert all(any(s.startswith(p) for p in _template_prefixes("en")) for s in body["suggestions"])


def test_language_can_be_forced(client):
    r = client.post("/api/chat", json={"message": MOBILITY, "language": "en"})
    assert r.status_code == 200 and r.json()["language"] == "en"


def _cycling(source: dict) -> bool:
    return bool(re.search(r"cicl|bici|bike|cycl", source["text"], re.I))


def test_followups_retrieve_in_context(client, pipeline):
    first = client.post("/api/chat", json={"message": MOBILITY}).json()
    sid = first["session_id"]

    bikes = client.post("/api/chat", json={"message": "e per le biciclette?", "session_id": sid})
    assert bikes.status_code == 200, bikes.text
    bikes = bikes.json()
    assert bikes["followup"] is True and bikes["session_id"] == sid
    assert bikes["retrieval_query"] and "mobilit" in bikes["retrieval_query"]
    assert bikes["answered"] and any(_cycling(s) for s in bikes["sources"]), bikes["sources"]

    planned = client.post("/api/chat", json={"message": "which of these are planned for 2026?", "session_id": sid})
    assert planned.status_code == 200, planned.text
    planned = planned.json()
    assert planned["followup"] is True and planned["answered"], planned
    for source in planned["sources"]:  # the year became a filter: every cited passage covers 2026
        assert pipeline.index.records[source["id"]]["metadata"].get("year_2026"), source["id"]

    # The same words without the conversation do not carry the mobility topic.
    alone = client.post("/api/chat", json={"message": "e per le biciclette?"}).json()
    assert alone["followup"] is False


@pytest.mark.parametrize("first,then,lead", [
    # "how did it go in 2023?" still applies: the facts, without a "Sì" nobody asked for
    ("com'è andato il turismo nel 2023?", "e lo sport?", "Nel 2023 «"),
    # a yes/no question's follow-up is one too: the plan that names taxis, not an overview
    ("Is Lecce going to review the ZTL hours?", "and taxis?", "It is planned: the DUP 2025-2027 plans “management"),
])
def test_a_short_followup_asks_what_the_previous_question_asked(client, first, then, lead):
    sid = client.post("/api/chat", json={"message": first}).json()["session_id"]
    reply = client.post("/api/chat", json={"message": then, "session_id": sid}).json()
    assert reply["followup"] is True and reply["answered"], reply
    assert reply["structured"]["lead"].startswith(lead), reply["structured"]["lead"]


def test_search_with_filters(client, pipeline):
    r = client.post("/api/search", json={"query": "piste ciclabili", "k": 3})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["query"] == "piste ciclabili" and len(body["results"]) == 3
    assert {"id", "document", "title", "section", "text", "score", "metadata"} <= set(body["results"][0])

    doc = "relazione-performance-2023"
    r = client.post("/api/search", json={"query": "mobilità", "filters": {"document": doc}})
    assert r.status_code == 200 and r.json()["results"]
    assert all(hit["document"] == doc for hit in r.json()["results"])

    r = client.post("/api/search", json={"query": "mobilità", "filters": {"year": 2026}})
    assert r.status_code == 200 and r.json()["results"]
    assert all(pipeline.index.records[h["id"]]["metadata"].get("year_2026") for h in r.json()["results"])

    area = next(rec["metadata"]["area"] for rec in pipeline.index.records.values() if "area" in rec["metadata"])
    r = client.post("/api/search", json={"query": "obiettivo", "filters": {"area": area}})
    assert r.status_code == 200 and r.json()["results"]
    assert all(h["metadata"].get("area") == area for h in r.json()["results"])


def test_documents_from_the_index_manifest(client, pipeline):
    r = client.get("/api/documents")
    assert r.status_code == 200
    body = r.json()
    manifest = pipeline.index.manifest
    assert body["generation"] == manifest["generation"]
    assert {d["id"] for d in body["documents"]} == set(manifest["documents"])
    assert sum(d["chunks"] for d in body["documents"]) == manifest["chunks"]
    for d in body["documents"]:
        assert d["title"] and d["language"] in ("it", "en") and d["chunks"] > 0 and d["ingested_at"]


def test_health_and_readiness(client, pipeline):
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200
    assert r.json()["status"] == "ready" and r.json()["generation"] == pipeline.index.manifest["generation"]


def test_openapi_documents_the_endpoints(client):
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/api/chat", "/api/search", "/api/feedback", "/api/documents", "/healthz", "/readyz"):
        assert path in paths


def test_feedback_is_stored(client, conversation):
    r = client.post("/api/feedback", json={"session_id": conversation["session_id"],
                                           "message_id": conversation["message_id"], "rating": -1,
                                           "comment": "manca il dato del 2024"})
    assert r.status_code == 200, r.text
    store = client.app.state.services.store
    stored = [f for f in store.feedback() if f.id == r.json()["id"]]
    assert stored and stored[0].rating == -1 and stored[0].comment == "manca il dato del 2024"
    assert stored[0].message_id == conversation["message_id"]


# --- bad input: always 4xx with a clear JSON message ------------------------------------------
def assert_client_error(r, status: int | tuple, code: str | None = None) -> dict:
    statuses = status if isinstance(status, tuple) else (status,)
    assert r.status_code in statuses, (r.status_code, r.text)
    body = r.json()
    assert isinstance(body["detail"], str) and len(body["detail"]) > 10
    if code:
        assert body["code"] == code, body
    return body


@pytest.mark.parametrize("payload, status, code", [
    ({"message": ""}, 422, "bad_question"),
    ({"message": "   \n\t  "}, 422, "bad_question"),
    ({"message": "x" * 2001}, 422, "bad_question"),
    ({"message": "x" * 50_000}, 422, "validation_error"),
    ({"message": 42}, 422, "validation_error"),
    ({"message": None}, 422, "validation_error"),
    ({"message": ["a"]}, 422, "validation_error"),
    ({"message": "ciao", "session_id": 7}, 422, "validation_error"),
    ({"message": "ciao", "language": "de"}, 422, "validation_error"),
    ({"message": "ciao", "unexpected": True}, 422, "validation_error"),
    ({}, 422, "validation_error"),
    ({"message": "ciao", "session_id": "no-such-session"}, 404, "unknown_session"),
])
def test_chat_bad_input(client, payload, status, code):
    body = assert_client_error(client.post("/api/chat", json=payload), status, code)
    assert bool(body.get("errors")) == (code == "validation_error")  # field errors exactly for invalid input
    assert all(e["field"] and e["message"] for e in body.get("errors", []))
    assert "x" * 100 not in str(body)  # the input is not echoed back


def test_too_long_message_says_the_limit(client):
    body = assert_client_error(client.post("/api/chat", json={"message": "parola " * 400}), 422, "bad_question")
    assert "2000" in body["detail"]
    ok = client.post("/api/chat", json={"message": "a" * 2000})  # the limit itself is accepted
    assert ok.status_code == 200


@pytest.mark.parametrize("raw, content_type", [
    (b"{not json", "application/json"),
    (b'{"message": "ciao",}', "application/json"),
    (b"", "application/json"),
    (b"[]", "application/json"),
    (b'"ciao"', "application/json"),
    (b"message=ciao", "application/x-www-form-urlencoded"),
    (b"\xff\xfe\x00", "application/json"),
])
@pytest.mark.parametrize("path", ["/api/chat", "/api/search", "/api/feedback"])
def test_invalid_json_bodies(client, path, raw, content_type):
    r = client.post(path, content=raw, headers={"Content-Type": content_type})
    assert_client_error(r, (400, 422))


@pytest.mark.parametrize("payload", [
    {"query": ""},
    {"query": "   "},
    {"query": "mobilità", "k": 0},
    {"query": "mobilità", "k": 51},
    {"query": "mobilità", "k": "5"},
    {"query": "mobilità", "filters": {"year": "2026"}},
    {"query": "mobilità", "filters": {"area": "quattro"}},
    {"query": "mobilità", "filters": {"colour": "blue"}},
    {"query": "mobilità", "filters": []},
    {"query": 3},
])
def test_search_bad_input(client, payload):
    assert_client_error(client.post("/api/search", json=payload), 422)


def test_feedback_bad_input(client, conversation):
    sid, mid = conversation["session_id"], conversation["message_id"]
    ok = {"session_id": sid, "message_id": mid, "rating": 1}
    for bad in ({**ok, "rating": 2}, {**ok, "rating": 0}, {**ok, "rating": "1"}, {**ok, "rating": True},
                {**ok, "rating": 1.0}, {**ok, "comment": 5}, {**ok, "comment": "x" * 2001},
                {"session_id": sid, "rating": 1}, {**ok, "session_id": ""}):
        assert_client_error(client.post("/api/feedback", json=bad), 422, "validation_error")
    assert_client_error(client.post("/api/feedback", json={**ok, "session_id": "nope"}), 404, "unknown_session")
    assert_client_error(client.post("/api/feedback", json={**ok, "message_id": "nope"}), 404, "unknown_message")
    # The user's own message is not an answer; an answer of another session is not this session's.
    user_msg = next(m for m in client.app.state.services.store.messages(sid) if m.role == "user")
    assert_client_error(client.post("/api/feedback", json={**ok, "message_id": user_msg.id}), 404, "unknown_message")
    other = client.post("/api/chat", json={"message": MOBILITY}).json()
    assert_client_error(client.post("/api/feedback", json={**ok, "message_id": other["message_id"]}), 404,
                        "unknown_message")


def test_unknown_routes_and_methods_are_json(client):
    assert_client_error(client.get("/api/nothing"), 404, "not_found")
    assert_client_error(client.get("/api/chat"), 405, "method_not_allowed")
    assert_client_error(client.get("/api/ui/de"), 422, "validation_error")


# --- limits and CORS --------------------------------------------------------------------------
def test_rate_limit_429_with_retry_after(settings, built_index, tmp_path):
    with client_for(app_settings(settings, tmp_path, rate_limit="3/minute")) as c:
        for _ in range(3):
            assert c.post("/api/search", json={"query": "mobilità"}).status_code == 200
        r = c.post("/api/chat", json={"message": MOBILITY})
        body = assert_client_error(r, 429, "rate_limited")
        retry = int(r.headers["Retry-After"])
        assert 1 <= retry <= 60 and body["retry_after"] == retry
        assert c.get("/healthz").status_code == 200 and c.get("/api/documents").status_code == 200
    # Another client (address) has its own budget.
    with client_for(app_settings(settings, tmp_path, rate_limit="1/minute"), client=("10.0.0.1", 1)) as a, \
            client_for(app_settings(settings, tmp_path, rate_limit="1/minute"), client=("10.0.0.2", 1)) as b:
        assert a.post("/api/search", json={"query": "mobilità"}).status_code == 200
        assert a.post("/api/search", json={"query": "mobilità"}).status_code == 429
        assert b.post("/api/search", json={"query": "mobilità"}).status_code == 200


def test_rate_limit_setting_is_validated(settings):
    from pydantic import ValidationError

    from sibyl.settings import Settings

    with pytest.raises(ValidationError):
        Settings(rate_limit="lots", _env_file=None)
    assert Settings(rate_limit="", _env_file=None).rate_limit == ""


def test_cors_off_by_default(client):
    r = client.post("/api/search", json={"query": "mobilità"}, headers={"Origin": "https://evil.example"})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
    pre = client.options("/api/chat", headers={"Origin": "https://evil.example",
                                                 "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in pre.headers


def test_cors_allowed_origins(settings, built_index, tmp_path):
    site = "https://www.comune.lecce.it"
    with client_for(app_settings(settings, tmp_path, cors_origins=f"{site}, https://other.example")) as c:
        pre = c.options("/api/chat", headers={"Origin": site, "Access-Control-Request-Method": "POST",
                                              "Access-Control-Request-Headers": "content-type"})
        assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == site
        r = c.post("/api/search", json={"query": "mobilità"}, headers={"Origin": site})
        assert r.headers["access-control-allow-origin"] == site
        r = c.post("/api/search", json={"query": "mobilità"}, headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers


# --- persistence, expiry, retention -----------------------------------------------------------
def test_restart_keeps_sessions_messages_and_feedback(settings, built_index, tmp_path):
    s = app_settings(settings, tmp_path)
    with client_for(s) as c:
        first = c.post("/api/chat", json={"message": MOBILITY}).json()
        fb = c.post("/api/feedback", json={"session_id": first["session_id"], "message_id": first["message_id"],
                                           "rating": 1}).json()
    with client_for(s) as c:  # a new app instance (new pipeline, new store) on the same data
        store = c.app.state.services.store
        assert [f.id for f in store.feedback() if f.message_id == first["message_id"]] == [fb["id"]]
        assert [m.role for m in store.messages(first["session_id"])] == ["user", "assistant"]
        follow = c.post("/api/chat", json={"message": "e per le biciclette?", "session_id": first["session_id"]})
        assert follow.status_code == 200 and follow.json()["followup"] is True
        again = c.post("/api/feedback", json={"session_id": first["session_id"], "message_id": first["message_id"],
                                              "rating": -1})
        assert again.status_code == 200


def _age(store: Store, **changes) -> None:
    with store.Session() as db:
        for model, ident, field, delta in changes.values():
            row = db.get(model, ident)
            setattr(row, field, utcnow() - delta)
        db.commit()


def test_idle_session_expires(settings, built_index, tmp_path):
    with client_for(app_settings(settings, tmp_path, session_idle_minutes=5)) as c:
        first = c.post("/api/chat", json={"message": MOBILITY}).json()
        sid = first["session_id"]
        assert c.post("/api/chat", json={"message": "e per le biciclette?", "session_id": sid}).status_code == 200
        _age(c.app.state.services.store, s=(ChatSession, sid, "last_seen_at", timedelta(minutes=6)))
        assert_client_error(c.post("/api/chat", json={"message": "e per il 2026?", "session_id": sid}), 404,
                            "unknown_session")
        fresh = c.post("/api/chat", json={"message": "e per il 2026?"})
        assert fresh.status_code == 200 and fresh.json()["session_id"] != sid


def test_retention_purge_on_startup_and_periodically(settings, built_index, tmp_path):
    s = app_settings(settings, tmp_path, retention_days=30, purge_interval_minutes=0.01)
    with client_for(s) as c:
        old = c.post("/api/chat", json={"message": MOBILITY}).json()
        store = c.app.state.services.store
        old_ids = [m.id for m in store.messages(old["session_id"])]
        c.post("/api/feedback", json={"session_id": old["session_id"], "message_id": old["message_id"], "rating": 1})
        _age(store, **{f"m{i}": (Message, mid, "created_at", timedelta(days=31)) for i, mid in enumerate(old_ids)},
             s=(ChatSession, old["session_id"], "last_seen_at", timedelta(days=31)))
        recent = c.post("/api/chat", json={"message": MOBILITY}).json()
        deadline = time.monotonic() + 10
        while store.get_message(old["message_id"]) is not None and time.monotonic() < deadline:
            time.sleep(0.2)  # the lifespan's periodic purge runs every 0.6 s here
        assert store.get_message(old["message_id"]) is None
        assert all(f.message_id != old["message_id"] for f in store.feedback())
        assert store.get_message(recent["message_id"]) is not None

    later = app_settings(settings, tmp_path, retention_days=30, purge_interval_minutes=60)
    store = Store.from_settings(later)
    ids = [m.id for m in store.messages(recent["session_id"])]
    _age(store, **{f"m{i}": (Message, mid, "created_at", timedelta(days=45)) for i, mid in enumerate(ids)})
    store.engine.dispose()
    with client_for(later) as c:  # the purge at startup
        assert c.app.state.services.store.get_message(recent["message_id"]) is None


# --- the web page's files ---------------------------------------------------------------------
class _Text(HTMLParser):
    def __init__(self):
        super().__init__()
        self.text: list[str] = []

    def handle_data(self, data):
        if data.strip():
            self.text.append(data.strip())


@pytest.mark.parametrize("path, frame", [("/", "frame-ancestors 'none'"), ("/embed", "frame-ancestors *")])
def test_pages_are_served_with_csp_and_text_from_prompts(client, path, frame):
    r = client.get(path)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and frame in csp
    parser = _Text()
    parser.feed(r.text)
    ui = set(prompts.catalog("ui", "it").values())
    assert parser.text and set(parser.text) <= ui, "the page's text is rendered from prompts/ui.<lang>.toml"
    assert client.get("/static/chat.js").status_code == 200 and client.get("/static/chat.css").status_code == 200


def test_ui_strings_in_both_languages(client):
    it, en = client.get("/api/ui/it").json(), client.get("/api/ui/en").json()
    assert set(it) == set(en) and all(it.values()) and all(en.values())
    keys_used = set(re.findall(r"""\bt\(\s*["']([a-z0-9_]+)["']""", (STATIC / "chat.js").read_text()))
    keys_used |= set(re.findall(r'data-ui(?:-label|-placeholder)?="([a-z0-9_]+)"', (STATIC / "index.html").read_text()))
    assert keys_used and keys_used <= set(it), keys_used - set(it)
    with (Path(prompts.__file__).parent / "ui.en.toml").open("rb") as fh:
        assert tomllib.load(fh) == en


def test_page_script_never_parses_data_as_html():
    js = (STATIC / "chat.js").read_text()
    code = "\n".join(line for line in js.splitlines() if not line.strip().startswith(("*", "/*", "//")))
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in code, sink
