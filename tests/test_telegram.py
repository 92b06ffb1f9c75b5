"""The Telegram bot on the real Bot API wire: python-telegram-bot's Application, long polling a
local Bot API peer (tests/telegram_peer.py) over HTTP; assertions on the recorded calls."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import time

import pytest

from tests.telegram_peer import BOT_USERNAME, BotAPIPeer, callback, message, parse_telegram_html, polling, user

pytestmark = pytest.mark.slow

TOKEN = "4242424242:AAE-test-token-for-the-local-peer_x9"
ITALIAN_QUESTION = "Cosa fa il Comune per la mobilità sostenibile?"
RATE = "5/minute"


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record):
        self.lines.append(self.format(record))


@pytest.fixture(scope="module")
def log_records():
    handler = Records()
    root = logging.getLogger()
    root.addHandler(handler)
    levels = {}
    for name in ("httpx", "telegram", "sibyl"):  # as chatty as possible: the token must still not show
        levels[name] = logging.getLogger(name).level
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


@pytest.fixture(scope="module")
def peer():
    p = BotAPIPeer(TOKEN).start()
    yield p
    p.stop()


@pytest.fixture(scope="module")
def bot_settings(settings, tmp_path_factory):
    db = tmp_path_factory.mktemp("telegram") / "bot.db"
    return settings.model_copy(update={"telegram_bot_token": __import__("pydantic").SecretStr(TOKEN),
                                       "database_url": f"sqlite:///{db}", "telegram_rate_limit": RATE})


@pytest.fixture(scope="module")
def bot(peer, bot_settings, pipeline, log_records):
    """The real Application, long polling the peer from its own thread and event loop."""
    from bot.app import build_application
    from sibyl.conversation import ConversationService
    from sibyl.store import Store

    settings = bot_settings.model_copy(update={"telegram_api_base_url": peer.url})
    service = ConversationService(pipeline, Store.from_settings(settings))
    application = build_application(settings, service)
    with polling(application, peer) as loop:
        service.application, service.loop = application, loop  # for the splitter-path test
        yield service


def sent_text(call) -> str:
    return call.result["text"]


def buttons(call) -> list[list[dict]]:
    return (call.params.get("reply_markup") or {}).get("inline_keyboard", [])


def ask(peer, chat_id, text, sender, count=1, **kw):
    mark = peer.mark()
    peer.push(message(chat_id, text, sender, **kw))
    return peer.wait_sent(mark, count, chat_id=chat_id)


# --- startup -------------------------------------------------------------------------------------
def test_startup_registers_commands_in_both_languages(bot, peer):
    peer.wait_for(lambda calls: sum(c.method == "setMyCommands" for c in calls) >= 3)
    calls = peer.calls_since(0)
    assert calls[0].method == "getMe"
    assert any(c.method == "deleteWebhook" for c in calls)  # polling bootstrap
    commands = {c.params.get("language_code", ""): [x["command"] for x in c.params["commands"]]
                for c in calls if c.method == "setMyCommands"}
    assert commands["it"] == ["start", "help", "lingua", "urp"] == commands[""]
    assert commands["en"] == ["start", "help", "language", "urp"]


# --- /start, /help, /urp -------------------------------------------------------------------------
def test_start_in_the_users_language(bot, peer):
    it = ask(peer, 101, "/start", user(101, "it", "Anna"))[0]
    en = ask(peer, 102, "/start", user(102, "en-GB", "John"))[0]
    other = ask(peer, 103, "/start", user(103, "de", "Hans"))[0]
    assert sent_text(it).startswith("Ciao Anna!") and "Cosa fa il Comune per la mobilità sostenibile?" in sent_text(it)
    assert sent_text(en).startswith("Hi John!") and "What is the City doing for sustainable mobility?" in sent_text(en)
    assert sent_text(other).startswith("Ciao Hans!")  # neither it nor en: Italian
    assert it.params["parse_mode"] == "HTML"


def test_help_urp_and_unknown_command(bot, peer):
    assert "/lingua" in sent_text(ask(peer, 111, "/help", user(111, "it"))[0])
    assert "comune.lecce.it" in sent_text(ask(peer, 111, "/urp", user(111, "it"))[0])
    assert sent_text(ask(peer, 111, "/boh", user(111, "it"))[0]) == "Comando sconosciuto. Prova /help."


# --- a question, its sources, feedback, a follow-up and a suggestion -----------------------------
def test_question_sources_feedback_followup(bot, peer, pipeline):
    anna = user(120, "it", "Anna")
    mark = peer.mark()
    answer = ask(peer, 120, ITALIAN_QUESTION, anna)[0]
    assert peer.calls_since(mark, "sendChatAction")[0].params["action"] == "typing"
    text = sent_text(answer)
    # The same answer as the pipeline gives any channel, cited and with the Fonti line.
    expected = pipeline.ask(ITALIAN_QUESTION)
    assert expected.answered
    for line in expected.answer.split("\n"):
        assert line in text
    assert "[1]" in text and "Fonti:" in text and "<b>" in answer.params["text"]
    keyboard = buttons(answer)
    first = keyboard[0]
    assert [b["text"] for b in first] == ["📄 Fonti", "👍", "👎"]
    assert all(len(b["callback_data"].encode()) <= 64 for row in keyboard for b in row)
    suggestions = [row[0] for row in keyboard[1:]]
    assert suggestions, "an answered question offers related questions"

    # 📄 Fonti: the numbered sources with document, section and passage, as a reply; callback answered.
    mark = peer.mark()
    peer.push(callback(120, anna, first[0]["callback_data"], answer.result))
    sources = peer.wait_sent(mark, chat_id=120)[0]
    assert peer.wait_sent(mark, method="answerCallbackQuery")
    assert sources.params["reply_parameters"]["message_id"] == answer.result["message_id"]
    shown = sent_text(sources)
    for s in expected.sources:
        assert f"[{s.n}] {s.title}" in shown and s.section in shown
        assert s.text.split("\n")[-1].strip()[:60] in shown
    assert "<blockquote expandable>" in sources.params["text"]

    # 👎: stored as feedback on that answer, channel telegram, in the same store as the web.
    mark = peer.mark()
    peer.push(callback(120, anna, first[2]["callback_data"], answer.result))
    acked = peer.wait_sent(mark, method="answerCallbackQuery")[0]
    assert "Grazie" in acked.params["text"]
    prompt = peer.wait_sent(mark, chat_id=120)[0]  # a 👎 asks what was wrong (issue 17)
    assert prompt.params["reply_markup"]["force_reply"] is True
    assert not peer.calls_since(mark, "editMessageReplyMarkup")  # the thumbs stay: the vote can change
    message_id = first[2]["callback_data"].rpartition(":")[2]
    votes = [f for f in bot.store.feedback() if f.message_id == message_id]
    assert [(f.rating, f.channel) for f in votes] == [(-1, "telegram")]

    # A follow-up resolves against the chat's previous topic.
    follow = ask(peer, 120, "e per il 2026?", anna)[0]
    stored = bot.store.get_message(buttons(follow)[0][-1]["callback_data"].rpartition(":")[2])
    assert stored.retrieval_query != "e per il 2026?" and "mobilit" in stored.retrieval_query
    assert stored.session_id == votes[0].session_id  # same conversation

    # A suggestion button asks that question.
    mark = peer.mark()
    peer.push(callback(120, anna, suggestions[0]["callback_data"], answer.result))
    asked = peer.wait_sent(mark, chat_id=120)[0]
    full = bot.suggestions_for(suggestions[0]["callback_data"].rpartition(":")[2])[0]  # the button: a short label
    assert sent_text(asked).startswith("❓ " + full)
    assert peer.calls_since(mark, "answerCallbackQuery")


def test_forged_or_foreign_buttons_are_refused(bot, peer):
    mallory = user(130, "it", "Mallory")
    answer = ask(peer, 120, "Quali progetti di mobilità sostenibile?", user(120, "it", "Anna"))[0]
    mid = buttons(answer)[0][0]["callback_data"].rpartition(":")[2]
    before = len(bot.store.feedback())
    for data in (f"fb:-1:{mid}", "src:0123456789abcdef", "zz:whatever"):
        mark = peer.mark()
        foreign = dict(answer.result, chat={"id": 130, "type": "private"})
        peer.push(callback(130, mallory, data, foreign))  # another chat pressing a copied button
        alert = peer.wait_sent(mark, method="answerCallbackQuery")[0]
        assert alert.params["show_alert"] is True and "non è più valido" in alert.params["text"]
    assert len(bot.store.feedback()) == before


# --- languages -----------------------------------------------------------------------------------
def test_lingua_en_fixes_the_answer_language(bot, peer):
    from bot.prefs import ChatPreferences

    sara = user(140, "it", "Sara")
    assert "in English" in sent_text(ask(peer, 140, "/lingua en", sara)[0])
    assert ChatPreferences(bot.store).language("telegram:140") == "en"
    answer = ask(peer, 140, ITALIAN_QUESTION, sara)[0]
    assert "Sources:" in sent_text(answer) and "Fonti:" not in sent_text(answer)
    assert buttons(answer)[0][0]["text"] == "📄 Sources"
    assert "Usage: /language" in sent_text(ask(peer, 140, "/language xx", sara)[0])
    assert "lingua della domanda" in sent_text(ask(peer, 140, "/lingua auto", sara)[0])
    answer = ask(peer, 140, ITALIAN_QUESTION, sara)[0]
    assert "Fonti:" in sent_text(answer)


# --- groups --------------------------------------------------------------------------------------
def test_group_answers_only_when_addressed(bot, peer):
    group = -200
    alice, bob = user(201, "it", "Alice"), user(202, "it", "Bob")
    mark = peer.mark()
    peer.push(message(group, "Secondo voi cosa fa il Comune per la mobilità sostenibile?", alice))
    peer.push(message(group, None, bob, sticker={"file_id": "s1", "file_unique_id": "u1", "width": 1, "height": 1,
                                                  "is_animated": False, "is_video": False, "type": "regular"}))
    mentioned = message(group, f"@{BOT_USERNAME} cosa fa il Comune per la mobilità sostenibile?", bob)
    peer.push(mentioned)
    reply = peer.wait_sent(mark, chat_id=group)[0]
    time.sleep(1.0)  # room for a wrong reply to the first two messages to show up
    to_group = [c for c in peer.calls_since(mark) if c.method == "sendMessage" and int(c.params["chat_id"]) == group]
    assert len(to_group) == 1
    assert reply.params["reply_parameters"]["message_id"] == mentioned["message"]["message_id"]
    assert "Secondo voi" not in sent_text(reply) and BOT_USERNAME not in sent_text(reply)  # no echo
    assert "Fonti:" in sent_text(reply)

    # A reply to one of the bot's messages is addressed to it too.
    bot_message = dict(reply.result)
    followup = ask(peer, group, "e quali risultati nel 2023?", alice, reply_to=bot_message)[0]
    assert "Fonti:" in sent_text(followup) or "Non ho trovato" in sent_text(followup)


# --- long answers, flood control, network errors ------------------------------------------------
def _longest_sources_question(pipeline):
    """A real question whose cited passages are as long as the corpus allows: the objective
    statement of one of the longest passages (its area's other passages tend to be long too)."""
    from bot import render

    best = None
    records = sorted(pipeline.index.records.values(), key=lambda r: -len(r["text"]))
    for record in records[:12]:
        lines = [ln.split(":", 1)[-1].strip()[:300] for ln in record["text"].split("\n")[2:]]
        lines = [ln for ln in lines if len(ln.split()) >= 5]
        if lines:
            answer = pipeline.ask(lines[0])
            size = render.utf16_len(render.sources_html(answer.to_dict()["sources"], answer.language))
            if best is None or size > best[0]:
                best = (size, lines[0], answer)
            if size > 4096:
                break
    return best


def test_long_sources_are_sent_as_valid_html_parts(bot, peer, pipeline):
    from bot import render

    size, question, expected = _longest_sources_question(pipeline)
    full = render.sources_html(expected.to_dict()["sources"], expected.language)
    luca = user(150, "it", "Luca")
    answer = ask(peer, 150, question, luca)[0]
    mark = peer.mark()
    peer.push(callback(150, luca, buttons(answer)[0][0]["callback_data"], answer.result))
    peer.wait_sent(mark, len(render.split_html(full)), chat_id=150)
    time.sleep(0.3)
    parts = [c for c in peer.calls_since(mark, "sendMessage") if int(c.params["chat_id"]) == 150]
    assert len(parts) == len(render.split_html(full)) == (1 if size <= 4096 else len(parts))
    assert all(c.status == 200 for c in parts)  # the peer rejects unbalanced or over-long HTML with 400
    joined = "\n".join(sent_text(c) for c in parts)
    for s in expected.sources:
        assert s.text.split("\n")[-1].strip()[-40:] in joined  # nothing lost at a cut


def test_a_6000_character_answer_is_split_into_two_valid_messages(bot, peer, pipeline):
    """The send path every answer takes (split_html + sendMessage), with a 6,000-character answer made
    of real corpus lines with citation markers: the corpus's own answers are shorter than that."""
    import asyncio as _asyncio

    from bot import render
    from bot.handlers.common import send_text

    lines = ["Ecco cosa riportano i documenti del Comune di Lecce:", ""]
    records = sorted(pipeline.index.records.values(), key=lambda r: -len(r["text"]))
    for n, record in enumerate(records, start=1):
        lines += [f"- {ln} [{n}]" for ln in record["text"].split("\n")[2:] if ln.strip()]
        if sum(len(x) for x in lines) > 5900:
            break
    lines += ["", "Fonti:", "[1] <Relazione> & co."]
    body = render.answer_html({"language": "it", "answer": "\n".join(lines)})
    assert 6000 <= len(body) <= 8000
    mark = peer.mark()
    _asyncio.run_coroutine_threadsafe(send_text(bot.application.bot, 151, body), bot.loop).result(60)
    parts = [c for c in peer.calls_since(mark, "sendMessage") if int(c.params["chat_id"]) == 151]
    assert len(parts) == 2 and all(c.status == 200 for c in parts)
    for c in parts:
        assert render.utf16_len(c.params["text"]) <= 4096
        parse_telegram_html(c.params["text"])
    visible = parse_telegram_html(body)
    assert "\n".join(sent_text(c) for c in parts) == visible  # cut at a line boundary, nothing lost
    assert sent_text(parts[1]).endswith("[1] <Relazione> & co.")


def test_flood_control_retry_after_is_honoured(bot, peer):
    peer.fail_next("sendMessage", 429, retry_after=1)
    mark = peer.mark()
    peer.push(message(160, "/help", user(160, "it")))
    sent = peer.wait_sent(mark, chat_id=160)[0]
    attempts = [c for c in peer.calls_since(mark, "sendMessage") if int(c.params["chat_id"]) == 160]
    assert [c.status for c in attempts] == [429, 200]
    assert attempts[1].at - attempts[0].at >= 1.0
    assert "/lingua" in sent_text(sent)


def test_network_errors_are_retried(bot, peer):
    peer.fail_next("sendMessage", 502)
    mark = peer.mark()
    peer.push(message(161, "/urp", user(161, "it")))
    peer.wait_sent(mark, chat_id=161)
    attempts = [c for c in peer.calls_since(mark, "sendMessage") if int(c.params["chat_id"]) == 161]
    assert [c.status for c in attempts] == [502, 200]


def test_a_failing_update_gets_an_apology_and_the_bot_keeps_serving(bot, peer):
    peer.fail_next("sendMessage", 400, description="Bad Request: chat not found")
    mark = peer.mark()
    peer.push(message(162, "/urp", user(162, "en")))
    apology = peer.wait_sent(mark, chat_id=162)[0]
    assert sent_text(apology).startswith("Something went wrong")
    assert "comune.lecce.it" in sent_text(ask(peer, 162, "/urp", user(162, "en"))[0])


def test_malformed_and_unknown_updates_do_not_stop_the_bot(bot, peer):
    mark = peer.mark()
    bad = [peer.push({"message": {"text": "no chat, no date"}}),
           peer.push({"callback_query": {"id": "q-without-chat-instance"}}),
           peer.push({"future_update_kind": {"anything": 1}}),
           peer.push({"message": {"message_id": 5, "date": 0, "chat": {"id": 170, "type": "private"},
                                  "from": user(170), "text": 12}}),
           peer.push({"edited_message": {"message_id": 6, "date": 0, "chat": {"id": 170, "type": "private"},
                                         "from": user(170), "text": "edited"}})]
    reply = ask(peer, 171, "/help", user(171, "it"))[0]
    assert "/lingua" in sent_text(reply)
    ask(peer, 172, "/help", user(172, "it"))  # fetched by a later getUpdates, which confirms the earlier ones
    offsets = [int(c.params.get("offset") or 0) for c in peer.calls_since(mark, "getUpdates")]
    assert max(offsets) > max(bad)  # confirmed, not fetched forever
    # The non-text "text" got a polite answer; the edit is answered, saying it was edited (issue 17).
    to_170 = [sent_text(c) for c in peer.wait_sent(mark, 2, chat_id=170, timeout=60)]
    assert len(to_170) == 2 and sum(t.startswith("✏️") for t in to_170) == 1


def test_media_get_a_polite_reply(bot, peer):
    """Voice notes are questions now (tests/test_voice_telegram.py); other media get the text-only reply."""
    eva = user(180, "it", "Eva")
    kinds = {
        "sticker": {"file_id": "s", "file_unique_id": "s", "width": 1, "height": 1, "is_animated": False,
                    "is_video": False, "type": "regular"},
        "photo": [{"file_id": "p", "file_unique_id": "p", "width": 1, "height": 1}],
        "location": {"latitude": 40.35, "longitude": 18.17},
        "document": {"file_id": "d", "file_unique_id": "d", "file_name": "a.pdf"},
    }
    for kind, payload in kinds.items():
        reply = ask(peer, 180, None, eva, **{kind: payload})[0]
        assert "solo messaggi di testo" in sent_text(reply), kind


def test_per_chat_rate_limit_replies_politely(bot, peer):
    gino = user(190, "it", "Gino")
    mark = peer.mark()
    for i in range(7):
        peer.push(message(190, f"Quali progetti per la mobilità sostenibile {i}?", gino))
    peer.wait_sent(mark, 7, chat_id=190, timeout=60)
    ask(peer, 191, "/help", user(191, "it"))  # a sync point: later updates are processed by now
    time.sleep(0.5)
    texts = [sent_text(c) for c in peer.calls_since(mark, "sendMessage") if int(c.params["chat_id"]) == 190]
    notices = [t for t in texts if "molto velocemente" in t]
    # 5 answers (RATE), then each refused question gets the notice with the wait (issue 17: none dropped)
    assert len(notices) == 2 and len(texts) == 7
    assert all(re.search(r"riprova tra \d+ secondi", t) for t in notices)


# --- the token ------------------------------------------------------------------------------------
def test_token_never_logged(bot, peer, log_records):
    logs = "\n".join(log_records.lines)
    assert "getUpdates" in logs and "<bot-token>" in logs  # httpx did log the URLs, redacted
    assert TOKEN not in logs and TOKEN.split(":")[1] not in logs


def _run_cli(env_extra: dict, tmp_path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEGRAM_")}
    env.update(env_extra, SIBYL_DATA_DIR=str(tmp_path), HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "sibyl", "telegram"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)


def test_missing_token_is_a_clear_error(tmp_path):
    result = _run_cli({}, tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == ("sibyl: TELEGRAM_BOT_TOKEN is not set: create a bot with @BotFather "
                                      "and set its token")


def test_rejected_token_is_a_clear_error_without_the_token(peer, tmp_path):
    wrong = "1111:wrong-token-never-to-be-printed"
    result = _run_cli({"TELEGRAM_BOT_TOKEN": wrong, "TELEGRAM_API_BASE_URL": peer.url}, tmp_path)
    assert result.returncode == 1
    assert "rejected by the Bot API" in result.stderr
    assert wrong not in result.stderr + result.stdout and "wrong-token" not in result.stderr + result.stdout
    assert len(result.stderr.strip().splitlines()) == 1


def test_sibyl_telegram_command_serves_and_stops_on_sigterm(settings, built_index, tmp_path):
    """The CLI end to end: `python -m sibyl telegram` long-polls a peer, answers, exits 0 on SIGTERM."""
    import signal

    token = "9898989898:AAE-cli-process-token_abcdefghijklmn"
    other = BotAPIPeer(token).start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEGRAM_")}
    env.update(TELEGRAM_BOT_TOKEN=token, TELEGRAM_API_BASE_URL=other.url, SIBYL_DATA_DIR=str(settings.data_dir),
               SIBYL_CORPUS_DIR=str(settings.corpus_dir), SIBYL_DATABASE_URL=f"sqlite:///{tmp_path / 'cli.db'}",
               SIBYL_LOG_LEVEL="DEBUG", HF_HUB_OFFLINE="1")
    proc = subprocess.Popen([sys.executable, "-m", "sibyl", "telegram"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        other.wait_for(lambda calls: any(c.method == "getUpdates" for c in calls), timeout=120)
        mark = other.mark()
        other.push(message(77, "/start", user(77, "en", "Ada")))
        assert sent_text(other.wait_sent(mark, chat_id=77, timeout=60)[0]).startswith("Hi Ada!")
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        other.stop()
    assert proc.returncode == 0, err[-2000:]
    assert token not in out + err and token.split(":")[1] not in out + err
    assert "getUpdates" in out + err  # DEBUG logging did show the Bot API calls, without the token


def test_english_question_gets_english_bullets_and_the_italian_source(bot, peer, pipeline):
    tom = user(160, "en", "Tom")
    question = "How is the city fighting illegal dumping of waste?"
    answer = ask(peer, 160, question, tom)[0]
    text = sent_text(answer)
    expected = pipeline.ask(question)
    translated = [b for b in expected.bullets if b.translated_from == "it"]
    assert translated and "Sources:" in text and "(original Italian wording)" not in text
    for bullet in translated:
        assert f"{bullet.text} [{bullet.source}]" in text
    # 📄 Sources: the cited passage in its original Italian.
    mark = peer.mark()
    peer.push(callback(160, tom, buttons(answer)[0][0]["callback_data"], answer.result))
    shown = sent_text(peer.wait_sent(mark, chat_id=160)[0])
    source = expected.sources[translated[0].source - 1]
    assert source.text.split("\n")[-1].strip()[:60] in shown
