"""`POST /api/chat/stream`: the /api/chat answer as server-sent events.

Events: `token` (data: a piece of model text, JSON string) while a language model writes, then one
`final` (data: the same object /api/chat returns: answer, sources, mode, session_id, message_id...).
The final answer is the checked one: when the streamed text fails the grounding checks it is the
extractive answer (`mode: "extractive"`), when some of its sentences are not supported by the sources
they cite it is the model text without them (`mode: "llm-trimmed"`), and the client must show it
instead of the streamed text. Without a model there
are no token events. A failure after the stream started is one `error` event ({detail, code}).

The reply runs exactly as /api/chat's does: the same ConversationService (follow-ups, storage, metrics),
in a worker thread within the same CPU limiter (Services.run), the model's tokens passed back by the
`on_token` callback; it starts in a dependency so that bad input is a 4xx JSON error before any event
is sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.sse import EventSourceResponse, ServerSentEvent

from api.deps import RateLimit, ServicesDep
from api.models import ChatRequest
from api.routes import ERRORS
from sibyl.conversation import Reply
from sibyl.services import Services

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api", tags=["api"], responses=ERRORS)


class ChatStream:
    """One reply computed like /api/chat's (Services.run: a worker thread within the CPU limiter); the
    model's tokens come back to the event loop through a queue as they are written, then the Reply."""

    def __init__(self, services: Services, body: ChatRequest) -> None:
        loop = asyncio.get_running_loop()
        self.items: asyncio.Queue[str | Reply | BaseException] = asyncio.Queue()

        def on_token(token: str) -> None:  # in the worker thread
            loop.call_soon_threadsafe(self.items.put_nowait, token)

        async def work() -> None:
            try:
                reply = await services.run(services.conversation.reply, body.message, session_id=body.session_id,
                                           channel="web", language=body.language, on_token=on_token,
                                           language_hint=body.language_hint)
            except Exception as exc:  # noqa: BLE001 - raised (before the first event) or reported (after)
                self.items.put_nowait(exc)
            else:
                self.items.put_nowait(reply)  # after every token: their callbacks were scheduled first

        self.task = asyncio.create_task(work())  # kept: the reply finishes (and is stored) even if the client leaves

    async def first(self) -> str | Reply:
        item = await self.items.get()
        if isinstance(item, BaseException):
            raise item  # BadQuestion, UnknownSession...: the app's handlers answer 4xx
        self.head = item
        return item

    async def events(self) -> AsyncIterator[ServerSentEvent]:
        item: str | Reply | BaseException = self.head
        while True:
            if isinstance(item, str):
                yield ServerSentEvent(event="token", data=item)
            elif isinstance(item, Reply):
                yield ServerSentEvent(event="final", data=item.to_dict())
                return
            else:
                log.error("chat stream failed after it started", exc_info=item)
                detail = "Something went wrong on our side; please try again."
                yield ServerSentEvent(event="error", data={"code": "internal_error", "detail": detail})
                return
            item = await self.items.get()


async def start_stream(body: ChatRequest, services: ServicesDep) -> ChatStream:
    """Started in a dependency: bad input is a 4xx JSON error before any event is sent."""
    stream = ChatStream(services, body)
    await stream.first()
    return stream


@router.post("/chat/stream", response_class=EventSourceResponse, dependencies=[RateLimit])
async def chat_stream(stream: Annotated[ChatStream, Depends(start_stream)]) -> AsyncIterator[ServerSentEvent]:
    """Like /api/chat, as server-sent events: `token`* then `final` (the checked answer, `mode` llm, llm-trimmed
    or extractive; it replaces the tokens)."""
    async for event in stream.events():
        yield event
