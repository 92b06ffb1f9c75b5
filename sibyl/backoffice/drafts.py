"""Reply drafts for URP operators: the grounded answer with numbered sources, laid out for an
e-mail or PEC reply, in plain text and HTML. Wording comes from prompts/operator.{it,en}.toml."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from typing import Any

import prompts
from retrieval.answer import Answer, source_label
from sibyl.backoffice.reports import signature, similar
from sibyl.backoffice.search import HIGH, MEDIUM

LANGUAGES = ("it", "en")


@dataclass
class Draft:
    question: str
    language: str
    answered: bool
    subject: str
    text: str
    html: str
    sources: list[dict]
    confidence: float | None = None  # the answer's evidence score (0..1): how well the sources cover the question
    downvotes: list[Downvote] = field(default_factory=list)  # 👎 citizens gave answers to this question

    @property
    def confidence_pct(self) -> int | None:
        return None if self.confidence is None else round(100 * self.confidence)

    @property
    def confidence_level(self) -> str | None:
        """'high', 'medium' or 'low' on the console's relevance scale (sibyl/backoffice/search.py)."""
        if self.confidence is None:
            return None
        return "high" if self.confidence >= HIGH else "medium" if self.confidence >= MEDIUM else "low"


@dataclass
class Downvote:
    """A 👎 a citizen gave to an answer to the same (or a similarly worded) question."""

    question: str
    comment: str | None
    at: datetime
    reviewed: bool


def downvotes_for(items: list, question: str) -> list[Downvote]:
    """The 👎 feedback (sibyl.backoffice.reports.feedback_items) whose question is worded like this one
    (the unanswered page's grouping: content-word stems), newest first."""
    sig = signature(question)
    return [Downvote(f.question, f.comment, f.created_at, f.reviewed) for f in items
            if f.rating < 0 and f.question and similar(sig, signature(f.question))]


def _body_lines(answer: Answer) -> tuple[str, list[str]]:
    """The answer's lead sentence and its bullet lines (the source list is rebuilt below)."""
    heading = prompts.text(answer.language, "sources_heading")
    lines = answer.answer.split("\n")
    lead = next((line for line in lines if line.strip()), "")
    bullets = []
    for line in lines[1:]:
        if line.strip().startswith(heading):
            break
        if line.strip().startswith("- "):
            bullets.append(line.strip()[2:])
    return lead, bullets


def compose_draft(answer: Answer, language: str) -> Draft:
    """One draft from an Answer already in `language` (ask the pipeline with language=... first)."""
    lang = language if language in LANGUAGES else "it"
    s = prompts.catalog("operator", lang)  # the draft templates live with the console texts
    question = " ".join(answer.question.split())
    subject = prompts.render("operator", lang, "draft_subject", question=_shorten(question, 80))
    greeting, closing, signature = s["draft_greeting"], s["draft_closing"], s["draft_signature"]
    if not answer.answered:
        intro = prompts.render("operator", lang, "draft_not_found", question=question,
                               urp=prompts.text(lang, "urp_contact"))
        text = "\n\n".join([greeting, intro, closing, signature]) + "\n"
        html = "".join(f"<p>{escape(p)}</p>" for p in (greeting, intro, closing)) + \
            f"<p>{escape(signature).replace(chr(10), '<br>')}</p>"
        return Draft(question, lang, False, subject, text, html, [], _confidence(answer))
    lead, bullets = _body_lines(answer)
    intro = prompts.render("operator", lang, "draft_intro", question=question)
    sources: list[dict[str, Any]] = [
        {"n": src.n, "label": source_label(src, lang), "document": src.document, "id": src.id}
        for src in answer.sources
    ]
    heading = s["draft_sources"]
    plain = [greeting, "", intro, lead, ""]
    plain += [f"- {b}" for b in bullets]
    plain += ["", f"{heading}:"]
    plain += [f"[{src['n']}] {src['label']}" for src in sources]
    plain += ["", s["draft_note"], "", closing, signature]
    text = "\n".join(plain).strip() + "\n"
    parts = [f"<p>{escape(greeting)}</p>", f"<p>{escape(intro)} {escape(lead)}</p>", "<ul>"]
    parts += [f"<li>{escape(b)}</li>" for b in bullets]
    parts += ["</ul>", f"<p><strong>{escape(heading)}:</strong></p>", "<ol>"]
    parts += [f'<li value="{src["n"]}">{escape(src["label"])}</li>' for src in sources]
    parts += ["</ol>", f"<p><em>{escape(s['draft_note'])}</em></p>", f"<p>{escape(closing)}</p>",
             f"<p>{escape(signature).replace(chr(10), '<br>')}</p>"]
    return Draft(question, lang, True, subject, text, "\n".join(parts), sources, _confidence(answer))


def _confidence(answer: Answer) -> float | None:
    score = (answer.evidence or {}).get("score")
    return None if score is None else float(score)


def draft_reply(pipeline, question: str, language: str = "it", feedback: list | None = None) -> Draft:
    """Ask the pipeline in the reply's language and lay the grounded answer out as a letter; `feedback`
    (the 👎 items) marks a draft for a question citizens already judged badly answered.
    Raises BadQuestion for empty or too long input."""
    lang = language if language in LANGUAGES else "it"
    draft = compose_draft(pipeline.ask(question, language=lang), lang)
    draft.downvotes = downvotes_for(feedback or [], question)
    return draft


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"
