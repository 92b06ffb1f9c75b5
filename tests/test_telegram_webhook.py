"""Webhook mode: the FastAPI route checks Telegram's secret header and feeds the same Application,
which answers over the wire to the local Bot API peer."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from tests.telegram_peer import BotAPIPeer, message, user

pytestmark = pytest.mark.slow

TOKEN = "5151515151:AAE-webhook-test-token_abcdefghij"
SECRET = "s3cret-Header_value"
HOOK = "https://sibyl.example.org/telegram/webhook"


@pytest.fixture(scope="module")
def peer():
    p = BotAPIPeer(TOKEN).start()
    yield p
    p.stop()


def _app(settings, pipeline) -> FastAPI:
    """The webhook route alone, on services from the composition root (sharing the session's pipeline)."""
    from bot.webhook import install
    from sibyl.services import build_services

    app = FastAPI()
    app.state.settings = settings
    app.state.services = build_services(settings, pipeline=pipeline, backoffice=False)
    install(app)
    return app


@pytest.fixture(scope="module")
def client(peer, settings, pipeline, tmp_path_factory):
    db = tmp_path_factory.mktemp("webhook") / "bot.db"
    hooked = settings.model_copy(update={
        "telegram_bot_token": SecretStr(TOKEN), "telegram_api_base_url": peer.url, "telegram_webhook_url": HOOK,
        "telegram_webhook_secret": SecretStr(SECRET), "database_url": f"sqlite:///{db}"})
    with TestClient(_app(hooked, pipeline)) as c:
        yield c


def test_startup_registers_the_webhook_with_its_secret(client, peer):
    hooks = peer.calls_since(0, "setWebhook")
    assert len(hooks) == 1
    assert hooks[0].params["url"] == HOOK and hooks[0].params["secret_token"] == SECRET
    assert len(peer.calls_since(0, "setMyCommands")) == 3
    assert not peer.calls_since(0, "getUpdates")  # no polling in webhook mode


def test_wrong_or_missing_secret_is_refused(client, peer):
    update = {"update_id": 1, **message(301, "/start", user(301, "en", "Ann"))}
    mark = peer.mark()
    for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": "nope"}, {"X-Telegram-Bot-Api-Secret-Token": SECRET + "x"}):
        r = client.post("/telegram/webhook", json=update, headers=headers)
        assert r.status_code == 403 and "Secret-Token" in r.json()["detail"]
    assert not peer.calls_since(mark, "sendMessage")


def test_an_update_with_the_secret_is_answered(client, peer):
    mark = peer.mark()
    r = client.post("/telegram/webhook", json={"update_id": 2, **message(302, "/start", user(302, "en", "Ann"))},
                    headers={"X-Telegram-Bot-Api-Secret-Token": SECRET})
    assert r.status_code == 200 and r.json() == {"ok": True}
    assert peer.wait_sent(mark, chat_id=302)[0].result["text"].startswith("Hi Ann!")
    mark = peer.mark()
    question = message(302, "Cosa fa il Comune per la mobilità sostenibile?", user(302, "en", "Ann"))
    client.post("/telegram/webhook", json={"update_id": 3, **question},
                headers={"X-Telegram-Bot-Api-Secret-Token": SECRET})
    answer = peer.wait_sent(mark, chat_id=302)[0]
    assert "Fonti:" in answer.result["text"]
    # In the API's process the bot answers within the API's CPU slots, not beside them.
    app = client.app
    assert app.state.telegram.bot_data.cpu is app.state.services.cpu_limiter  # type: ignore[attr-defined]


def test_malformed_update_is_a_400_and_the_bot_keeps_serving(client, peer):
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
    for body in (b"not json", b"[1, 2]", b'{"update_id": 4, "message": {"text": "no chat"}}'):
        r = client.post("/telegram/webhook", content=body, headers={**headers, "Content-Type": "application/json"})
        assert r.status_code == 400 and r.json()["detail"] == "malformed update"
    mark = peer.mark()
    client.post("/telegram/webhook", json={"update_id": 5, **message(303, "/urp", user(303, "it"))}, headers=headers)
    assert "comune.lecce.it" in peer.wait_sent(mark, chat_id=303)[0].result["text"]


def test_route_is_404_when_webhook_mode_is_off(settings, pipeline, tmp_path):
    off = settings.model_copy(update={"telegram_webhook_url": None, "database_url": f"sqlite:///{tmp_path / 'off.db'}"})
    with TestClient(_app(off, pipeline)) as c:
        r = c.post("/telegram/webhook", json={"update_id": 1}, headers={"X-Telegram-Bot-Api-Secret-Token": SECRET})
    assert r.status_code == 404 and "TELEGRAM_WEBHOOK_URL" in r.json()["detail"]


def test_the_served_app_includes_the_webhook_route(settings):
    from sibyl.server import create_app

    client = TestClient(create_app(settings))  # no lifespan: webhook mode stays off
    r = client.post("/telegram/webhook", json={"update_id": 1}, headers={"X-Telegram-Bot-Api-Secret-Token": SECRET})
    assert r.status_code == 404 and "TELEGRAM_WEBHOOK_URL" in r.json()["detail"]  # our route, not a missing one
    assert client.post("/telegram/nowhere", json={}).status_code in (404, 405)


def test_the_api_alone_does_not_know_the_bot(settings):
    """api/ and bot/ are adapters that never import each other: the webhook is mounted by sibyl.server."""
    from api.app import create_app

    client = TestClient(create_app(settings))
    assert client.post("/telegram/webhook", json={}).status_code in (404, 405)
    r = client.post("/telegram/webhook", json={}, headers={"X-Telegram-Bot-Api-Secret-Token": SECRET})
    assert "TELEGRAM_WEBHOOK_URL" not in r.text
