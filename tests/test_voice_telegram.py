"""Voice notes on the real Bot API wire (issue 16): the Application long-polls the local peer
(tests/telegram_peer.py), downloads the note through getFile and the file URL, transcribes it with
faster-whisper, shows "I heard: …", answers with sources and buttons, and sends the spoken answer with
sendVoice as OGG/Opus (checked with PyAV). Bad audio gets a polite reply and the chat keeps working."""

from __future__ import annotations

import itertools

import pytest
from pydantic import SecretStr

from tests.telegram_peer import BotAPIPeer, message, polling, user
from tests.voice_support import QUESTION, noise_wav, ogg_opus_info, silence_wav, speak_wav, telegram_ogg

pytestmark = pytest.mark.slow

TOKEN = "4343434343:AAE-voice-test-token-for-the-peer_y7"
_files = itertools.count(1)


@pytest.fixture(scope="module")
def peer():
    p = BotAPIPeer(TOKEN).start()
    yield p
    p.stop()


@pytest.fixture(scope="module")
def bot(peer, settings, pipeline, tmp_path_factory):
    from bot.app import build_application
    from sibyl.conversation import ConversationService
    from sibyl.store import Store

    db = tmp_path_factory.mktemp("voicebot") / "bot.db"
    bot_settings = settings.model_copy(update={"telegram_bot_token": SecretStr(TOKEN), "database_url": f"sqlite:///{db}",
                                               "telegram_rate_limit": "", "telegram_api_base_url": peer.url})
    application = build_application(bot_settings, ConversationService(pipeline, Store.from_settings(bot_settings)))
    with polling(application, peer):
        yield application


@pytest.fixture(scope="module")
def voice_note() -> bytes:
    return telegram_ogg(speak_wav(QUESTION))


def send_voice(peer, chat_id: int, data: bytes, sender: dict, duration: int = 4, **extra) -> int:
    mark = peer.mark()
    note = peer.add_file(data, f"voice{next(_files)}")
    note.update(duration=duration, mime_type="audio/ogg")
    peer.push(message(chat_id, None, sender, voice=note, **extra))
    return mark


def texts_to(peer, mark: int, chat_id: int) -> list[str]:
    return [c.result["text"] for c in peer.calls_since(mark, "sendMessage")
            if c.status == 200 and int(c.params["chat_id"]) == chat_id]


def test_voice_note_is_heard_answered_and_spoken_back(bot, peer, voice_note):
    mark = send_voice(peer, 301, voice_note, user(301, "en", "Jane"))
    voices = peer.wait_sent(mark, 1, chat_id=301, method="sendVoice", timeout=120)
    calls = peer.calls_since(mark)
    assert [c.method for c in calls if c.method in ("getFile", "download")] == ["getFile", "download"]
    sent = texts_to(peer, mark, 301)
    assert len(sent) == 2, sent
    heard, answer = sent
    assert heard.startswith("🎙️ I heard: “") and "cycling" in heard.lower() and "type the corrected" in heard
    assert "Sources:" in answer and "[1]" in answer
    answer_call = [c for c in calls if c.method == "sendMessage" and c.result and c.result.get("text") == answer][0]
    assert answer_call.params.get("reply_markup", {}).get("inline_keyboard"), "the answer keeps its buttons"
    # The spoken answer comes after the written one and is a real Telegram voice note.
    order = [c.method for c in calls if c.method in ("sendMessage", "sendVoice")]
    assert order == ["sendMessage", "sendMessage", "sendVoice"]
    audio = voices[0].params["voice"]
    container, codec, seconds = ogg_opus_info(audio)
    assert container == "ogg" and codec == "opus" and seconds > 1.0


def test_voice_command_turns_spoken_answers_off_and_on(bot, peer, voice_note):
    mark = peer.mark()
    peer.push(message(302, "/voce off", user(302, "it", "Lia")))
    assert "solo per iscritto" in peer.wait_sent(mark, 1, chat_id=302)[0].result["text"]
    mark = send_voice(peer, 302, voice_note, user(302, "it", "Lia"))
    peer.wait_sent(mark, 2, chat_id=302, timeout=120)
    mark2 = peer.mark()
    peer.push(message(302, "/voce", user(302, "it", "Lia")))  # a sync point, and the usage shows "off"
    assert "disattivate" in peer.wait_sent(mark2, 1, chat_id=302)[0].result["text"]
    assert not [c for c in peer.calls_since(mark, "sendVoice") if int(c.params["chat_id"]) == 302]
    mark = peer.mark()
    peer.push(message(302, "/voice on", user(302, "en", "Lia")))
    assert "also answer voice questions by voice" in peer.wait_sent(mark, 1, chat_id=302)[0].result["text"]


@pytest.mark.parametrize("case, expected", [
    ("silence", "can't hear anything"),
    ("corrupt", "can't open this audio file"),
    ("empty", "is empty"),
])
def test_bad_voice_notes_get_a_polite_reply(bot, peer, case, expected):
    data = {"silence": telegram_ogg(silence_wav(2)), "corrupt": b"OggS\0garbage" * 100, "empty": b""}[case]
    chat = 310 + ["silence", "corrupt", "empty"].index(case)
    mark = send_voice(peer, chat, data, user(chat, "en"))
    reply = peer.wait_sent(mark, 1, chat_id=chat, timeout=60)[0]
    assert expected in reply.result["text"], reply.result["text"]
    # The chat is not stuck: a text question right after is answered.
    mark = peer.mark()
    peer.push(message(chat, "What is the city doing for sustainable mobility?", user(chat, "en")))
    assert "Sources:" in peer.wait_sent(mark, 1, chat_id=chat, timeout=60)[0].result["text"]


def test_too_long_or_too_big_is_refused_before_download(bot, peer):
    mark = send_voice(peer, 320, telegram_ogg(noise_wav(5)), user(320, "en"), duration=600)
    assert "at most 60 seconds" in peer.wait_sent(mark, 1, chat_id=320)[0].result["text"]
    assert not peer.calls_since(mark, "getFile")
    mark = peer.mark()
    note = {"file_id": "big", "file_unique_id": "big", "duration": 30, "file_size": 5_000_000}
    peer.push(message(321, None, user(321, "it"), voice=note))
    assert "troppo grande" in peer.wait_sent(mark, 1, chat_id=321)[0].result["text"]
    assert not peer.calls_since(mark, "getFile")


def test_too_long_audio_whose_metadata_lies_is_refused_after_decoding(bot, peer):
    mark = send_voice(peer, 322, telegram_ogg(noise_wav(65)), user(322, "en"), duration=5)
    assert "at most 60 seconds" in peer.wait_sent(mark, 1, chat_id=322, timeout=60)[0].result["text"]
