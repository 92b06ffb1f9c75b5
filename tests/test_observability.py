"""Structured logs and Prometheus metrics through a real FastAPI app, with a real pipeline behind it."""

from __future__ import annotations

import io
import json
import logging

import pytest
from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from retrieval.index import IndexStore
from sibyl import observability
from sibyl.observability import configure_logging, install_observability, observe_update, record_answer
from sibyl.settings import Settings

MOBILITY = "Cosa fa il Comune per la mobilità sostenibile?"
OFF_TOPIC = "Qual è la ricetta della parmigiana di melanzane?"
BOT_TOKEN = "123456789:AAHfakeTokenForTests_abcdefghijklmnop"


@pytest.fixture
def logs():
    """Route every log record into a buffer as the service would (JSON), restore logging afterwards."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level, observability._configured)
    buffers = []

    def configure(**overrides) -> io.StringIO:
        buf = io.StringIO()
        configure_logging(Settings(_env_file=None, **overrides), stream=buf)
        buffers.append(buf)
        return buf

    yield configure
    for h in list(root.handlers):
        if h not in saved[0]:
            root.removeHandler(h)
    root.setLevel(saved[1])
    observability._configured = saved[2]
    configure_logging.__globals__["_secret_values"].clear()
    observability._log_messages = False


def lines(buf: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buf.getvalue().splitlines() if line.strip()]


def make_app(pipeline) -> FastAPI:
    app = FastAPI()
    install_observability(app)

    @app.get("/ask")
    def ask(q: str, lang: str | None = None):  # sync: runs in the thread pool, like a real endpoint would
        answer = pipeline.ask(q, language=lang)
        record_answer("web", answer)
        return answer.to_dict()

    @app.get("/items/{item_id}")
    def item(item_id: int):
        if item_id == 0:
            raise HTTPException(404, "no such item")
        return {"id": item_id}

    @app.get("/boom")
    def boom():
        raise RuntimeError("unexpected")

    return app


def metric(text: str, name: str, **labels) -> float | None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return None


def test_one_json_line_per_request_without_the_message(logs, pipeline):
    buf = logs()
    client = TestClient(make_app(pipeline))
    r = client.get("/ask", params={"q": MOBILITY})
    assert r.status_code == 200 and r.json()["answered"]
    r2 = client.get("/ask", params={"q": OFF_TOPIC, "lang": "en"})
    assert r2.status_code == 200 and not r2.json()["answered"]
    access = [e for e in lines(buf) if e["event"] == "http_request"]
    assert len(access) == 2
    first, second = access
    assert first["route"] == "/ask" and first["status"] == 200 and first["method"] == "GET"
    assert first["latency_ms"] > 0 and first["level"] == "info" and first["timestamp"].endswith("Z")
    assert first["channel"] == "web" and first["language"] == "it" and first["answered"] is True
    assert first["outcome"] == "answered" and first["sources"] == len(r.json()["sources"]) > 0
    assert second["language"] == "en" and second["answered"] is False and second["outcome"] == "abstained"
    assert second["sources"] == 0
    text = buf.getvalue()
    assert "mobilità" not in text and "parmigiana" not in text, "message text must not be logged by default"
    assert r.json()["answer"][:40] not in text


def test_message_text_only_when_enabled(logs, pipeline):
    buf = logs(log_messages=True)
    TestClient(make_app(pipeline)).get("/ask", params={"q": MOBILITY})
    (line,) = [e for e in lines(buf) if e["event"] == "http_request"]
    assert line["question"] == MOBILITY and line["answer"]


def test_route_templates_errors_and_unmatched_paths(logs, pipeline):
    buf = logs()
    client = TestClient(make_app(pipeline), raise_server_exceptions=False)
    assert client.get("/items/41").status_code == 200
    assert client.get("/items/0").status_code == 404
    assert client.get("/boom").status_code == 500
    assert client.get("/no/such/path/12345").status_code == 404
    access = {(e["route"], e["status"]) for e in lines(buf) if e["event"] == "http_request"}
    assert {("/items/{item_id}", 200), ("/items/{item_id}", 404), ("/boom", 500), ("<unmatched>", 404)} <= access
    assert not any("12345" in e["route"] for e in lines(buf) if e["event"] == "http_request")


def test_metrics_endpoint_in_prometheus_format(logs, pipeline, settings):
    logs()
    client = TestClient(make_app(pipeline))
    text0 = client.get("/metrics").text
    before_req = metric(text0, "sibyl_http_requests_total", method="GET", route="/items/{item_id}", status="200") or 0
    before_ok = metric(text0, "sibyl_answers_total", channel="web", language="it", outcome="answered") or 0
    before_no = metric(text0, "sibyl_answers_total", channel="web", language="en", outcome="abstained") or 0
    for i in range(3):
        client.get(f"/items/{i + 1}")
    client.get("/ask", params={"q": MOBILITY})
    client.get("/ask", params={"q": OFF_TOPIC, "lang": "en"})
    client.get("/ask", params={"q": "ciao"})
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert metric(text, "sibyl_http_requests_total", method="GET", route="/items/{item_id}",
                  status="200") == before_req + 3
    assert metric(text, "sibyl_http_request_duration_seconds_count", method="GET", route="/ask") >= 3
    assert metric(text, "sibyl_http_request_duration_seconds_bucket", method="GET", route="/ask", le="+Inf") >= 3
    assert metric(text, "sibyl_answers_total", channel="web", language="it", outcome="answered") == before_ok + 1
    assert metric(text, "sibyl_answers_total", channel="web", language="en", outcome="abstained") == before_no + 1
    assert metric(text, "sibyl_answers_total", channel="web", language="it", outcome="greeting") >= 1
    from sibyl.observability import retrieval_hooks

    manifest = IndexStore(settings, hooks=retrieval_hooks()).load().manifest  # loading sets the index gauges
    text = client.get("/metrics").text
    assert metric(text, "sibyl_index_chunks") == manifest["chunks"] > 0
    assert metric(text, "sibyl_index_documents") == len(manifest["documents"])
    assert metric(text, "sibyl_index_build_seconds") == pytest.approx(manifest["ingest_seconds"])
    assert metric(text, "sibyl_ingest_duration_seconds_count") is not None
    assert "/metrics" not in client.get("/openapi.json").text


def test_tokens_and_secrets_never_reach_the_log(logs):
    buf = logs(llm_api_key="sk-very-secret-key", database_url="postgresql://sibyl:pg-pass-42@db/sibyl")
    lib = logging.getLogger("telegram.ext.Updater")
    lib.error("Network error on https://api.telegram.org/bot%s/getUpdates", BOT_TOKEN)
    try:
        raise ConnectionError(f"POST https://api.telegram.org/bot{BOT_TOKEN}/sendMessage: timed out")
    except ConnectionError:
        logging.getLogger("bot").exception("send failed")
    logging.getLogger("sibyl.llm").warning("request with key sk-very-secret-key refused")
    logging.getLogger("sibyl.store").info("connecting to postgresql://sibyl:pg-pass-42@db/sibyl")
    observability.access_log.info("startup", telegram_bot_token=BOT_TOKEN, authorization="Bearer x", llm_max_tokens=400)
    text = buf.getvalue()
    for secret in (BOT_TOKEN, "sk-very-secret-key", "pg-pass-42", "Bearer x"):
        assert secret not in text
    events = lines(buf)
    assert len(events) == 5 and all("[REDACTED]" in json.dumps(e) for e in events)
    assert "ConnectionError" in events[1]["exception"]  # the traceback is kept, minus the token
    assert events[4]["llm_max_tokens"] == 400  # numbers are not secrets


def test_httpx_request_lines_are_not_logged(logs):
    buf = logs()
    logging.getLogger("httpx").info('HTTP Request: POST https://api.telegram.org/bot%s/getMe "200 OK"', BOT_TOKEN)
    assert buf.getvalue() == ""


def test_one_line_per_bot_update(logs, pipeline):
    buf = logs()
    with observe_update("telegram", "message", chat_type="private"):
        record_answer("telegram", pipeline.ask(MOBILITY))
    with pytest.raises(ValueError), observe_update("telegram", "callback_query"):
        raise ValueError("bad callback data")
    ok, failed = [e for e in lines(buf) if e["event"] == "bot_update"]
    assert ok["kind"] == "message" and ok["result"] == "ok" and ok["channel"] == "telegram"
    assert ok["answered"] is True and ok["language"] == "it" and ok["sources"] > 0 and ok["latency_ms"] > 0
    assert ok["chat_type"] == "private" and "question" not in ok
    assert failed["kind"] == "callback_query" and failed["result"] == "error" and failed["error"] == "ValueError"
    assert failed["level"] == "error"
    assert "mobilità" not in buf.getvalue()


def test_text_format_is_available(logs):
    buf = logs(log_format="text")
    observability.access_log.info("http_request", route="/healthz", status=200)
    out = buf.getvalue()
    assert "http_request" in out and "route=/healthz" in out and not out.lstrip().startswith("{")


def test_answer_outside_a_request_is_still_logged(logs, pipeline):
    buf = logs()
    record_answer("cli", pipeline.ask(MOBILITY))
    (line,) = lines(buf)
    assert line["event"] == "answer" and line["channel"] == "cli" and line["answered"] is True


def test_python_telegram_bot_update_processor(logs, pipeline):
    """Every update through the processor gets its line; answers made in a worker thread land on it."""
    import asyncio

    from telegram import Update

    from sibyl.observability import telegram_update_kind, telegram_update_processor

    chat = {"id": 42, "type": "private"}
    user = {"id": 7, "is_bot": False, "first_name": "Ada", "language_code": "it"}
    text_update = Update.de_json({"update_id": 1, "message": {"message_id": 5, "date": 0, "chat": chat,
                                                              "from": user, "text": MOBILITY}}, None)
    command = Update.de_json({"update_id": 2, "message": {"message_id": 6, "date": 0, "chat": chat, "from": user,
                                                          "text": "/start"}}, None)
    callback = Update.de_json({"update_id": 3, "callback_query": {"id": "c1", "from": user, "chat_instance": "x",
                                                                  "data": "sources:1"}}, None)
    assert [telegram_update_kind(u) for u in (text_update, command, callback)] == ["message", "command",
                                                                                    "callback_query"]
    buf = logs()
    processor = telegram_update_processor(2)

    async def handle_text():  # like a handler that runs the conversation service off the event loop
        await asyncio.to_thread(lambda: record_answer("telegram", pipeline.ask(MOBILITY)))

    async def handle_nothing():
        await asyncio.sleep(0)

    async def main():
        await processor.initialize()
        await processor.process_update(text_update, handle_text())
        await processor.process_update(command, handle_nothing())
        await processor.process_update(callback, handle_nothing())
        await processor.shutdown()

    asyncio.run(main())
    text_line, command_line, callback_line = [e for e in lines(buf) if e["event"] == "bot_update"]
    assert text_line["kind"] == "message" and text_line["chat_type"] == "private"
    assert text_line["answered"] is True and text_line["sources"] > 0 and text_line["language"] == "it"
    assert command_line["kind"] == "command" and "answered" not in command_line
    assert callback_line["kind"] == "callback_query" and "chat_type" not in callback_line
    assert "mobilità" not in buf.getvalue()
