"""Issue 17 on the Telegram wire: the real Application long polling the local Bot API peer
(tests/telegram_peer.py) over the session's index; assertions on the recorded Bot API calls."""

from __future__ import annotations

import asyncio
import threading

import pytest
from pydantic import SecretStr

from tests.telegram_peer import BOT_USERNAME, BotAPIPeer, callback, message, user

pytestmark = pytest.mark.slow

TOKEN = "4343434343:AAE-test-token-for-the-channels-peer_7"


@pytest.fixture(scope="module")
def peer():
    p = BotAPIPeer(TOKEN).start()
    yield p
    p.stop()


@pytest.fixture(scope="module")
def bot(peer, settings, pipeline, tmp_path_factory):
    """The real Application over the session pipeline, polling the peer from its own thread and loop."""
    from bot.app import build_application, run_polling
    from sibyl.conversation import ConversationService
    from sibyl.store import Store

    db = tmp_path_factory.mktemp("channels-telegram") / "bot.db"
    bot_settings = settings.model_copy(update={
        "telegram_bot_token": SecretStr(TOKEN), "database_url": f"sqlite:///{db}",
        "telegram_rate_limit": "9/minute", "telegram_api_base_url": peer.url})
    service = ConversationService(pipeline, Store.from_settings(bot_settings))
    application = build_application(bot_settings, service)
    loops: dict = {}
    failure: list = []

    def run():
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        loops["loop"] = loop
        try:
            run_polling(application, poll_timeout=1, stop_signals=None, use_default_signals=False)
        except BaseException as exc:  # surfaced by the teardown
            failure.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    peer.wait_for(lambda calls: sum(c.method == "getUpdates" for c in calls) >= 1, timeout=30)
    yield service
    loops["loop"].call_soon_threadsafe(application.stop_running)
    thread.join(timeout=30)
    assert not thread.is_alive(), "the bot did not stop"
    assert not failure, failure


def text_of(call) -> str:
    return call.result["text"]


def keyboard(call) -> list[list[dict]]:
    return (call.params.get("reply_markup") or {}).get("inline_keyboard", [])


def ask(peer, chat_id: int, text: str, sender: dict, **kw):
    mark = peer.mark()
    peer.push(message(chat_id, text, sender, **kw))
    return peer.wait_sent(mark, chat_id=chat_id)[0]


def press(peer, chat_id: int, sender: dict, data: str, sent: dict, method: str = "answerCallbackQuery"):
    mark = peer.mark()
    peer.push(callback(chat_id, sender, data, sent))
    return peer.wait_sent(mark, method=method)[0]


def italian(call) -> bool:
    return "Fonti:" in text_of(call) and "Sources:" not in text_of(call)


def english(call) -> bool:
    return "Sources:" in text_of(call) and "Fonti:" not in text_of(call)


# --- 1. the answer language falls back to the user's Telegram language ---------------------------
@pytest.mark.parametrize("question", ["cos'è City Lab?", "cos'è City4Age?", "City Lab?", "City4Age"])
def test_short_and_name_only_questions_from_an_italian_user_are_answered_in_italian(bot, peer, question):
    answer = ask(peer, 1701, question, user(1701, "it", "Anna"))
    assert italian(answer), text_of(answer)


@pytest.mark.parametrize("question", ["City Lab?", "City4Age", "what is City4Age?", "and the City Lab?"])
def test_short_and_name_only_questions_from_an_english_user_are_answered_in_english(bot, peer, question):
    answer = ask(peer, 1702, question, user(1702, "en-GB", "John"))
    assert english(answer), text_of(answer)


def test_the_text_wins_over_the_telegram_language_when_it_is_clear(bot, peer):
    assert italian(ask(peer, 1703, "cosa fa il Comune con il City Lab?", user(1703, "en", "Mary")))
    assert english(ask(peer, 1704, "what does the City do with the City Lab?", user(1704, "it", "Ugo")))


def test_a_group_vote_thanks_the_voter_in_the_voters_language(bot, peer):
    group = -1705
    john, anna = user(1706, "en", "John"), user(1707, "it", "Anna")
    answer = ask(peer, group, f"@{BOT_USERNAME} City Lab?", john)
    assert english(answer)
    thumbs_up = keyboard(answer)[0][1]
    assert thumbs_up["text"] == "👍"
    popup = press(peer, group, anna, thumbs_up["callback_data"], answer.result)
    assert "Grazie" in popup.params["text"]

