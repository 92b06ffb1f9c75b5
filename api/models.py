"""Request and response bodies of the HTTP API (they are the OpenAPI schema at /docs)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator

# A hard cap before the pipeline's own (configurable, default 2,000 characters) limit: a 10 MB
# "message" is rejected by validation instead of being normalised first.
MAX_BODY_CHARS = 20_000

Language = Literal["it", "en"]
SessionId = Annotated[StrictStr, Field(min_length=1, max_length=64, examples=["3f2b9c1e0a..."])]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChatRequest(Strict):
    message: StrictStr = Field(max_length=MAX_BODY_CHARS, examples=["Cosa fa il Comune per la mobilità?"])
    session_id: SessionId | None = Field(None, description="Omit to start a new conversation.")
    language: Language | None = Field(None, description="Answer language; default: detected from the message.")
    language_hint: Language | None = Field(None, description="The client's interface language: the answer's "
                                           "language when the message is too short to tell (a name alone).")


class SearchFilters(Strict):
    document: StrictStr | None = Field(None, max_length=200, examples=["dup-2025-2027-obiettivi-strategici"])
    area: StrictInt | None = Field(None, ge=0, le=1000, description="DUP / report area number.")
    year: StrictInt | None = Field(None, ge=1900, le=2100, description="Only passages covering this year.")


class SearchRequest(Strict):
    query: StrictStr = Field(max_length=MAX_BODY_CHARS, examples=["piste ciclabili"])
    k: StrictInt | None = Field(None, ge=1, le=50)
    language: Language | None = None
    filters: SearchFilters | None = None


class FeedbackRequest(Strict):
    session_id: SessionId
    message_id: Annotated[StrictStr, Field(min_length=1, max_length=64)]
    rating: Literal[1, -1] = Field(description="1 = useful, -1 = not useful.")
    comment: StrictStr | None = Field(None, max_length=2000)

    @field_validator("rating", mode="before")
    @classmethod
    def _strict_rating(cls, value):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("rating must be the number 1 or -1")
        return value


class Open(BaseModel):
    """Responses keep fields added by later features (e.g. an LLM mode) instead of dropping them."""

    model_config = ConfigDict(extra="allow")


class SourceOut(Open):
    n: int
    id: str
    document: str
    title: str
    section: str
    text: str
    score: float


class BulletOut(Open):
    text: str
    source: int = Field(description="The [n] of the source this bullet cites.")
    language: str
    kind: str = Field(description="planned (DUP, years), done (2023 report, % realised) or info.")
    years: list[int] = []
    realised: float | None = None


class StructuredAnswer(Open):
    """The answer's parts; `answer` is rendered from them (lead, bullets, sources)."""
    lead: str
    bullets: list[BulletOut]
    sources: list[dict]
    mode: str
    notes: list[str] = Field([], description="What was computed rather than quoted (a rank, a count).")


class ChatResponse(Open):
    question: str
    language: Language
    answered: bool = Field(description="False: the documents do not answer; the text points to the URP.")
    answer: str
    sources: list[SourceOut]
    mode: str
    intent: str
    evidence: dict | None = None
    retrieval_query: str | None = None
    structured: StructuredAnswer | None = None
    session_id: str
    message_id: str
    suggestions: list[str]
    followup: bool = False


class SearchHit(Open):
    id: str
    document: str
    title: str
    section: str
    text: str
    score: float
    metadata: dict


class SearchResponse(Open):
    query: str
    language: Language
    results: list[SearchHit]


class FeedbackResponse(BaseModel):
    id: int
    stored: bool = True


class DocumentOut(BaseModel):
    id: str
    title: str
    language: str
    chunks: int
    source_file: str | None = None
    ingested_at: str | None = Field(None, description="When the index generation holding it was built.")


class DocumentsResponse(BaseModel):
    generation: str
    documents: list[DocumentOut]


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    generation: str | None = None
    chunks: int | None = None
    detail: str | None = None
    telegram: dict | None = Field(None, description="Webhook mode only: registering, retrying (with the last "
                                                    "error) or registered; the web chat is ready either way.")


class ErrorResponse(BaseModel):
    detail: str = Field(description="What was wrong, in a sentence.")
    code: str = Field(description="Machine-readable: invalid_json, validation_error, bad_question, unknown_session...")
    errors: list[dict] | None = Field(None, description="Per-field problems for validation errors (the first 10).")
    errors_total: int | None = Field(None, description="How many problems the validation found in all.")
