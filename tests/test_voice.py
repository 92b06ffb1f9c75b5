"""Voice over HTTP (issue 16): espeak-ng speaks an English question, it is encoded like a Telegram voice note
or a browser recording, and POST /api/voice transcribes it with faster-whisper (the voice extra's bundled
tiny.en) and answers it like /api/chat; GET /api/tts reads a stored answer back as OGG/Opus. Bad audio of
every kind gets a typed 4xx."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from api.app import create_app
from sibyl.voice import spoken
from tests.voice_support import (
    KEY_WORDS,
    QUESTION,
    noise_wav,
    ogg_opus_info,
    silence_wav,
    speak_wav,
    telegram_ogg,
    webm_opus,
)

pytestmark = pytest.mark.slow


def app_settings(settings, tmp_path, **overrides):
    values = {"database_url": f"sqlite:///{tmp_path / 'sibyl.db'}", "rate_limit": "", "cors_origins": ""}
    values.update(overrides)
    return settings.model_copy(update=values)


@pytest.fixture(scope="module")
def client(settings, built_index, tmp_path_factory):
    with TestClient(create_app(app_settings(settings, tmp_path_factory.mktemp("voice"))),
                    raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def question_wav() -> bytes:
    return speak_wav(QUESTION)


@pytest.fixture(scope="module")
def voice_reply(client, question_wav):
    r = client.post("/api/voice", files={"audio": ("voice.ogg", telegram_ogg(question_wav), "audio/ogg")})
    assert r.status_code == 200, r.text
    return r.json()


def post_audio(client, data: bytes, name: str = "q.ogg", mime: str = "audio/ogg", **fields):
    return client.post("/api/voice", data=fields, files={"audio": (name, data, mime)})


# --- a spoken question, answered -----------------------------------------------------------------
def test_voice_question_is_transcribed_and_answered_like_chat(client, voice_reply):
    body = voice_reply
    transcript = body["transcript"].lower()
    assert all(word in transcript for word in KEY_WORDS), transcript
    assert body["transcript_language"] == "en" and body["language"] == "en"
    assert body["answered"] is True and body["sources"] and body["session_id"] and body["message_id"]
    assert body["question"] == body["transcript"]
    # The same pipeline: typing the transcript gives the same sources, in the same order.
    typed = client.post("/api/chat", json={"message": body["transcript"]}).json()
    assert [s["id"] for s in body["sources"]] == [s["id"] for s in typed["sources"]]
    titles = {s["title"] for s in body["sources"]}
    assert any("DUP 2025-2027" in t for t in titles) or any("Performance" in t for t in titles), titles


def test_browser_recording_webm_is_accepted_in_the_same_session(client, question_wav, voice_reply):
    r = post_audio(client, webm_opus(question_wav), "rec.webm", "audio/webm", session_id=voice_reply["session_id"])
    assert r.status_code == 200, r.text
    assert r.json()["session_id"] == voice_reply["session_id"]
    assert "cycling" in r.json()["transcript"].lower()


def test_tts_reads_the_stored_answer_as_ogg_opus(client, voice_reply):
    r = client.get("/api/tts", params={"message_id": voice_reply["message_id"]})
    assert r.status_code == 200
    assert r.headers["content-type"] == "audio/ogg"
    container, codec, seconds = ogg_opus_info(r.content)
    assert container == "ogg" and codec == "opus"
    assert seconds > 1.0


def test_spoken_rendering_of_a_stored_answer_has_no_markers_or_urls(client, voice_reply, settings):
    text = spoken.from_text(voice_reply["answer"], voice_reply["sources"], "en", 600)
    assert text and len(text) <= 600 + len(" The rest of the answer is in the text.")
    assert not re.search(r"\[\d+\]|https?://|[\[\]]", text), text
    first_title = voice_reply["sources"][0]["title"]
    assert f"Source: {spoken.clean(first_title)}." in text or "The rest of the answer" in text


def test_tts_unknown_or_user_message_is_404(client, voice_reply):
    assert client.get("/api/tts", params={"message_id": "0" * 32}).json()["code"] == "unknown_message"
    r = client.get("/api/tts", params={"message_id": "x" * 65})
    assert r.status_code == 422
    r = client.get("/api/tts")
    assert r.status_code == 422


# --- bad input: typed 4xx with a message ------------------------------------------------------------
@pytest.mark.parametrize("case, status, code", [
    ("empty", 400, "audio_empty"),
    ("silence", 422, "audio_silent"),
    ("too_long", 413, "audio_too_long"),
    ("corrupt", 415, "bad_audio"),
    ("not_audio", 415, "bad_audio"),
    ("truncated_header", 415, "bad_audio"),
])
def test_bad_audio_gets_a_typed_4xx(client, question_wav, case, status, code):
    data = {
        "empty": b"",
        "silence": silence_wav(3),
        "too_long": noise_wav(61),
        "corrupt": b"OggS" + bytes(range(256)) * 20,
        "not_audio": b"%PDF-1.7\n" + b"1 0 obj << /Type /Catalog >> endobj\n" * 50,
        "truncated_header": question_wav[:30],
    }[case]
    r = post_audio(client, data)
    assert r.status_code == status, r.text
    assert r.json()["code"] == code and len(r.json()["detail"]) > 20


def test_refusals_speak_the_requested_language(client):
    r = post_audio(client, silence_wav(2), language="it")
    assert r.status_code == 422 and "Non sento niente" in r.json()["detail"]


def test_oversized_upload_is_refused_before_it_is_read(client):
    r = post_audio(client, b"\0" * 2_100_000)
    assert r.status_code == 413 and r.json()["code"] == "too_large"


def test_missing_audio_field_or_json_body_is_422(client):
    assert client.post("/api/voice", data={"language": "en"}).status_code == 422
    assert client.post("/api/voice", json={"audio": "aGVsbG8="}).status_code == 422
    r = client.post("/api/voice", data={"language": "de"}, files={"audio": ("q.ogg", b"x", "audio/ogg")})
    assert r.status_code == 422


@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(min_size=0, max_size=4096), name=st.sampled_from(["a.ogg", "a.webm", "a.wav", "a.mp3", "x"]))
def test_random_bytes_never_5xx(client, data, name):
    r = post_audio(client, data, name)
    assert r.status_code < 500, r.text
    assert r.status_code == 200 or r.json()["code"] in {"audio_empty", "bad_audio", "audio_silent", "no_speech",
                                                        "audio_too_long", "bad_question"}


# --- voice off, rate limit -------------------------------------------------------------------------
def test_voice_off_is_503_with_a_clear_message(settings, built_index, tmp_path):
    with TestClient(create_app(app_settings(settings, tmp_path, asr="none", tts="none")),
                    raise_server_exceptions=False) as c:
        r = post_audio(c, silence_wav(1))
        assert r.status_code == 503 and r.json()["code"] == "voice_unavailable"
        assert "type your question" in r.json()["detail"]
        assert c.get("/api/tts", params={"message_id": "0" * 32}).status_code == 503


def test_voice_is_rate_limited_like_chat(settings, built_index, tmp_path):
    with TestClient(create_app(app_settings(settings, tmp_path, rate_limit="2/minute")),
                    raise_server_exceptions=False) as c:
        statuses = [post_audio(c, b"").status_code for _ in range(3)]
        assert statuses == [400, 400, 429]


# --- the spoken rendering ----------------------------------------------------------------------------
def test_spoken_rendering_from_the_structured_answer():
    payload = {"language": "it", "answer": "", "sources": [{"n": 1, "title": "Relazione sulla Performance 2023"},
                                                           {"n": 2, "title": "DUP 2025-2027"}],
               "structured": {"lead": "Il Comune ha fatto questo [1] (vedi https://www.comune.lecce.it):",
                              "bullets": [{"text": "Piste ciclabili: 12 km [1]", "source": 1},
                                          {"text": "Bike sharing [1]", "source": 1},
                                          {"text": "Nuove linee bus nel 2025-2027 [2]", "source": 2}]}}
    text = spoken.from_payload(payload, 600)
    assert text == ("Il Comune ha fatto questo vedi: Piste ciclabili: 12 km. Fonte: Relazione sulla Performance "
                    "2023. Bike sharing. Nuove linee bus nel 2025 2027. Fonte: DUP 2025 2027.")
    short = spoken.from_payload(payload, 80)
    assert len(short) < 80 + len(" Il resto della risposta è nel testo.") and short.endswith("nel testo.")


@given(st.text(max_size=300))
def test_spoken_clean_never_leaves_markers_or_urls(text):
    out = spoken.clean(text + " [3] https://example.org/x?y=1 www.comune.lecce.it")
    assert not re.search(r"\[\d+\]|https?://|www\.", out)
