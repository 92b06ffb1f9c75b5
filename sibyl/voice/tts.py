"""Text to speech, by setting (SIBYL_TTS): espeak-ng (Debian package, offline) or an OpenAI-compatible
`/audio/speech` server (Kokoro-FastAPI, openedai-speech with Piper...). Both return OGG/Opus."""

from __future__ import annotations

import logging
import shutil
import subprocess
from typing import Protocol

import httpx

from sibyl.voice.audio import to_ogg_opus
from sibyl.voice.errors import VoiceError

log = logging.getLogger(__name__)

ESPEAK_VOICES = {"it": "it", "en": "en"}


class TTS(Protocol):
    name: str

    def synthesize(self, text: str, language: str) -> bytes:
        """OGG/Opus audio of `text` spoken in `language`."""
        ...


class EspeakTTS:
    name = "espeak-ng"

    def __init__(self, binary: str = "espeak-ng", timeout: float = 30.0) -> None:
        self.binary = binary
        self.timeout = timeout

    @property
    def available(self) -> bool:
        return shutil.which(self.binary) is not None

    def wav(self, text: str, language: str) -> bytes:
        """espeak-ng's WAV on stdout; the text goes on stdin, never on the command line (no option injection)."""
        if not self.available:
            raise VoiceError("voice_unavailable", "espeak-ng is not installed")
        try:
            done = subprocess.run([self.binary, "-v", ESPEAK_VOICES.get(language, "it"), "-b", "1", "--stdin",
                                   "--stdout"], input=text.encode("utf-8"), capture_output=True,
                                  timeout=self.timeout, check=True)
        except (subprocess.SubprocessError, OSError) as exc:
            log.warning("espeak-ng failed: %s", type(exc).__name__)
            raise VoiceError("voice_backend_failed", f"espeak-ng: {type(exc).__name__}") from None
        return done.stdout

    def synthesize(self, text: str, language: str) -> bytes:
        return to_ogg_opus(self.wav(text, language))


class OpenAITTS:
    """POST {base}/audio/speech {model, input, voice, response_format: wav} -> re-encoded to OGG/Opus."""

    def __init__(self, model: str, base_url: str, api_key: str | None = None, voice: str = "",
                 timeout: float = 30.0) -> None:
        self.model = model
        self.name = f"openai:{model}"
        self.url = base_url.rstrip("/") + "/audio/speech"
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.voice = voice
        self.timeout = timeout

    def synthesize(self, text: str, language: str) -> bytes:
        body = {"model": self.model, "input": text, "response_format": "wav", "voice": self.voice or "alloy"}
        try:
            r = httpx.post(self.url, json=body, headers=self.headers, timeout=self.timeout)
            r.raise_for_status()
            return to_ogg_opus(r.content)
        except VoiceError:
            raise
        except Exception as exc:  # transport errors, or audio PyAV cannot read
            log.warning("speech server failed: %s", type(exc).__name__)
            raise VoiceError("voice_backend_failed", f"speech server: {type(exc).__name__}") from None
