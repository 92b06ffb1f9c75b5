"""Real audio for the voice tests: espeak-ng speaks, ffmpeg encodes like Telegram's voice notes (OGG/Opus,
mono, 48 kHz) -- independent of sibyl.voice's own encoder -- and PyAV reads what Sibyl sends back."""

from __future__ import annotations

import io
import subprocess
import wave

import av
import numpy as np

QUESTION = "What is the city doing for the cycling network and public transport?"
KEY_WORDS = ("cycling", "public transport")


def speak_wav(text: str, voice: str = "en") -> bytes:
    return subprocess.run(["espeak-ng", "-v", voice, "--stdin", "--stdout"], input=text.encode(),
                          capture_output=True, check=True, timeout=60).stdout


def telegram_ogg(wav: bytes) -> bytes:
    """What a Telegram client uploads for a voice note: Opus in OGG, mono 48 kHz, ~32 kbit/s."""
    return subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "wav", "-i", "pipe:0",
                           "-c:a", "libopus", "-b:a", "32k", "-ac", "1", "-ar", "48000", "-f", "ogg", "pipe:1"],
                          input=wav, capture_output=True, check=True, timeout=60).stdout


def webm_opus(wav: bytes) -> bytes:
    """What Chrome's MediaRecorder posts: Opus in WebM."""
    return subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "wav", "-i", "pipe:0",
                           "-c:a", "libopus", "-ac", "1", "-f", "webm", "pipe:1"],
                          input=wav, capture_output=True, check=True, timeout=60).stdout


def pcm_wav(samples: np.ndarray, rate: int = 16_000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return buf.getvalue()


def silence_wav(seconds: float) -> bytes:
    return pcm_wav(np.zeros(int(seconds * 16_000), dtype=np.float32))


def noise_wav(seconds: float, rate: int = 8_000) -> bytes:
    return pcm_wav(np.random.default_rng(0).uniform(-0.3, 0.3, int(seconds * rate)).astype(np.float32), rate)


def ogg_opus_info(data: bytes) -> tuple[str, str, float]:
    """(container, codec, decoded seconds) of an audio file, read with PyAV."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        codec = stream.codec_context.name
        seconds = sum(frame.samples / frame.sample_rate for frame in container.decode(stream))
        return container.format.name, codec, seconds
