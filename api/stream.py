"""`POST /api/chat/stream`: the /api/chat answer as server-sent events.

Events: `token` (data: a piece of model text, JSON string) while a language model writes, then one
`final` (data: the same object /api/chat returns: answer, sources, mode, session_id, message_id...).
The final answer is the checked one: when the streamed text fails the grounding checks it is the
extractive answer (`mode: "extractive"`), when some of its sentences are not supported by the sources
they cite it is the model text without them (`mode: "llm-trimmed"`), and the client must show it
instead of the streamed text. Without a model there
are no token events. A failure after the stream started is one `error` event ({detail, code}).

The reply runs through the same ConversationService as /api/chat (follow-ups, storage, metrics);
it starts in a dependency so that bad input is a 4xx JSON error before any event is sent.
"""

from __future__ import annotations

import contextvars
import logging
import queue
import threading
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.sse import EventSourceResponse, ServerSentEvent

from api.deps import ConversationDep, RateLimit
from api.models import ChatRequest
from api.routes import ERRORS
from retrieval.llm import token_sink
from sibyl.conversation import ConversationService

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api", tags=["api"], responses=ERRORS)


class _Final:
    def __init__(self, payload: dict) -> None:
        self.payload = payload


class ChatStream:
    """One reply computed in a worker thread; its tokens and result come back through a queue."""

    def __init__(self, conversation: ConversationService, body: ChatRequest) -> None:
        self.items: queue.Queue = queue.Queue()
        context = contextvars.copy_context()  # keeps the request's log/metrics context in the worker
        threading.Thread(target=context.run, args=(self._work, conversation, body), daemon=True,
                         name="sibyl-chat-stream").start()
        self.first = self.items.get()
        if isinstance(self.first, Exception):
            raise self.first  # BadQuestion, UnknownSession...: the app's handlers answer 4xx

    def _work(self, conversation: ConversationService, body: ChatRequest) -> None:
        token_sink.set(self.items.put)
        try:
            payload = conversation.reply(body.message, session_id=body.session_id, channel="web",
                                         language=body.language)
            self.items.put(_Final(payload))
        except Exception as exc:  # noqa: BLE001 - handed to the request thread, raised or reported there
            self.items.put(exc)

    def events(self) -> Iterator[ServerSentEvent]:
        item = self.first
        while True:
            if isinstance(item, str):
                yield ServerSentEvent(event="token", data=item)
            elif isinstance(item, _Final):
                yield ServerSentEvent(event="final", data=item.payload)
                return
            else:
                log.error("chat stream failed after it started", exc_info=item)
                yield ServerSentEvent(event="error", data={"code": "internal_error",
                                                           "detail": "Something went wrong on our side; please try again."})
                return
            item = self.items.get()


def start_stream(body: ChatRequest, conversation: ConversationDep) -> ChatStream:
    return ChatStream(conversation, body)


@router.post("/chat/stream", response_class=EventSourceResponse, dependencies=[RateLimit])
def chat_stream(stream: Annotated[ChatStream, Depends(start_stream)]) -> Iterator[ServerSentEvent]:
    """Like /api/chat, as server-sent events: `token`* then `final` (the checked answer, `mode` llm, llm-trimmed
    or extractive; it replaces the tokens)."""
    yield from stream.events()
