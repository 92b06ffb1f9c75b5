"""Audio in and out with PyAV (FFmpeg's libraries, no ffmpeg process): any upload to 16 kHz mono float for
Whisper, any synthesized audio to OGG/Opus (what Telegram plays as a voice note and browsers play inline).

Uploads are untrusted: only audio containers are probed, decoding stops at the duration cap (a small
compressed file can unpack to hours), and every decoder failure becomes a typed `VoiceError`.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

import numpy as np

from sibyl.voice.errors import VoiceError

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000  # what Whisper expects
# Containers a voice question may come in: Telegram (ogg/opus), MediaRecorder (webm, mp4/m4a on Safari),
# WAV, MP3, FLAC, AAC. Anything FFmpeg would also probe (images, subtitles, playlists...) is refused.
AUDIO_FORMATS = {"ogg", "webm", "matroska", "wav", "mp3", "mov", "mp4", "m4a", "3gp", "3g2", "mj2", "flac", "aac",
                 "adts"}
SILENCE_RMS = 0.003  # about -50 dBFS: below this a recording holds no speech worth transcribing


@dataclass(frozen=True)
class Decoded:
    samples: np.ndarray  # float32, mono, SAMPLE_RATE
    seconds: float

    @property
    def rms(self) -> float:
        return float(np.sqrt(np.mean(np.square(self.samples, dtype=np.float64)))) if self.samples.size else 0.0


def available() -> bool:
    """PyAV (the `voice` extra) is installed: audio can be decoded and encoded."""
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


def decode(data: bytes, max_seconds: float) -> Decoded:
    """Any supported audio -> 16 kHz mono float32. Raises VoiceError: audio_empty, bad_audio, audio_too_long,
    audio_silent."""
    import av  # the voice extra: imported on use, so the service starts without it

    if not data:
        raise VoiceError("audio_empty")
    limit = int(max_seconds * SAMPLE_RATE)
    chunks: list[np.ndarray] = []
    total = 0
    try:
        with av.open(io.BytesIO(data), mode="r", metadata_errors="ignore") as container:
            if not set(container.format.name.split(",")) & AUDIO_FORMATS or not container.streams.audio:
                raise VoiceError("bad_audio")
            stream = container.streams.audio[0]
            if stream.duration is not None and stream.time_base is not None \
                    and float(stream.duration * stream.time_base) > max_seconds + 1:
                raise VoiceError("audio_too_long")
            resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunk = out.to_ndarray().reshape(-1)
                    chunks.append(chunk)
                    total += chunk.size
                if total > limit:
                    raise VoiceError("audio_too_long")
            for out in resampler.resample(None):
                chunk = out.to_ndarray().reshape(-1)
                chunks.append(chunk)
                total += chunk.size
    except VoiceError:
        raise
    except Exception as exc:  # FFmpeg errors, PyAV value errors on nonsense headers: all mean "not audio we read"
        log.debug("audio decode failed: %s: %s", type(exc).__name__, exc)
        raise VoiceError("bad_audio") from None
    if total > limit:
        raise VoiceError("audio_too_long")
    if total == 0:
        raise VoiceError("audio_empty")
    samples = np.concatenate(chunks).astype(np.float32, copy=False)
    samples = np.nan_to_num(samples, nan=0.0, posinf=1.0, neginf=-1.0).clip(-1.0, 1.0)
    decoded = Decoded(samples, samples.size / SAMPLE_RATE)
    if decoded.rms < SILENCE_RMS:
        raise VoiceError("audio_silent")
    return decoded


def to_ogg_opus(data: bytes, bitrate: int = 32_000) -> bytes:
    """Any audio PyAV reads (espeak-ng's WAV, a TTS server's reply) -> OGG/Opus mono 48 kHz."""
    import av

    out_buf = io.BytesIO()
    with av.open(io.BytesIO(data), mode="r") as source, av.open(out_buf, mode="w", format="ogg") as target:
        stream = target.add_stream("libopus", rate=48_000)
        stream.layout = "mono"
        stream.bit_rate = bitrate
        resampler = av.AudioResampler(format="s16", layout="mono", rate=48_000)
        for frame in source.decode(audio=0):
            for out in resampler.resample(frame):
                target.mux(stream.encode(out))
        for out in resampler.resample(None):
            target.mux(stream.encode(out))
        target.mux(stream.encode(None))
    return out_buf.getvalue()


def duration_seconds(data: bytes) -> float:
    """Decoded length of an audio file (tests and the bench check what was synthesized)."""
    import av

    seconds = 0.0
    with av.open(io.BytesIO(data), mode="r") as container:
        for frame in container.decode(audio=0):
            seconds += frame.samples / frame.sample_rate
    return seconds
