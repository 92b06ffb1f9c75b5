"""One conversation service for every channel: session, follow-up context, answer, storage."""

from __future__ import annotations

from retrieval.followup import resolve
from retrieval.pipeline import Pipeline
from retrieval.suggestions import suggest
from sibyl.observability import record_answer
from sibyl.store import Store, UnknownSession  # noqa: F401  (re-exported for the channels)


class ConversationService:
    def __init__(self, pipeline: Pipeline, store: Store) -> None:
        self.pipeline = pipeline
        self.store = store

    def reply(self, message: str, session_id: str | None = None, channel: str = "web",
              language: str | None = None, external_key: str | None = None) -> dict:
        """Answer a message in its conversation and persist both. Raises BadQuestion / UnknownSession."""
        question = self.pipeline.clean_question(message)
        opened = self.store.open_session(session_id, channel=channel, external_key=external_key, persist_new=False)
        session, new = opened.session, opened.new
        recent = [] if new else [m for m in self.store.recent_answers(session.id, self.pipeline.settings.context_turns)
                                 if m.intent in (None, "question")]
        previous = [m.retrieval_query or m.text for m in recent]
        resolved = resolve(question, previous)
        if resolved.followup and self.pipeline.llm is not None:  # LLM mode: the model rewrites the follow-up
            lang = self.pipeline.language_of(question, language or None, session.language)
            resolved.query = self.pipeline.condense(question, [("user", q) for q in previous], lang) or resolved.query
        # A follow-up answers its new focus: the previous answer's bullets are not repeated.
        shown = [line[2:] for line in recent[-1].text.split("\n") if line.startswith("- ")] \
            if resolved.followup and recent else None
        answer = self.pipeline.ask(question, language=language or None, filters=resolved.filters,
                                   retrieval_query=resolved.query, fallback_language=session.language,
                                   previous_bullets=shown)
        payload = answer.to_dict()
        _, bot_message = self.store.add_exchange(session.id, channel, question, payload,
                                                 new_session=session if new else None)
        record_answer(channel, payload)  # metrics + this request's (or bot update's) log line
        payload["session_id"] = session.id
        payload["message_id"] = bot_message.id
        payload["suggestions"] = suggest(answer, self.pipeline.index.records)
        payload["followup"] = resolved.followup
        return payload
