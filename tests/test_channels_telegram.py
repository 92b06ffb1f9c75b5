"""Issue 17 on the Telegram wire: the real Application long polling the local Bot API peer
(tests/telegram_peer.py) over the session's index; assertions on the recorded Bot API calls."""

from __future__ import annotations

import re
import time

import pytest
from pydantic import SecretStr

from tests.telegram_peer import BOT_USERNAME, BotAPIPeer, callback, keyboard, message, polling, user

pytestmark = pytest.mark.slow

TOKEN = "4343434343:AAE-test-token-for-the-channels-peer_7"
PUBLIC = "https://sibyl.example.it"


@pytest.fixture(scope="module")
def peer():
    p = BotAPIPeer(TOKEN).start()
    yield p
    p.stop()


@pytest.fixture(scope="module")
def bot(peer, settings, pipeline, tmp_path_factory):
    """The real Application over the session pipeline, polling the peer from its own thread and loop."""
    from bot.app import build_application
    from sibyl.conversation import ConversationService
    from sibyl.store import Store

    db = tmp_path_factory.mktemp("channels-telegram") / "bot.db"
    bot_settings = settings.model_copy(update={
        "telegram_bot_token": SecretStr(TOKEN), "database_url": f"sqlite:///{db}",
        "telegram_rate_limit": "9/minute", "telegram_api_base_url": peer.url, "public_url": PUBLIC})
    service = ConversationService(pipeline, Store.from_settings(bot_settings))
    application = build_application(bot_settings, service)
    with polling(application, peer):
        yield service


def text_of(call) -> str:
    return call.result["text"]



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


# --- 2. one vote per person per answer, changeable; a 👎 can carry a reason ----------------------
def votes_on(bot, message_id: str):
    return [f for f in bot.store.feedback() if f.message_id == message_id]


def test_a_changed_vote_replaces_the_first_and_the_thumbs_stay(bot, peer):
    anna = user(1711, "it", "Anna")
    answer = ask(peer, 1711, "Cosa fa il Comune per la mobilità sostenibile?", anna)
    up, down = keyboard(answer)[0][1], keyboard(answer)[0][2]
    mid = up["callback_data"].rpartition(":")[2]
    mark = peer.mark()
    press(peer, 1711, anna, up["callback_data"], answer.result)
    press(peer, 1711, anna, down["callback_data"], answer.result)  # the older keyboard, pressed again
    prompt = peer.wait_sent(mark, chat_id=1711)[0]
    assert [(f.rating, f.voter) for f in votes_on(bot, mid)] == [(-1, "telegram:1711")]
    assert not peer.calls_since(mark, "editMessageReplyMarkup")  # the buttons stay
    assert prompt.params["reply_markup"]["force_reply"] is True
    assert "Cosa non andava" in text_of(prompt)

    mark = peer.mark()
    peer.push(message(1711, "Mancano i dati del 2024", anna, reply_to=prompt.result))
    saved = peer.wait_sent(mark, chat_id=1711)[0]
    assert "annotato" in text_of(saved)
    assert [(f.rating, f.comment) for f in votes_on(bot, mid)] == [(-1, "Mancano i dati del 2024")]

    from sibyl.backoffice.reports import feedback_items  # what the console's feedback page lists

    shown = [f for f in feedback_items(bot.store) if f.comment == "Mancano i dati del 2024"]
    assert len(shown) == 1 and shown[0].channel == "telegram"

    press(peer, 1711, anna, up["callback_data"], answer.result)  # changed back: the 👎's reason goes with it
    assert [(f.rating, f.comment) for f in votes_on(bot, mid)] == [(1, None)]


def test_group_members_each_have_their_own_vote(bot, peer):
    group = -1712
    alice, bob = user(1713, "it", "Alice"), user(1714, "en", "Bob")
    answer = ask(peer, group, f"@{BOT_USERNAME} cosa fa il Comune per la mobilità sostenibile?", alice)
    up, down = keyboard(answer)[0][1], keyboard(answer)[0][2]
    mid = up["callback_data"].rpartition(":")[2]
    mark = peer.mark()
    press(peer, group, alice, up["callback_data"], answer.result)
    bob_popup = press(peer, group, bob, down["callback_data"], answer.result)
    prompt = peer.wait_sent(mark, chat_id=group)[0]
    press(peer, group, bob, down["callback_data"], answer.result)  # twice: still one vote
    assert "Thank" in bob_popup.params["text"]
    assert text_of(prompt).startswith("Bob, what was wrong")
    assert sorted((f.voter, f.rating) for f in votes_on(bot, mid)) == [("telegram:1713", 1), ("telegram:1714", -1)]
    assert not peer.calls_since(mark, "editMessageReplyMarkup")


# --- 3. sources that open -------------------------------------------------------------------------
def test_sources_link_to_the_public_document_view_at_the_passage(bot, peer):
    anna = user(1721, "it", "Anna")
    answer = ask(peer, 1721, "Cosa fa il Comune per la mobilità sostenibile?", anna)
    mid = keyboard(answer)[0][0]["callback_data"].rpartition(":")[2]
    mark = peer.mark()
    peer.push(callback(1721, anna, keyboard(answer)[0][0]["callback_data"], answer.result))
    sources = peer.wait_sent(mark, chat_id=1721)[0]
    links = re.findall(r'<a href="([^"]+)">', sources.params["text"])
    cited = bot.store.get_message(mid).sources
    assert links == [f"{PUBLIC}/documenti/{s['document']}?lang=it#{s['id']}" for s in cited]


# --- 5. nothing silently dropped -----------------------------------------------------------------
def test_an_edited_question_is_answered_saying_so(bot, peer):
    anna = user(1731, "it", "Anna")
    first = message(1731, "Cosa fa il Comune per la mobilità?", anna)
    ask(peer, 1731, first["message"]["text"], anna)
    edited = dict(first["message"], text="Cosa fa il Comune per la mobilità sostenibile?", edit_date=int(time.time()))
    mark = peer.mark()
    peer.push({"edited_message": edited})
    reply = peer.wait_sent(mark, chat_id=1731)[0]
    assert text_of(reply).startswith("✏️ Hai modificato il messaggio") and "Fonti:" in text_of(reply)


def test_a_photo_with_a_caption_answers_the_caption(bot, peer):
    anna = user(1732, "it", "Anna")
    photo = [{"file_id": "p1", "file_unique_id": "u1", "width": 1, "height": 1}]
    mark = peer.mark()
    peer.push(message(1732, None, anna, photo=photo, caption="Cosa fa il Comune per la mobilità sostenibile?"))
    reply = peer.wait_sent(mark, chat_id=1732)[0]
    assert text_of(reply).startswith("📷 Non leggo le immagini") and "Fonti:" in text_of(reply)
    assert "solo messaggi di testo" not in text_of(reply)
    without = ask(peer, 1732, None, anna, photo=photo)  # no caption: still the polite "text only"
    assert "solo messaggi di testo" in text_of(without)


@pytest.mark.parametrize(("said", "lang", "expected"), [
    ("grazie!", "it", "Prego!"), ("👍", "it", "Prego!"), ("ok", "it", "Prego!"), ("ciao", "it", "Ciao! Sono Sibyl:"),
    ("thanks!", "en", "You're welcome!"), ("👍", "en", "You're welcome!"), ("hi", "en", "Hi! I'm Sibyl:")])
def test_small_talk_gets_small_talk(bot, peer, said, lang, expected):
    reply = ask(peer, 1733 if lang == "it" else 1734, said, user(1733 if lang == "it" else 1734, lang, "Pia"))
    assert text_of(reply).startswith(expected), text_of(reply)
    assert "Non ho trovato" not in text_of(reply) and "I couldn't find" not in text_of(reply)
    assert len(text_of(reply)) < 160  # a line, not the introduction


def test_every_rate_limited_question_gets_the_wait(bot, peer):
    gino = user(1735, "it", "Gino")
    mark = peer.mark()
    for _ in range(11):  # the module's limit is 9/minute
        peer.push(message(1735, "grazie!", gino))
    sent = peer.wait_sent(mark, 11, chat_id=1735, timeout=60)
    notices = [text_of(c) for c in sent if "molto velocemente" in text_of(c)]
    assert len(notices) == 2
    assert all(re.search(r"riprova tra \d+ secondi", n) for n in notices)


# --- 4. suggestions fit a phone --------------------------------------------------------------------
def test_suggestion_buttons_are_short_in_the_askers_language_and_ask_the_full_question(bot, peer, pipeline):
    john = user(1741, "en", "John")
    answer = ask(peer, 1741, "What is the City doing for sustainable mobility?", john)
    rows = keyboard(answer)[1:]
    labels = [row[0]["text"] for row in rows if row[0]["callback_data"].startswith("sq:")]
    assert labels and all(len(label) <= 40 for label in labels), labels
    translations = pipeline.translations.current()
    italian_areas = {r["metadata"]["area_name"] for r in pipeline.index.records.values()
                     if r["metadata"].get("area_name") and translations.translate(r["metadata"]["area_name"])}
    assert not [label for label in labels for area in italian_areas if area.lower() in label.lower()
                and area.lower() not in (translations.translate(area) or "").lower()], labels

    first = next(row[0] for row in rows if row[0]["callback_data"].startswith("sq:"))
    mark = peer.mark()
    peer.push(callback(1741, john, first["callback_data"], answer.result))
    asked = peer.wait_sent(mark, chat_id=1741)[0]
    full = bot.suggestions_for(first["callback_data"].rpartition(":")[2])[0]
    assert text_of(asked).startswith("❓ " + full + "\n") and len(full) > 40 and not full.endswith("…")
    assert "Sources:" in text_of(asked) or "couldn't find" in text_of(asked)
