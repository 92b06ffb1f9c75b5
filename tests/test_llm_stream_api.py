"""POST /api/chat/stream over the real app, index and store; a fake LangChain chat model at the edge."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from api.app import create_app
from retrieval.llm import LLMAnswerer

pytestmark = pytest.mark.slow

QUESTION = "Quali progetti ha il Comune per la mobilità sostenibile?"


def parse_sse(raw: str) -> list[tuple[str, object]]:
    events = []
    for block in raw.replace("\r\n", "\n").split("\n\n"):
        name, data = "message", []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip())
        if data:
            events.append((name, json.loads("\n".join(data))))
    return events


@pytest.fixture(scope="module")
def client(settings, built_index, tmp_path_factory):
    db = tmp_path_factory.mktemp("stream") / "sibyl.db"
    app_settings = settings.model_copy(update={"database_url": f"sqlite:///{db}", "rate_limit": "", "cors_origins": ""})
    with TestClient(create_app(app_settings), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def with_model(client, monkeypatch):
    pipeline = client.app.state.services.pipeline

    def install(*replies: str) -> None:
        model = GenericFakeChatModel(messages=iter([AIMessage(content=r) for r in replies]))
        monkeypatch.setattr(pipeline, "llm", LLMAnswerer(model, pipeline.settings))
    return install


def stream(client, **body) -> tuple[int, str, list]:
    with client.stream("POST", "/api/chat/stream", json=body) as r:
        raw = r.read().decode()
        return (r.status_code, r.headers.get("content-type", ""),
                parse_sse(raw) if r.status_code == 200 else json.loads(raw))


def test_without_a_model_one_final_event_like_api_chat(client):
    status, ctype, events = stream(client, message=QUESTION)
    assert status == 200 and ctype.startswith("text/event-stream")
    assert [name for name, _ in events] == ["final"]
    final = events[0][1]
    assert final["mode"] == "extractive" and final["answered"] and final["sources"]
    assert final["session_id"] and final["message_id"] and final["suggestions"]
    plain = client.post("/api/chat", json={"message": QUESTION}).json()
    assert final["answer"] == plain["answer"] and final.keys() == plain.keys()


def test_tokens_then_final_llm_answer_stored_like_any_other(client, with_model):
    extractive = client.app.state.services.pipeline.extractive(QUESTION)
    from tests.test_llm_answers import grounded_reply

    reply = grounded_reply(extractive)  # faithful to sources 1 and 2, so the support check keeps all of it
    with_model(reply)
    status, _, events = stream(client, message=QUESTION)
    assert status == 200
    names = [n for n, _ in events]
    assert names[-1] == "final" and set(names[:-1]) == {"token"} and len(names) > 5
    assert "".join(data for name, data in events if name == "token") == reply
    final = events[-1][1]
    assert final["mode"] == "llm" and final["answer"].startswith(reply) and "[1] " in final["answer"]
    fb = client.post("/api/feedback", json={"session_id": final["session_id"], "message_id": final["message_id"],
                                            "rating": 1})
    assert fb.status_code == 200, fb.text  # the streamed answer was persisted as a message of the session


def test_failed_check_final_event_replaces_the_streamed_text(client, with_model):
    with_model("Il Comune ha investito 4.321.987 euro nelle piste ciclabili [1].")
    status, _, events = stream(client, message=QUESTION)
    tokens = "".join(data for name, data in events if name == "token")
    final = events[-1][1]
    assert status == 200 and "4.321.987" in tokens
    assert final["mode"] == "extractive" and "4.321.987" not in final["answer"]
    assert final["answer"] == client.app.state.services.pipeline.extractive(QUESTION).answer


def test_followup_in_the_same_session(client):
    _, _, first = stream(client, message="Cosa fa il Comune per la mobilità?")
    session = first[-1][1]["session_id"]
    _, _, second = stream(client, message="e per le biciclette?", session_id=session)
    final = second[-1][1]
    assert final["session_id"] == session and final["followup"] is True


@pytest.mark.parametrize("body, status, code", [
    ({"message": "   "}, 422, "bad_question"),
    ({"message": "x" * 2500}, 422, "bad_question"),
    ({"message": 42}, 422, "validation_error"),
    ({"message": "ciao", "session_id": "no-such-session"}, 404, "unknown_session"),
    ({}, 422, "validation_error"),
])
def test_bad_input_is_a_json_error_before_any_event(client, body, status, code):
    got, ctype, data = stream(client, **body)
    assert (got, data["code"]) == (status, code) and ctype.startswith("application/json")


def test_invalid_json_is_400(client):
    r = client.post("/api/chat/stream", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["code"] == "invalid_json"


def test_stream_is_in_the_openapi_schema(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert "/api/chat/stream" in paths and "post" in paths["/api/chat/stream"]


def test_llm_mode_condenses_a_followup_with_the_conversation(client, with_model):
    standalone = "Cosa fa il Comune di Lecce per le biciclette e la mobilità ciclabile?"
    with_model("Risposta senza fonti.", f"Domanda autonoma: {standalone}", "Altra risposta senza fonti.")
    first = client.post("/api/chat", json={"message": "Cosa fa il Comune per la mobilità?"}).json()
    second = client.post("/api/chat", json={"message": "e per le biciclette?", "session_id": first["session_id"]})
    body = second.json()
    assert second.status_code == 200 and body["followup"] is True
    assert body["retrieval_query"] == standalone  # the model's rewrite drove retrieval
    assert body["mode"] == "extractive" or not body["answered"]  # the uncited reply was not shown as an answer
