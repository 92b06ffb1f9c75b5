"""LLM mode in real headless Chromium: the page streams the model's tokens from /api/chat/stream and
then shows the checked final answer, which is the extractive answer when the streamed text fails.

The real app runs under `sibyl serve`; the language model is the outermost edge, a loopback server
speaking OpenAI's chat-completions wire format (streamed chunks) with recorded replies.
"""

from __future__ import annotations

import json
import os
import threading
import time

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from tests.browser import free_port, make_driver, sibyl_server
from tests.test_web_browser import bot_messages, wait

pytestmark = pytest.mark.slow

QUESTION = "Quali progetti ha il Comune per la mobilità sostenibile?"
# Faithful to the question's sources (DUP 4.1, Performance Report 7.6): the sentence support check keeps both.
GROUNDED = ("Il Comune promuove e incentiva la mobilità sostenibile [1]. "
            "Nel 2023 ha riattivato il sistema park & ride con parcheggio e navetta [2].")
INVENTED = "Il Comune ha investito 4.321.987 euro nelle piste ciclabili [1]."


def recorded_openai(replies: list[str]) -> FastAPI:
    """OpenAI-compatible /v1/chat/completions: each streamed call gets the next recorded reply."""
    app = FastAPI()
    app.state.requests = []

    @app.post("/v1/chat/completions")
    async def completions(request: Request):
        body = await request.json()
        app.state.requests.append(body)
        if not body.get("stream"):  # e.g. a follow-up rewrite: echo the question
            text = body["messages"][-1]["content"].split("<domanda>")[-1].split("</domanda>")[0].strip()
            return JSONResponse({"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                                 "choices": [{"index": 0, "finish_reason": "stop",
                                              "message": {"role": "assistant", "content": text}}]})
        reply = replies[min(len([r for r in app.state.requests if r.get("stream")]) - 1, len(replies) - 1)]

        async def chunks():
            import asyncio

            words = reply.split(" ")
            for i, word in enumerate(words):
                delta = {"content": word + (" " if i < len(words) - 1 else "")}
                if i == 0:
                    delta["role"] = "assistant"
                yield "data: " + json.dumps({"id": "x", "object": "chat.completion.chunk", "created": 0,
                                             "model": body["model"], "choices": [
                                                 {"index": 0, "delta": delta, "finish_reason": None}]}) + "\n\n"
                await asyncio.sleep(0.25)
            yield "data: " + json.dumps({"id": "x", "object": "chat.completion.chunk", "created": 0,
                                         "model": body["model"],
                                         "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}) + "\n\n"
            yield "data: [DONE]\n\n"
        return StreamingResponse(chunks(), media_type="text/event-stream")
    return app


@pytest.fixture(scope="module")
def model_server():
    app = recorded_openai([GROUNDED, INVENTED])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield app, f"http://127.0.0.1:{port}/v1"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def server(settings, built_index, tmp_path_factory, model_server):
    tmp = tmp_path_factory.mktemp("web-llm")
    env = dict(os.environ, SIBYL_DATA_DIR=str(settings.data_dir), SIBYL_CORPUS_DIR=str(settings.corpus_dir),
               SIBYL_DATABASE_URL=f"sqlite:///{tmp / 'sibyl.db'}", SIBYL_RATE_LIMIT="", HF_HUB_OFFLINE="1",
               SIBYL_API_WORKERS="1", SIBYL_LLM="openai:recorded", SIBYL_LLM_BASE_URL=model_server[1],
               SIBYL_LLM_TIMEOUT="30")
    with sibyl_server(env, tmp) as (url, _proc):
        yield {"url": url, "tmp": tmp}


def ask_watching_progress(driver, text: str, count_before: int):
    """Send a message; return the final bot article and every text the typing bubble showed meanwhile."""
    driver.execute_script("""
        window.__progress = [];
        const log = document.getElementById('log');
        window.__obs && window.__obs.disconnect();
        window.__obs = new MutationObserver(() => {
          const label = log.querySelector('.typing .typing-label');
          if (label) window.__progress.push(label.textContent);
        });
        window.__obs.observe(log, {childList: true, subtree: true, characterData: true});""")
    box = driver.find_element("id", "q")
    box.send_keys(text)
    box.send_keys("\n")
    wait(driver).until(lambda d: len(bot_messages(d)) > count_before or d.find_elements("css selector", ".msg.error"))
    assert not driver.find_elements("css selector", ".msg.error"), driver.find_element("id", "log").text
    return bot_messages(driver)[-1], driver.execute_script("return window.__progress")


def test_page_streams_tokens_then_shows_the_checked_answer(server, model_server, tmp_path):
    app, _ = model_server
    driver = make_driver(tmp_path / "profile")
    try:
        driver.get(server["url"] + "/")
        wait(driver).until(lambda d: d.find_elements("css selector", "#log article.welcome"))

        # 1. A grounded model reply: streamed word by word into the typing bubble, then shown with citations.
        article, progress = ask_watching_progress(driver, QUESTION, 0)
        partial = [p for p in progress if p.startswith("Il Comune")]
        assert len(set(partial)) >= 3, progress  # several growing pieces, before the final answer
        assert all(GROUNDED.startswith(p.strip()) for p in partial)
        assert "Il Comune promuove e incentiva la mobilità sostenibile" in article.text
        assert article.find_elements("css selector", ".answer button.cite")
        assert article.find_elements("css selector", ".sources li")
        driver.save_screenshot(str(server["tmp"] / "llm-stream.png"))

        # 2. A reply with an invented amount: streamed, then replaced by the extractive answer.
        article, progress = ask_watching_progress(driver, QUESTION, 1)
        assert any("4.321.987" in p for p in progress), progress
        assert "4.321.987" not in article.text
        assert article.find_elements("css selector", ".answer button.cite")
        assert [r["stream"] for r in app.state.requests if r.get("stream")] == [True, True]
        sent = app.state.requests[-1]["messages"]
        assert sent[0]["role"] == "system" and QUESTION in sent[-1]["content"]
    finally:
        driver.quit()
