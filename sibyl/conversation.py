"""One conversation service for every channel: session, follow-up context, answer, storage."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import InitVar, dataclass, field
from types import SimpleNamespace
from typing import Any

from retrieval.answer import Answer
from retrieval.followup import resolve
from retrieval.pipeline import Pipeline
from retrieval.suggestions import suggestions as suggestions_of
from sibyl.observability import record_answer
from sibyl.store import Store, UnknownSession  # noqa: F401  (re-exported for the channels)


@dataclass(frozen=True, eq=False)
class Reply(Mapping[str, Any]):
    """One reply in its conversation: the Answer plus where it is stored and what may come next.

    Its JSON form (`to_dict()`, what /api/chat returns) is built here and only here; channels may also
    read it like the mapping it used to be (`reply["answer"]`), never change it.
    """

    answer: Answer
    session_id: str
    message_id: str
    suggestions: list[str]
    followup: bool
    suggestion_labels: list[str] = field(default_factory=list)  # the same, at most 40 characters (phone buttons)
    # The answer's dict when the caller has it already (the stored one): built once per reply (issue 18)
    answer_dict: InitVar[dict[str, Any] | None] = None
    _payload: dict[str, Any] = field(init=False, repr=False)

    def __post_init__(self, answer_dict: dict[str, Any] | None) -> None:
        answer = answer_dict if answer_dict is not None else self.answer.to_dict()
        payload = {**answer, "session_id": self.session_id, "message_id": self.message_id,
                   "suggestions": self.suggestions, "followup": self.followup,
                   "suggestion_labels": self.suggestion_labels or list(self.suggestions)}
        object.__setattr__(self, "_payload", payload)

    def to_dict(self) -> dict[str, Any]:
        return dict(self._payload)

    def __getitem__(self, key: str) -> Any:
        return self._payload[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._payload)

    def __len__(self) -> int:
        return len(self._payload)


class ConversationService:
    def __init__(self, pipeline: Pipeline, store: Store, context_turns: int = 3,
                 office_pointer: Callable[[str, str], str | None] | None = None) -> None:
        self.pipeline = pipeline
        self.store = store
        self.context_turns = context_turns  # previous turns read to resolve a follow-up (SIBYL_CONTEXT_TURNS)
        # (question, language) -> the competent office's line for a decline, or None (the URP): issue 15's
        # offices directory (sibyl.backoffice.offices.Directory.pointer); retrieval knows nothing of it.
        self.office_pointer = office_pointer

    def reply(self, message: str, session_id: str | None = None, channel: str = "web",
              language: str | None = None, external_key: str | None = None,
              on_token: Callable[[str], None] | None = None, language_hint: str | None = None) -> Reply:
        """Answer a message in its conversation and persist both. Raises BadQuestion / UnknownSession.

        `on_token` (streaming channels) gets the model's text as it is written; the Reply is the checked answer.
        `language_hint` is what the channel knows of the person's language (Telegram's language_code, the web
        chat's interface language): used, before the session's earlier language, when the text alone is not
        enough to tell ("cos'è City Lab?"); anything but it/en is ignored.
        """
        question = self.pipeline.clean_question(message)
        hint = language_hint if language_hint in ("it", "en") else None
        opened = self.store.open_session(session_id, channel=channel, external_key=external_key, persist_new=False)
        session, new = opened.session, opened.new
        recent = [] if new else [m for m in self.store.recent_answers(session.id, self.context_turns)
                                 if m.intent in (None, "question")]
        previous = [m.retrieval_query or m.text for m in recent]
        resolved = resolve(question, previous)
        if resolved.followup and self.pipeline.llm is not None:  # LLM mode: the model rewrites the follow-up
            lang = self.pipeline.language_of(question, language or None, hint or session.language)
            resolved.query = self.pipeline.condense(question, [("user", q) for q in previous], lang) or resolved.query
        # A follow-up answers its new focus: the previous answer's bullets are not repeated.
        shown = [line[2:] for line in recent[-1].text.split("\n") if line.startswith("- ")] \
            if resolved.followup and recent else None
        # "e il commercio?" asks what the previous question asked ("quanto ha preso…?"), about a new topic.
        asked = self.store.get_message(recent[-1].reply_to) if resolved.followup and recent and recent[-1].reply_to \
            else None
        answer = self.pipeline.ask(question, language=language or None, filters=resolved.filters,
                                   retrieval_query=resolved.query, fallback_language=hint or session.language,
                                   previous_bullets=shown, on_token=on_token,
                                   previous_question=asked.text if asked is not None else None)
        if self.office_pointer is not None and not answer.answered and answer.intent in ("abstain", "question"):
            pointer = self.office_pointer(question, answer.language)
            if pointer:  # the decline names the competent office after its pointer to the URP
                answer.answer = f"{answer.answer}\n\n{pointer}"
                answer.lead = f"{answer.lead}\n\n{pointer}" if answer.lead else answer.answer
        stored = answer.to_dict()
        _, bot_id = self.store.add_exchange(session.id, channel, question, stored,
                                            new_session=session if new else None)
        record_answer(channel, stored)  # metrics + this request's (or bot update's) log line
        suggested = suggestions_of(answer, self.pipeline.index.records, self._translate())
        return Reply(answer, session.id, bot_id, [s.question for s in suggested],
                     resolved.followup, [s.label for s in suggested], answer_dict=stored)

    def _translate(self) -> Callable[[str], str | None] | None:
        """The reviewed English of an Italian line (area names in English suggestions), if the pipeline has it."""
        store = getattr(self.pipeline, "translations", None)
        return store.current().translate if store is not None else None

    def suggestions_for(self, message_id: str) -> list[str]:
        """The full questions suggested under a stored answer, rebuilt from it (a phone's button carries only a
        short label and its index)."""
        message = self.store.get_message(message_id)
        if message is None or message.role != "assistant":
            return []
        asked = self.store.get_message(message.reply_to) if message.reply_to else None
        rebuilt = SimpleNamespace(question=asked.text if asked else "", language=message.language or "it",
                                  answered=bool(message.answered),
                                  sources=[SimpleNamespace(id=str(s.get("id"))) for s in message.sources or []])
        return [s.question for s in suggestions_of(rebuilt, self.pipeline.index.records, self._translate())]
