"""Test doubles at the seam the composition root offers: `build_services(settings, pipeline=FakePipeline())`
runs the real API, store and conversation service (and the bot) without an index, so channel tests can
sit in the unit tier. The fake answers from a fixed table with the real Answer type, so every channel
renders it the real way."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from retrieval.answer import Answer, Bullet, Source
from retrieval.pipeline import BadQuestion, SearchResult
from retrieval.retriever import Filters, Hit

DOCUMENT = "fake-dup"
RECORD = {"id": "fake-1", "document": DOCUMENT, "title": "Documento di prova", "section": "Area 1 › Mobilità",
          "text": "Documento di prova\nArea 1 › Mobilità\n- Piste ciclabili nel centro storico",
          "language": "it", "metadata": {"document": DOCUMENT, "language": "it"}}


@dataclass
class FakePipeline:
    """The Pipeline interface the channels use (clean_question, language_of, ask, search, condense,
    index, llm), answering any question about 'bici'/'bike' from one passage and abstaining otherwise."""

    settings: object | None = None  # the app's settings, passed through as Pipeline does (the back office reads it)
    max_question_chars: int = 2000
    asked: list[str] = field(default_factory=list)
    llm: object | None = None
    tokens: list[str] = field(default_factory=list)  # streamed to on_token before the answer, as a model would

    def __post_init__(self) -> None:
        self.index = _FakeIndex()

    def clean_question(self, question: str) -> str:
        if not isinstance(question, str):
            raise BadQuestion("the question must be text")
        text = " ".join(question.split())
        if not text:
            raise BadQuestion("La domanda è vuota.")
        if len(text) > self.max_question_chars:
            raise BadQuestion("La domanda è troppo lunga.")
        return text

    def language_of(self, text: str, language: str | None = None, fallback: str | None = None) -> str:
        if language in ("it", "en"):
            return language
        if language:
            raise BadQuestion("language must be 'it' or 'en'")
        english = any(w in text.lower().split() for w in ("what", "the", "does", "bike", "how"))
        return "en" if english else (fallback or "it")

    def ask(self, question: str, language: str | None = None, filters: Filters | None = None,
            retrieval_query: str | None = None, fallback_language: str | None = None,
            previous_bullets: list[str] | None = None, on_token: Callable[[str], None] | None = None,
            previous_question: str | None = None) -> Answer:
        question = self.clean_question(question)
        self.asked.append(question)
        lang = self.language_of(question, language, fallback_language)
        for token in self.tokens:
            if on_token is not None:
                on_token(token)
        if not any(w in (retrieval_query or question).lower() for w in ("bici", "bike", "cicl")):
            body = "Non trovo la risposta nei documenti: rivolgiti all'URP." if lang == "it" else \
                "The documents do not answer this: ask the URP."
            return Answer(question, lang, False, body, [], intent="question", lead=body)
        source = Source(1, RECORD["id"], DOCUMENT, RECORD["title"], RECORD["section"], RECORD["text"], 1.0,
                        dict(RECORD["metadata"]))
        lead = "Il Comune realizza piste ciclabili." if lang == "it" else "The City builds cycle lanes."
        bullet = Bullet("Piste ciclabili nel centro storico", 1, "it")
        text = f"{lead}\n\n- {bullet.text} [1]\n\nFonti:\n[1] {RECORD['title']} › {RECORD['section']}"
        return Answer(question, lang, True, text, [source], lead=lead, bullets=[bullet])

    def search(self, query: str, k: int | None = None, language: str | None = None,
               filters: Filters | None = None) -> SearchResult:
        query = self.clean_question(query)
        hit = Hit(RECORD["id"], RECORD, 1.0, 1.0, 1.0, 0, 0)
        return SearchResult(query, self.language_of(query, language), [hit])

    def condense(self, question: str, history: list[tuple[str, str]], language: str) -> str | None:
        return None


class _FakeIndex:
    records = {RECORD["id"]: RECORD}
    manifest = {"generation": "fake-generation", "chunks": 1, "built_at": "2026-01-01T00:00:00+0000",
                "documents": {DOCUMENT: {"id": DOCUMENT, "title": RECORD["title"], "language": "it", "chunks": 1}}}


def streamed(pipeline, question: str, **kwargs) -> list:
    """What a streaming channel gets from one ask: the model's tokens as they came, then the checked Answer."""
    tokens: list = []
    answer = pipeline.ask(question, on_token=tokens.append, **kwargs)
    return [*tokens, answer]
