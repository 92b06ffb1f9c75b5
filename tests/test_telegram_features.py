"""Issue 17, item 6 on the wire: deep links, inline mode, the bot's descriptions and Web App menu button, and the
🏛️ URP button on every decline. The real Application long-polls the local Bot API peer (tests/telegram_peer.py);
the pipeline is the fake one (tests/fakes.py), so no index is needed."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from bot import callbacks, texts
from bot.callbacks import Handoff, ShowUrp
from bot.handlers.commands import topics
from tests.fakes import FakePipeline
from tests.telegram_peer import BotAPIPeer, callback, inline_query, keyboard, message, polling, start_link, user

TOKEN = "5151515151:AAE-test-token-for-the-features-peer"
PUBLIC = "https://sibyl.example.it"
INLINE_BUDGET = 4  # questions a minute per person (SIBYL_TELEGRAM_RATE_LIMIT) in this module


@pytest.fixture(scope="module")
def peer():
    p = BotAPIPeer(TOKEN).start()
    p.fail_next("setMyDescription", 502)  # Telegram briefly unreachable at start-up: the profile is retried
    yield p
    p.stop()


def settings_for(peer, data, **extra):
    from sibyl.settings import Settings

    return Settings(data_dir=data, rate_limit="", telegram_rate_limit=f"{INLINE_BUDGET}/minute",
                    telegram_bot_token=SecretStr(TOKEN), telegram_api_base_url=peer.url, _env_file=None, **extra)


@pytest.fixture(scope="module")
def bot(peer, tmp_path_factory):
    from bot.app import build_application
    from sibyl.services import build_services

    config = settings_for(peer, tmp_path_factory.mktemp("tg-features"), public_url=PUBLIC)
    services = build_services(config, pipeline=FakePipeline(settings=config), backoffice=False)  # type: ignore[arg-type]
    application = build_application(config, services.conversation)
    with polling(application, peer):
        yield services



def answered_inline(peer, mark: int, count: int = 1):
    return peer.wait_sent(mark, count, method="answerInlineQuery")


# --- deep links ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("lang, name", [("it", "Anna"), ("en", "Tom")])
def test_a_deep_link_opens_with_its_topic_question_in_the_users_language(bot, peer, lang, name):
    chat = 601 if lang == "it" else 602
    mark = peer.mark()
    peer.push(start_link(chat, user(chat, lang, name), "smartcity"))
    sent = peer.wait_sent(mark, chat_id=chat)[0]
    question = topics()["smartcity"][lang]
    assert sent.result["text"].startswith(texts.text(lang, "asked", question=question))
    assert bot.conversation.pipeline.asked[-1] == question  # the topic's question was really asked


def test_every_topic_has_a_question_in_both_languages():
    assert topics() and all(set(t) == {"it", "en"} and all(t.values()) for t in topics().values())


@pytest.mark.parametrize("payload", ["no-such-topic", "x" * 64, "mobilita_2"])
def test_an_unknown_deep_link_gets_the_normal_start(bot, peer, payload):
    anna = user(603, "it", "Anna")
    mark = peer.mark()
    peer.push(start_link(603, anna, payload))
    sent = peer.wait_sent(mark, chat_id=603)[0]
    assert sent.result["text"].startswith("Ciao Anna!")


# --- inline mode ----------------------------------------------------------------------------------------------
def test_an_empty_inline_query_gets_a_hint(bot, peer):
    mark = peer.mark()
    peer.push(inline_query(user(611, "it"), "   "))
    call = answered_inline(peer, mark)[0]
    assert call.params["results"] == []
    assert call.params["button"] == {"text": texts.text("it", "inline_hint"), "start_parameter": "inline"}


def test_an_inline_query_returns_an_answer_card_with_its_source_link(bot, peer):
    mark = peer.mark()
    peer.push(inline_query(user(612, "en", "Tom"), "What about bike lanes?"))
    call = answered_inline(peer, mark)[0]
    [card] = call.params["results"]
    assert card["type"] == "article" and card["title"] == "What about bike lanes?"
    content = card["input_message_content"]
    assert content["parse_mode"] == "HTML" and "The City builds cycle lanes." in content["message_text"]
    assert card["description"] == "The City builds cycle lanes."
    [[link]] = card["reply_markup"]["inline_keyboard"]
    assert link["url"] == f"{PUBLIC}/documenti/fake-dup?lang=en#fake-1"
    assert link["text"] == texts.text("en", "inline_source", title="[1] Documento di prova")


def test_an_inline_query_the_documents_do_not_answer_says_so(bot, peer):
    mark = peer.mark()
    peer.push(inline_query(user(613, "it"), "Quando apre la piscina comunale?"))
    [card] = answered_inline(peer, mark)[0].params["results"]
    assert card["description"] == texts.text("it", "inline_no_answer") and "reply_markup" not in card


def test_inline_queries_are_rate_limited_per_person_with_the_wait(bot, peer):
    eve = user(614, "it", "Eve")
    mark = peer.mark()
    for i in range(INLINE_BUDGET + 1):
        peer.push(inline_query(eve, f"piste ciclabili bici {i}?"))
    calls = answered_inline(peer, mark, INLINE_BUDGET + 1)
    assert sum(len(c.params["results"]) == 1 for c in calls) == INLINE_BUDGET
    refused = [c for c in calls if not c.params["results"]]
    assert len(refused) == 1
    hint = refused[0].params["button"]["text"]
    assert hint.startswith(texts.text("it", "inline_rate_limited", seconds=0).split("0")[0]) and any(
        ch.isdigit() for ch in hint)


# --- profile: descriptions and the Web App menu button --------------------------------------------------------
def test_descriptions_in_both_languages_and_the_web_app_menu_button(bot, peer):
    calls = peer.wait_for(lambda cs: [c for c in cs if c.method == "setChatMenuButton"] and cs, timeout=60)
    described = {c.params.get("language_code"): c.params["description"] for c in calls
                 if c.method == "setMyDescription" and c.status == 200}
    short = {c.params.get("language_code"): c.params["short_description"] for c in calls
             if c.method == "setMyShortDescription" and c.status == 200}
    assert described == {None: texts.text("it", "description"), "it": texts.text("it", "description"),
                         "en": texts.text("en", "description")}
    assert short == {None: texts.text("it", "short_description"), "it": texts.text("it", "short_description"),
                     "en": texts.text("en", "short_description")}
    assert any(c.method == "setMyDescription" and c.status == 502 for c in calls)  # failed once, then retried
    [menu] = [c for c in calls if c.method == "setChatMenuButton"]
    assert menu.params["menu_button"] == {"type": "web_app", "text": texts.text("it", "menu_button"),
                                          "web_app": {"url": f"{PUBLIC}/embed?lang=it"}}


def test_no_menu_button_without_an_https_public_address(peer, tmp_path):
    from bot.app import build_application, register_profile
    from sibyl.services import build_services

    async def profile(public_url):
        config = settings_for(peer, tmp_path / (public_url or "none").replace(":", "").replace("/", ""),
                              public_url=public_url)
        services = build_services(config, pipeline=FakePipeline(settings=config), backoffice=False)  # type: ignore[arg-type]
        application = build_application(config, services.conversation)
        await application.initialize()
        try:
            mark = peer.mark()
            assert await register_profile(application, first_delay=0.01)
            return peer.calls_since(mark)
        finally:
            await application.shutdown()
            services.close()

    for public_url in (None, "http://sibyl.example.it"):
        calls = asyncio.run(profile(public_url))
        assert [c.method for c in calls if c.method == "setChatMenuButton"] == []
        assert sum(c.method == "setMyDescription" for c in calls) == 3


# --- the URP button on every decline ---------------------------------------------------------------------
def test_every_decline_has_a_urp_button_that_shows_the_contacts_and_offers_a_person(bot, peer):
    anna = user(621, "it", "Anna")
    mark = peer.mark()
    peer.push(message(621, "Quando apre la piscina comunale?", anna))
    decline = peer.wait_sent(mark, chat_id=621)[0]
    rows = keyboard(decline)
    urp = [b for row in rows for b in row if isinstance(callbacks.decode(b["callback_data"]), ShowUrp)]
    assert [b["text"] for b in urp] == [texts.text("it", "urp_button")]
    mark = peer.mark()
    peer.push(callback(621, anna, urp[0]["callback_data"], decline.result))
    shown = peer.wait_sent(mark, chat_id=621)[0]
    assert shown.result["text"] == texts.text("it", "urp")
    [[person]] = keyboard(shown)
    assert callbacks.decode(person["callback_data"]) == Handoff(callbacks.decode(urp[0]["callback_data"]).message_id,
                                                               "a")
    # An answer is not a decline: no URP button under it.
    mark = peer.mark()
    peer.push(message(621, "Ci sono piste ciclabili per la bici?", anna))
    answer = peer.wait_sent(mark, chat_id=621)[0]
    assert not [b for row in keyboard(answer) for b in row if isinstance(callbacks.decode(b["callback_data"]), ShowUrp)]


def test_urp_button_data_round_trips():
    assert callbacks.decode(callbacks.encode(ShowUrp("abc123"))) == ShowUrp("abc123")
    assert callbacks.decode("urp:") is None and callbacks.decode("urp:a:b") is None


_inline_users = itertools.count(700)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=300))
def test_any_inline_query_is_answered_as_telegram_accepts(bot, peer, text):
    """Free text from anyone: the answer (a card, a hint or a refusal) always passes the peer's Bot API checks."""
    mark = peer.mark()
    peer.push(inline_query(user(next(_inline_users), "it"), text))
    call = peer.wait_for(lambda calls: [c for c in calls[mark:] if c.method == "answerInlineQuery"])[0]
    assert call.status == 200, call.result  # a 400 (bad HTML, too long, bad button) is recorded too
