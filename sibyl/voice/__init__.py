"""Voice as a channel feature (issue 16): speech in (ASR), spoken answers out (TTS), over the same
conversation service as text. `VoiceService.from_settings(settings)` is built once per process by the
composition root; the ASR model itself loads on first use, once per process (sibyl.voice.asr).

    transcribe(bytes) -> Transcript   caps, decode, silence, language, empty transcript: VoiceError
    speak(payload)    -> OGG/Opus      the spoken rendering of an answer (sibyl.voice.spoken)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from sibyl.settings import Settings
from sibyl.voice import spoken
from sibyl.voice.asr import ASR, FasterWhisperASR, OpenAIASR, Transcript, default_spec
from sibyl.voice.audio import available, decode
from sibyl.voice.errors import STATUS, VoiceError
from sibyl.voice.tts import TTS, EspeakTTS, OpenAITTS

log = logging.getLogger(__name__)

__all__ = ["VoiceService", "VoiceError", "Transcript", "STATUS", "spoken"]


def _secret(value) -> str | None:
    return value.get_secret_value() if value is not None else None


def make_asr(settings: Settings) -> ASR | None:
    spec = settings.asr or default_spec()
    provider, _, model = spec.partition(":")
    if spec == "none":
        return None
    if provider == "faster-whisper":
        return FasterWhisperASR(model.strip())
    if not settings.asr_base_url:
        log.error("SIBYL_ASR=%s needs SIBYL_ASR_BASE_URL: voice input is off", spec)
        return None
    return OpenAIASR(model.strip(), settings.asr_base_url, _secret(settings.asr_api_key), settings.voice_timeout)


def make_tts(settings: Settings) -> TTS | None:
    spec = settings.tts or "espeak-ng"
    if spec == "none":
        return None
    if spec == "espeak-ng":
        tts = EspeakTTS(timeout=settings.voice_timeout)
        return tts if tts.available else None
    if not settings.tts_base_url:
        log.error("SIBYL_TTS=%s needs SIBYL_TTS_BASE_URL: spoken answers are off", spec)
        return None
    return OpenAITTS(spec.partition(":")[2].strip(), settings.tts_base_url, _secret(settings.tts_api_key),
                     settings.tts_voice, settings.voice_timeout)


@dataclass
class Heard:
    """A transcribed question and what it cost (for logs and `sibyl bench-voice`)."""

    transcript: Transcript
    decode_seconds: float
    asr_seconds: float


class VoiceService:
    def __init__(self, settings: Settings, asr: ASR | None, tts: TTS | None) -> None:
        self.settings = settings
        self.asr = asr
        self.tts = tts

    @classmethod
    def from_settings(cls, settings: Settings) -> VoiceService:
        """Cheap (no model is loaded here); without PyAV (the voice extra) voice is off."""
        if not available():
            if settings.asr not in ("", "none") or settings.tts not in ("", "none", "espeak-ng"):
                log.error("voice is configured but PyAV is missing: pip install -e '.[voice]'")
            return cls(settings, None, None)
        return cls(settings, make_asr(settings), make_tts(settings))

    @property
    def can_listen(self) -> bool:
        return self.asr is not None

    @property
    def can_speak(self) -> bool:
        return self.tts is not None

    def check_size(self, size: int) -> None:
        if size > self.settings.voice_max_bytes:
            raise VoiceError("audio_too_large")

    def transcribe(self, data: bytes) -> Heard:
        """Blocking (decode + ASR): call in a worker thread. Raises VoiceError."""
        if self.asr is None:
            raise VoiceError("voice_unavailable")
        self.check_size(len(data))
        started = time.perf_counter()
        audio = decode(data, self.settings.voice_max_seconds)
        decoded = time.perf_counter()
        transcript = self.asr.transcribe(audio)
        done = time.perf_counter()
        if not any(ch.isalnum() for ch in transcript.text):
            raise VoiceError("no_speech")
        return Heard(transcript, decoded - started, done - decoded)

    def spoken_text(self, payload: Mapping) -> str:
        return spoken.from_payload(payload, self.settings.voice_max_spoken_chars)

    def speak_text(self, text: str, language: str) -> bytes:
        """Blocking: OGG/Opus of `text`. Raises VoiceError."""
        if self.tts is None:
            raise VoiceError("voice_unavailable")
        if not text.strip():
            raise VoiceError("no_speech")
        return self.tts.synthesize(text, language)

    def speak(self, payload: Mapping) -> bytes:
        """Blocking: the spoken answer of a chat reply as OGG/Opus."""
        return self.speak_text(self.spoken_text(payload), payload.get("language") or "it")
