"""The inline buttons' callback-data codec (bot/callbacks.py) and its handlers' refusal path.

No index: the codec is pure, and malformed buttons go through the real Application over HTTP to the
local Bot API peer (tests/telegram_peer.py)."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bot import callbacks
from bot.callbacks import MAX_BYTES, AskSuggestion, ShowSources, Vote

message_ids = st.from_regex(callbacks.MESSAGE_ID, fullmatch=True)
buttons = st.one_of(
    st.builds(ShowSources, message_ids),
    st.builds(Vote, message_ids, st.sampled_from([1, -1])),
    st.builds(AskSuggestion, message_ids, st.integers(0, callbacks.MAX_SUGGESTIONS - 1)),
)


@given(buttons)
def test_decode_inverts_encode_and_fits_64_bytes(button):
    raw = callbacks.encode(button)  # every allowed id and index fits: the id pattern is sized for "sq:99:"
    assert len(raw.encode()) <= MAX_BYTES
    assert callbacks.decode(raw) == button


def test_real_message_ids_always_fit():
    for button in (ShowSources(uuid.uuid4().hex), Vote(uuid.uuid4().hex, -1), AskSuggestion(uuid.uuid4().hex, 99)):
        raw = callbacks.encode(button)
        assert len(raw.encode()) <= MAX_BYTES and callbacks.decode(raw) == button


def test_wire_format_is_the_one_keyboards_in_chats_already_carry():
    mid = "0123456789abcdef0123456789abcdef"
    assert callbacks.encode(ShowSources(mid)) == f"src:{mid}"
    assert callbacks.encode(Vote(mid, 1)) == f"fb:+1:{mid}"
    assert callbacks.encode(Vote(mid, -1)) == f"fb:-1:{mid}"
    assert callbacks.encode(AskSuggestion(mid, 2)) == f"sq:2:{mid}"
    assert callbacks.decode(f"fb:+1:{mid}") == Vote(mid, 1)


@given(st.one_of(st.text(), st.binary().map(lambda b: b.decode("latin-1")), st.none(), st.integers()))
@example("src:")
@example("src:a:b")
@example("fb:+2:abc")
@example("fb:1:abc")
@example("sq:-1:abc")
@example("sq:01:abc")
@example("sq:1:")
@example("src:abc\n")
@example("src:" + "a" * 61)
@example("zz:whatever")
@example("src:àbc")
def test_any_string_decodes_to_a_button_or_none_never_raises(raw):
    decoded = callbacks.decode(raw)
    assert decoded is None or callbacks.encode(decoded) == raw  # only canonical data is accepted


@pytest.mark.parametrize("button", [ShowSources(""), ShowSources("a:b"), ShowSources("x" * 70),
                                    Vote("abc", 0), AskSuggestion("abc", -1), AskSuggestion("abc", 100)])
def test_encode_refuses_what_could_not_round_trip(button):
    with pytest.raises(ValueError):
        callbacks.encode(button)


# --- the real Application's answer to malformed data -------------------------------------------
TOKEN = "6161616161:AAE-callbacks-test-token_abcdefgh"


@pytest.fixture(scope="module")
def wire(tmp_path_factory):
    """The real Application (no index: a refused button never reaches the pipeline), long polling a
    local Bot API peer from its own thread."""
    from pydantic import SecretStr

    from bot.app import build_application
    from sibyl.conversation import ConversationService
    from sibyl.settings import Settings
    from sibyl.store import Store
    from tests.telegram_peer import BotAPIPeer, polling

    peer = BotAPIPeer(TOKEN).start()
    data = tmp_path_factory.mktemp("callbacks")
    settings = Settings(data_dir=data, database_url=f"sqlite:///{data / 'bot.db'}", _env_file=None,
                        telegram_bot_token=SecretStr(TOKEN), telegram_api_base_url=peer.url)
    application = build_application(settings, ConversationService(None, Store.from_settings(settings)))  # type: ignore[arg-type]
    with polling(application, peer):
        yield peer
    peer.stop()


def _press(peer, data) -> list:
    from tests.telegram_peer import callback, user

    mark = peer.mark()
    sent = {"message_id": 3, "date": 0, "chat": {"id": 7, "type": "private"}, "text": "x",
            "from": {"id": 1, "is_bot": True, "first_name": "Sibyl"}}
    peer.push(callback(7, user(7, "en"), data, sent))
    peer.wait_sent(mark, method="answerCallbackQuery")
    return peer.calls_since(mark)


@pytest.mark.parametrize("data", ["zz:whatever", "src:", "fb:+2:abc", "sq:1:a:b", "src:" + "a" * 60,
                                  "src:0123456789abcdef0123456789abcdef"])  # well formed, but no such answer
def test_malformed_or_unknown_button_gets_a_polite_alert(wire, data):
    calls = _press(wire, data)
    alerts = [c for c in calls if c.method == "answerCallbackQuery"]
    assert len(alerts) == 1 and alerts[0].params["show_alert"] is True
    assert "no longer valid" in alerts[0].params["text"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=80))
def test_any_button_data_is_answered_never_an_error(wire, data):
    calls = _press(wire, data)
    alerts = [c for c in calls if c.method == "answerCallbackQuery"]
    assert len(alerts) == 1 and alerts[0].params["show_alert"] is True  # the error handler's answer has no alert
    assert not [c for c in calls if c.method == "sendMessage"]  # no "something went wrong" apology
