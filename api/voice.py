"""Voice endpoints (issue 16), thin like the rest of api/: audio in -> transcript -> the same chat reply;
a stored answer -> its spoken rendering as audio.

    POST /api/voice   multipart `audio` (+ `session_id`, `language`) -> the /api/chat reply + `transcript`
    GET  /api/tts?message_id=…  -> audio/ogg (Opus) of that assistant message, read aloud

Decoding, transcription and synthesis run off the event loop within the CPU limiter (Services.run).
Audio is never written anywhere by us: it is decoded in memory and dropped with the request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, FastAPI, File, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from pydantic import Field

import prompts
from api.deps import RateLimit, ServicesDep
from api.errors import error
from api.models import ChatResponse, ErrorResponse, Language, SessionId
from sibyl.store import UnknownMessage
from sibyl.voice import VoiceError, VoiceService

PATH = "/api/voice"
FRAMING_BYTES = 64 * 1024  # multipart boundaries, headers and the two small fields around the audio

router = APIRouter(prefix="/api", tags=["voice"],
                   responses={code: {"model": ErrorResponse} for code in (400, 404, 413, 415, 422, 429, 503)})


class VoiceResponse(ChatResponse):
    transcript: str = Field(description="What was heard: the question that was answered.")
    transcript_language: Language


def body_limit(settings) -> dict[str, int]:
    """The body limit middleware's override for this path (api.app): the audio cap plus framing."""
    return {PATH: settings.voice_max_bytes + FRAMING_BYTES}


def voice_of(services) -> VoiceService:
    voice = getattr(services, "voice", None)
    if voice is None:  # a composition root without voice: build it once (cheap, no model loaded)
        voice = services.voice = VoiceService.from_settings(services.settings)
    return voice


@router.post("/voice", response_model=VoiceResponse, dependencies=[RateLimit])
async def voice_question(request: Request, services: ServicesDep,
                         audio: Annotated[UploadFile, File(description="The recorded question: OGG/Opus, WebM, "
                                                                       "WAV, MP3 or M4A.")],
                         session_id: Annotated[SessionId | None, Form()] = None,
                         language: Annotated[Language | None, Form()] = None) -> dict:
    """A spoken question: transcribed, then answered exactly like `POST /api/chat` (same session rules)."""
    request.state.voice_language = language
    voice = voice_of(services)
    if not voice.can_listen:
        raise VoiceError("voice_unavailable")
    if audio.size is not None:
        voice.check_size(audio.size)
    data = await audio.read(services.settings.voice_max_bytes + 1)
    heard = await services.run(voice.transcribe, data)
    transcript = heard.transcript
    reply = await services.run(services.conversation.reply, transcript.text, session_id=session_id, channel="web",
                               language=language or transcript.language)
    return {**reply, "transcript": transcript.text, "transcript_language": transcript.language}


@router.get("/tts", response_class=Response, dependencies=[RateLimit],
            responses={200: {"content": {"audio/ogg": {}}, "description": "The answer read aloud (OGG/Opus)."}})
async def speak_message(request: Request, services: ServicesDep,
                        message_id: Annotated[str, Query(min_length=1, max_length=64)]) -> Response:
    """An assistant message of the store read aloud: lead, points and their documents, without markers or URLs."""
    voice = voice_of(services)
    if not voice.can_speak:
        raise VoiceError("voice_unavailable")
    message = await services.run(services.store.get_message, message_id)
    if message is None or message.role != "assistant":
        raise UnknownMessage(message_id)
    request.state.voice_language = message.language
    text = voice.spoken_text({"language": message.language, "answer": message.text, "sources": message.sources or []})
    audio = await services.run(voice.speak_text, text, message.language or "it")
    # An answer never changes: the browser may replay it without asking again.
    return Response(audio, media_type="audio/ogg", headers={"Cache-Control": "private, max-age=3600"})


async def voice_error(request: Request, exc: VoiceError) -> JSONResponse:
    settings = request.app.state.settings
    language = getattr(request.state, "voice_language", None) or "en"
    detail = prompts.text(language, f"voice_{exc.code}", max_bytes=settings.voice_max_bytes,
                          max_seconds=int(settings.voice_max_seconds))
    headers = {"Retry-After": "5"} if exc.status == 503 else None
    return error(exc.status, exc.code, detail, headers=headers)


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.add_exception_handler(VoiceError, voice_error)  # type: ignore[arg-type]  # Starlette: handlers take Exception
