"""Optional language-model answers over the same sources as the extractive answer.

The extractive answer is always composed first; the model only rewrites it fluently in the asker's
language from the numbered passages. Every reply is checked (retrieval.grounding) and any failure,
timeout or connection error returns the extractive answer instead, with the reason logged.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_core.prompts import ChatPromptTemplate

import prompts
from retrieval import support
from retrieval.answer import Answer, source_label
from retrieval.config import ConfigSource, RetrievalConfig, as_config
from retrieval.grounding import GroundingResult, check
from retrieval.support import Passage, SupportChecker, SupportReport

log = logging.getLogger(__name__)


def _openai(model: str, s: RetrievalConfig) -> BaseChatModel:
    from langchain_openai import ChatOpenAI

    key = s.llm_api_key or "no-key"  # local servers take any key
    # The cap goes as `max_tokens`, which every OpenAI-compatible server reads (ChatOpenAI's own
    # field is sent as `max_completion_tokens`, which llama-cpp-python's server ignores).
    return ChatOpenAI(model=model, base_url=s.llm_base_url, api_key=key, timeout=s.llm_timeout, max_retries=0,
                      temperature=s.llm_temperature, extra_body={"max_tokens": s.llm_max_tokens})


def _ollama(model: str, s: RetrievalConfig) -> BaseChatModel:
    from langchain_ollama import ChatOllama

    return ChatOllama(model=model, base_url=s.llm_base_url, num_predict=s.llm_max_tokens,
                      temperature=s.llm_temperature, client_kwargs={"timeout": s.llm_timeout})


# Adding a provider: one factory here plus its LangChain integration package.
PROVIDERS: dict[str, Callable[[str, RetrievalConfig], BaseChatModel]] = {"openai": _openai, "ollama": _ollama}


class LLMConfigError(ValueError):
    """SIBYL_LLM names a provider this build does not know."""


def build_chat_model(source: ConfigSource) -> BaseChatModel | None:
    settings = as_config(source)
    if settings.llm == "none":
        return None
    provider, _, model = settings.llm.partition(":")
    if provider not in PROVIDERS:
        raise LLMConfigError(f"unknown LLM provider '{provider}' in SIBYL_LLM (known: {', '.join(PROVIDERS)})")
    return PROVIDERS[provider](model.strip(), settings)


def templates(language: str) -> dict[str, str]:
    return prompts.catalog("llm", language)


def instructions(language: str) -> str:
    """The prompts' own wording (placeholders blanked): an answer must not repeat it."""
    t = templates(language)
    text = "\n".join(t[k] for k in ("system", "answer", "context", "condense"))
    return re.sub(r"\{\w+\}", " ", text)


_TAGS = re.compile(r"<\s*/?\s*(?:source|fonte|question|domanda|conversation|conversazione)\b", re.I)


def fence(text: str) -> str:
    """Text placed inside a delimited block cannot open or close one (a passage saying '</fonte>')."""
    return _TAGS.sub(lambda m: m.group(0).replace("<", "‹"), text)


def passage(text: str) -> str:
    """A source as the model sees it: fenced, and lines that read as orders to an assistant
    (the same patterns that stop such a user message) withheld, so a tampered document cannot steer it."""
    patterns = prompts.intents()["injection"]
    lines = []
    for line in text.split("\n"):
        if any(p.search(line) for p in patterns):
            log.warning("source line withheld from the model (reads as an instruction): %.80s", line)
            line = "[…]"
        lines.append(line)
    return fence("\n".join(lines))


class LLMTimeout(TimeoutError):
    pass


@dataclass
class Outcome:
    """One model attempt: the answer shown, the raw model text and why it fell back (if it did)."""

    answer: Answer
    text: str
    reason: str | None
    seconds: float
    check: GroundingResult | None = None
    support: SupportReport | None = None


def fixed_phrases(language: str) -> list[str]:
    """Texts from prompts/ a sentence may repeat without a citation: the leads, the URP pointer, the
    abstention and the model's own "I don't know, ask the URP" rule."""
    system = templates(language)["system"]
    rule = next((line for line in system.splitlines() if "URP" in line or "{urp}" in line), "")
    urp = prompts.text(language, "urp_contact")
    return [prompts.text(language, "lead"), prompts.text(language, "lead_single"), urp, rule.replace("{urp}", urp),
            *(prompts.text(language, key, urp=urp) for key in ("abstain", "out_of_scope", "injection"))]


class LLMAnswerer:
    # One support checker per (embedding backend, answer language) and process: the analysed and
    # embedded source lines are cached there, so they are shared by every answerer.
    _checkers: dict[tuple[str, str], SupportChecker] = {}

    def __init__(self, model: BaseChatModel, config: ConfigSource) -> None:
        self.model = model
        self.settings: RetrievalConfig = as_config(config)
        self.log_messages = self.settings.log_messages

    def checker(self, language: str) -> SupportChecker:
        """The sentence support check for one answer language (e5 from the configured embedding backend)."""
        key = (self.settings.embedding, language)
        if key not in self._checkers:
            from retrieval.embeddings import get_embeddings

            embeddings = get_embeddings(self.settings.embedding, self.settings.embedding_threads)
            checker = SupportChecker(embeddings, support.default_translator(), fixed_phrases(language))
            same_model = [c for (spec, _), c in self._checkers.items() if spec == key[0]]
            if same_model:
                checker._cache = same_model[0]._cache  # passages analysed once, whatever the answer language
            self._checkers[key] = checker
        return self._checkers[key]

    @classmethod
    def from_settings(cls, settings: ConfigSource) -> LLMAnswerer | None:
        model = build_chat_model(settings)
        return cls(model, settings) if model is not None else None

    # --- prompts -------------------------------------------------------------------------
    def messages(self, extractive: Answer) -> list[BaseMessage]:
        """System rules + the question and the numbered passages the extractive answer cites."""
        lang = extractive.language
        t = templates(lang)
        sources = "\n\n".join(
            t["source"].format(n=s.n, title=fence(s.title).replace('"', "'"),
                               section=fence(s.section).replace('"', "'"), text=passage(s.text))
            for s in extractive.sources)
        standalone = extractive.retrieval_query
        context = t["context"].format(standalone=fence(standalone)) if standalone else ""
        prompt = ChatPromptTemplate.from_messages([("system", t["system"]), ("human", t["answer"])])
        return prompt.format_messages(urp=prompts.text(lang, "urp_contact"), sources=sources,
                                      question=fence(extractive.question), context=context)

    def condense_messages(self, question: str, history: list[tuple[str, str]], language: str) -> list[BaseMessage]:
        t = templates(language)
        lines = [t["history_user" if role == "user" else "history_assistant"].format(text=fence(text))
                 for role, text in history]
        prompt = ChatPromptTemplate.from_messages([("human", t["condense"])])
        return prompt.format_messages(history="\n".join(lines), question=fence(question))

    # --- answering -------------------------------------------------------------------------
    def stream(self, extractive: Answer) -> Iterator[str | Outcome]:
        """Model tokens as they arrive, then the checked Outcome (LLM answer or extractive fallback)."""
        started = time.monotonic()
        parts: list[str] = []
        try:
            for chunk in self.model.stream(self.messages(extractive)):
                if time.monotonic() - started > self.settings.llm_timeout:
                    raise LLMTimeout(f"no complete reply within {self.settings.llm_timeout:g} s")
                token = str(chunk.text)
                if token:
                    parts.append(token)
                    yield token
        except Exception as exc:  # timeout, connection refused, HTTP error, malformed reply
            yield self._fallback(extractive, "".join(parts), f"{type(exc).__name__}: {exc}", started)
            return
        yield self.finish(extractive, "".join(parts), started)

    def attempt(self, extractive: Answer, on_token: Callable[[str], None] | None = None) -> Outcome:
        """The one way a model answers: its tokens go to `on_token` as they arrive (the streaming channel),
        and the checked Outcome is returned."""
        outcome = None
        for item in self.stream(extractive):
            if isinstance(item, Outcome):
                outcome = item
            elif on_token is not None:
                on_token(item)
        assert outcome is not None
        return outcome

    def answer(self, extractive: Answer, on_token: Callable[[str], None] | None = None) -> Answer:
        return self.attempt(extractive, on_token).answer

    def finish(self, extractive: Answer, text: str, started: float) -> Outcome:
        text = _clean(text)
        question = " ".join(filter(None, [extractive.question, extractive.retrieval_query]))
        result = check(text, {s.n: s.text for s in extractive.sources}, question, extractive.language,
                       instructions(extractive.language))
        if not result.ok:
            return self._fallback(extractive, text, f"grounding check failed: {result.reason}", started, result)
        passages = [Passage(s.n, s.id, s.text, s.metadata.get("language", "it")) for s in extractive.sources]
        report = self.checker(extractive.language).check(text, passages, question)
        evidence = {**(extractive.evidence or {}), "support": report.to_dict()}
        dropped = report.unsupported
        shown, mode = text, "llm"
        if dropped:
            still = report.points_to_urp if result.declined else report.answers
            self._log_dropped(report, "trimmed" if still else "extractive")
            support.notify(len(dropped), extractive.language, "trimmed" if still else "extractive")
            if not still:
                return self._fallback(replace(extractive, evidence=evidence), text,
                                      f"unsupported sentences: {len(dropped)} of {len(report.sentences)}",
                                      started, result, report)
            shown, mode = report.kept_text(), "llm-trimmed"
        if result.declined:
            answer = replace(extractive, answered=False, answer=shown, sources=[], mode=mode, evidence=evidence)
        else:
            footer = [prompts.text(extractive.language, "sources_heading") + ":"]
            footer += [f"[{s.n}] {source_label(s, extractive.language)}" for s in extractive.sources]
            answer = replace(extractive, answer=shown + "\n\n" + "\n".join(footer), mode=mode, evidence=evidence)
        seconds = time.monotonic() - started
        log.info("llm answer accepted in %.2f s (cited %s%s, %s)", seconds, sorted(set(result.cited)),
                 ", declined" if result.declined else "", mode)
        return Outcome(answer, text, None, seconds, result, report)

    def _log_dropped(self, report: SupportReport, outcome: str) -> None:
        """Which sentences failed and why; their words only when message logging is on (SIBYL_LOG_MESSAGES)."""
        dropped = report.unsupported
        log.warning("llm answer: %d of %d sentences unsupported (%s), %s", len(dropped), len(report.sentences),
                    ", ".join(sorted({s.reason or "?" for s in dropped})),
                    "dropped" if outcome == "trimmed" else "extractive answer shown")
        if self.log_messages:
            for s in dropped:
                log.warning("unsupported sentence (%s, coverage %s, similarity %s): %s", s.reason, s.coverage,
                            s.similarity, s.text)

    def _fallback(self, extractive: Answer, text: str, reason: str, started: float,
                  result: GroundingResult | None = None, report: SupportReport | None = None) -> Outcome:
        log.warning("llm answer replaced by the extractive answer: %s", reason)
        return Outcome(replace(extractive, mode="extractive"), text, reason, time.monotonic() - started, result,
                       report)

    # --- follow-ups ------------------------------------------------------------------------
    def condense(self, question: str, history: list[tuple[str, str]], language: str) -> str | None:
        """A standalone form of a follow-up, or None (then the rule-based resolution stands)."""
        if not history:
            return None
        try:
            reply = self.model.invoke(self.condense_messages(question, history, language))
        except Exception as exc:
            log.warning("llm condense failed, keeping the rule-based follow-up: %s: %s", type(exc).__name__, exc)
            return None
        lines = [line for line in _clean(reply.text).splitlines() if line.strip()]
        if not lines:
            return None
        text = re.sub(r"^(domanda autonoma|standalone question)\s*:\s*", "", lines[0].strip(), flags=re.I)
        text = text.strip(" \"'«»“”")
        if len(text) < 3 or len(text) > self.settings.max_question_chars:
            return None
        return text


def _clean(text: str) -> str:
    """Strip whitespace and a reasoning block some local models emit before the answer."""
    return re.sub(r"<think>.*?</think>", "", text, flags=re.S).strip()
