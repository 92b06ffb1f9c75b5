"""Issue 15 on Telegram: 🙋 under a decline (or /persona after any answer) asks to confirm, "yes" opens a URP case
with the chat as the contact and gives the case number; the operator's reply reaches the chat through the Bot
API. The real Application long-polls the local Bot API peer (tests/telegram_peer.py); the pipeline is the fake
one (tests/fakes.py), so no index is needed."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from bot import callbacks, texts
from bot.callbacks import Handoff
from tests.fakes import FakePipeline
from tests.telegram_peer import BotAPIPeer, callback, keyboard, message, polling, user

TOKEN = "4242424242:AAE-test-token-for-the-urp-peer_x9"


@pytest.fixture(scope="module")
def peer():
    p = BotAPIPeer(TOKEN).start()
    yield p
    p.stop()


@pytest.fixture(scope="module")
def bot(peer, tmp_path_factory):
    from bot.app import build_application
    from sibyl.services import build_services
    from sibyl.settings import Settings

    data = tmp_path_factory.mktemp("urp-telegram")
    settings = Settings(data_dir=data, rate_limit="", telegram_rate_limit="", case_retention_days=90,
                        telegram_bot_token=SecretStr(TOKEN), telegram_api_base_url=peer.url, _env_file=None)
    services = build_services(settings, pipeline=FakePipeline(settings=settings), backoffice=False)  # type: ignore[arg-type]
    application = build_application(settings, services.conversation)
    with polling(application, peer):
        yield services



def press(peer, chat_id, sender, data, sent, count=1):
    mark = peer.mark()
    peer.push(callback(chat_id, sender, data, sent))
    return peer.wait_sent(mark, count, chat_id=chat_id)


def test_a_decline_offers_a_person_and_yes_opens_a_case(bot, peer):
    anna = user(501, "it", "Anna")
    mark = peer.mark()
    peer.push(message(501, "Quando apre la piscina comunale?", anna))
    decline = peer.wait_sent(mark, chat_id=501)[0]
    last_row = keyboard(decline)[-1]
    assert [b["text"] for b in last_row] == [texts.text("it", "handoff_button")]
    assert isinstance(callbacks.decode(last_row[0]["callback_data"]), Handoff)

    confirm = press(peer, 501, anna, last_row[0]["callback_data"], decline.result)[0]
    assert confirm.result["text"] == texts.text("it", "handoff_confirm", days=90)
    yes, no = keyboard(confirm)[0]
    assert (yes["text"], no["text"]) == (texts.text("it", "handoff_yes"), texts.text("it", "handoff_no"))
    assert bot.cases.find() == []  # nothing is opened before the citizen confirms

    done = press(peer, 501, anna, yes["callback_data"], confirm.result)[0]
    cases = bot.cases.find()
    assert len(cases) == 1 and cases[0].telegram_chat == "501" and cases[0].channel == "telegram"
    assert done.result["text"] == texts.text("it", "handoff_done", number=cases[0].number)
    view = bot.cases.get(cases[0].id)
    assert [m.text for m in view.thread][0] == "Quando apre la piscina comunale?" and view.case.email is None
    assert peer.calls_since(mark, "editMessageReplyMarkup")  # the confirmation's buttons go once used


def test_person_command_after_an_answer_and_no_keeps_nothing(bot, peer):
    tom = user(502, "en", "Tom")
    mark = peer.mark()
    peer.push(message(502, "What does the City do for bike lanes?", tom))
    answer = peer.wait_sent(mark, chat_id=502)[0]
    assert all(not isinstance(callbacks.decode(b["callback_data"]), Handoff) for row in keyboard(answer) for b in row)
    mark = peer.mark()
    peer.push(message(502, "/person", tom))
    confirm = peer.wait_sent(mark, chat_id=502)[0]
    assert confirm.result["text"] == texts.text("en", "handoff_confirm", days=90)
    before = len(bot.cases.find())
    cancelled = press(peer, 502, tom, keyboard(confirm)[0][1]["callback_data"], confirm.result)[0]
    assert cancelled.result["text"] == texts.text("en", "handoff_cancelled") and len(bot.cases.find()) == before


def test_person_command_without_a_question_and_forged_buttons(bot, peer):
    eve = user(503, "it", "Eve")
    mark = peer.mark()
    peer.push(message(503, "/persona", eve))
    assert peer.wait_sent(mark, chat_id=503)[0].result["text"] == texts.text("it", "handoff_empty")
    # Another chat's answer id in a forged "yes": refused with the alert, no case.
    anna_answer = bot.store.recent_answers(bot.cases.find()[0].session_id, 1)[0]
    before = len(bot.cases.find())
    mark = peer.mark()
    peer.push(callback(503, eve, callbacks.encode(Handoff(anna_answer.id, "y")),
                       {"message_id": 1, "date": 0, "chat": {"id": 503, "type": "private"}, "text": "x"}))
    alert = peer.wait_sent(mark, method="answerCallbackQuery")[0]
    assert alert.params.get("show_alert") in (True, "true") and len(bot.cases.find()) == before
