"""The composition root and the layers: no index needed (tests/fakes.FakePipeline), so this is unit tier.

The real FastAPI app, store and conversation service run on a fake pipeline injected through
build_services; the layer rules are read from the source (every import, lazy ones too)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from retrieval.config import RetrievalConfig
from sibyl.conversation import Reply
from sibyl.services import build_services
from sibyl.settings import Settings
from tests.fakes import FakePipeline

REPO = Path(__file__).resolve().parents[1]


def imported_packages(folder: str) -> dict[str, set[str]]:
    """Top-level packages each module of `folder` imports, at any indentation (lazy imports count)."""
    out: dict[str, set[str]] = {}
    for path in sorted((REPO / folder).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
        out[str(path.relative_to(REPO))] = names
    return out


def test_retrieval_imports_nothing_from_the_layers_above():
    offenders = {m: sorted(n & {"sibyl", "api", "bot"}) for m, n in imported_packages("retrieval").items()}
    assert {m: n for m, n in offenders.items() if n} == {}


def test_the_adapters_never_import_each_other():
    api_to_bot = {m for m, n in imported_packages("api").items() if "bot" in n}
    bot_to_api = {m for m, n in imported_packages("bot").items() if "api" in n}
    assert api_to_bot == set() and bot_to_api == set()


def test_the_retrieval_config_keeps_secrets_out_of_its_repr(tmp_path):
    settings = Settings(data_dir=tmp_path, llm_api_key="sk-secret-value", chroma_token="tok-secret-value",
                        _env_file=None)
    config = settings.retrieval_config()
    assert isinstance(config, RetrievalConfig) and config.index_dir == tmp_path / "index"
    assert config.llm_api_key == "sk-secret-value" and config.chroma_token == "tok-secret-value"
    assert "secret-value" not in repr(config)
    with pytest.raises(AttributeError):
        config.top_k = 9  # type: ignore[misc]  # frozen: one config per process, read by every stage


@pytest.fixture
def fake_app(tmp_path):
    settings = Settings(data_dir=tmp_path, rate_limit="", _env_file=None)
    fake = FakePipeline(settings=settings, tokens=["Il Comune ", "realizza ", "piste."])
    app = create_app(settings, build=lambda s: build_services(s, pipeline=fake))  # type: ignore[arg-type]
    with TestClient(app) as client:
        yield client, fake


def _events(raw: str) -> list[tuple[str, object]]:
    events = []
    for block in raw.replace("\r\n", "\n").split("\n\n"):
        name = next((line[6:].strip() for line in block.split("\n") if line.startswith("event:")), None)
        data = [line[5:].lstrip() for line in block.split("\n") if line.startswith("data:")]
        if name and data:
            events.append((name, json.loads("\n".join(data))))
    return events


def test_chat_and_stream_give_the_same_reply_on_an_injected_pipeline(fake_app):
    client, fake = fake_app
    plain = client.post("/api/chat", json={"message": "Cosa fa il Comune per le bici?"}).json()
    assert plain["answered"] and plain["session_id"] and plain["message_id"] and plain["followup"] is False
    assert plain["sources"][0]["document"] == "fake-dup" and plain["structured"]["bullets"]
    with client.stream("POST", "/api/chat/stream", json={"message": "Cosa fa il Comune per le bici?"}) as r:
        events = _events(r.read().decode())
    assert [name for name, _ in events] == ["token", "token", "token", "final"]
    assert "".join(str(data) for name, data in events[:-1]) == "Il Comune realizza piste."
    final = events[-1][1]
    assert isinstance(final, dict) and final.keys() == plain.keys() and final["answer"] == plain["answer"]
    assert fake.asked == ["Cosa fa il Comune per le bici?"] * 2


def test_stream_runs_within_the_cpu_limiter_like_chat(fake_app):
    """One streaming path: the reply runs in Services.run (the CPU limiter /api/chat uses), not a raw thread."""
    client, fake = fake_app
    services = client.app.state.services
    seen: list[float] = []
    ask = fake.ask

    def counting_ask(*args, **kwargs):
        seen.append(services.cpu_limiter.borrowed_tokens)
        return ask(*args, **kwargs)

    fake.ask = counting_ask  # type: ignore[method-assign]
    client.post("/api/chat", json={"message": "bici?"})
    with client.stream("POST", "/api/chat/stream", json={"message": "bici?"}) as r:
        r.read()
    assert seen == [1, 1]


def test_stream_refuses_bad_input_before_any_event(fake_app):
    client, _ = fake_app
    r = client.post("/api/chat/stream", json={"message": "   "})
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/json") and r.json()["detail"]
    r = client.post("/api/chat/stream", json={"message": "bici?", "session_id": "no-such-session"})
    assert r.status_code == 404


def test_a_reply_is_typed_read_only_and_its_json_is_built_once(fake_app):
    client, fake = fake_app
    services = client.app.state.services
    reply = services.conversation.reply("E le bici?", channel="web")
    assert isinstance(reply, Reply) and reply.answer.answered and reply.session_id and reply.message_id
    payload = reply.to_dict()
    assert payload == dict(reply) and payload["session_id"] == reply.session_id
    assert {**reply}["answer"] == reply.answer.answer  # channels may still read it as a mapping...
    with pytest.raises(TypeError):
        reply["answer"] = "changed"  # type: ignore[index]  # ...but never add keys to it
    payload["answer"] = "changed"
    assert reply["answer"] == reply.answer.answer


def test_the_console_and_translations_come_built_with_the_services(fake_app):
    client, _ = fake_app
    services = client.app.state.services
    assert client.app.state.operator_console.operators is services.backoffice.operators
    assert client.app.state.operator_console.documents is services.backoffice.documents
    assert services.translations is not None
    assert client.get("/api/documents").json()["generation"] == "fake-generation"


def test_the_bots_cpu_work_waits_for_a_free_slot():
    """Answers, transcriptions and voice notes of the Telegram bot go through the CPU limiter like the API's."""
    import threading
    import time

    import anyio

    from bot.context import BotServices

    services = BotServices(conversation=None, settings=None, prefs=None, limiter=None,  # type: ignore[arg-type]
                           cpu=anyio.CapacityLimiter(1))
    running, most = [0], [0]
    lock = threading.Lock()

    def work() -> None:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(services.run, work)

    anyio.run(main)
    assert most[0] == 1
