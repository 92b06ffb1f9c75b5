"""Why a voice request is refused: one code per case, an HTTP status, and a text key in prompts/."""

from __future__ import annotations

# code -> HTTP status. Texts: prompts/messages.{it,en}.toml `voice_<code>` (API) and
# prompts/telegram.{it,en}.toml `voice_<code>` (bot).
STATUS = {
    "voice_unavailable": 503,
    "audio_empty": 400,
    "audio_too_large": 413,
    "audio_too_long": 413,
    "bad_audio": 415,
    "audio_silent": 422,
    "no_speech": 422,
    "unsupported_language": 422,
    "voice_backend_failed": 503,
}


class VoiceError(Exception):
    """A voice request that cannot be served; `code` picks the status and the user-facing text."""

    def __init__(self, code: str, detail: str = "") -> None:
        assert code in STATUS, code
        super().__init__(detail or code)
        self.code = code
        self.status = STATUS[code]
