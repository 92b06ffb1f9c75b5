"""The one pipeline every channel calls: question -> language -> retrieve -> compose -> Answer."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import prompts
from retrieval.answer import Answer, Composer
from retrieval.config import NO_HOOKS, ConfigSource, RetrievalConfig, RetrievalHooks, as_config
from retrieval.embeddings import get_embeddings
from retrieval.evidence import EvidenceScorer
from retrieval.facts import build_facts
from retrieval.glossary import expand
from retrieval.index import IndexStore, LoadedIndex
from retrieval.language import detect_language, warm_language_detector
from retrieval.question import analyse, is_fragment, proper_names, required_focus
from retrieval.retriever import Filters, Hit, HybridRetriever
from retrieval.text import strip_control
from retrieval.translations import TranslationStore

log = logging.getLogger(__name__)
WHO_DEPTH = 3  # extra passages a "who" question looks through for a person named with the role asked


class BadQuestion(ValueError):
    """Empty, too long or otherwise unusable input; the message is safe to show."""


@dataclass
class SearchResult:
    query: str
    language: str
    hits: list[Hit]

    def to_dict(self) -> dict:
        return {
            "query": self.query,
            "language": self.language,
            "results": [
                {"id": h.id, "document": h.record["document"], "title": h.record["title"],
                 "section": h.record["section"], "text": h.record["text"], "score": round(h.score, 5),
                 "metadata": h.record["metadata"]}
                for h in self.hits
            ],
        }


class Pipeline:
    def __init__(self, config: ConfigSource, store: IndexStore | None = None,
                 hooks: RetrievalHooks = NO_HOOKS) -> None:
        """`config`: a RetrievalConfig, or the app's settings (which build one). `settings` keeps what was
        passed, for the channels that read their own fields from it; retrieval reads only `config`."""
        self.settings = config
        self.config: RetrievalConfig = as_config(config)
        self.store = store or IndexStore(self.config, hooks=hooks)
        self.embeddings = get_embeddings(self.config.embedding, self.config.embedding_threads)
        # Reviewed English of the Italian lines (English answers); reloads when an operator approves one.
        data_dir = self.config.data_dir or self.config.index_dir
        self.translations = TranslationStore.under(self.config.corpus_dir, data_dir)
        # ...and the reviewed Italian of the English-only page (Italian answers).
        self.italian = TranslationStore.under(self.config.corpus_dir, data_dir, "it")
        self._lock = threading.Lock()
        self._load(self.store.load())
        self._checked = time.monotonic()
        self.llm = _llm_answerer(self.config)

    @classmethod
    def open(cls, config: ConfigSource, build_if_missing: bool = True, hooks: RetrievalHooks = NO_HOOKS) -> Pipeline:
        store = IndexStore(config, hooks=hooks)
        if store.current() is None:
            if not build_if_missing:
                store.load()  # raises IndexMissing with a clear message
            store.ingest()
        return cls(config, store)

    def _load(self, index: LoadedIndex) -> None:
        scorer = EvidenceScorer(index.records)
        retriever = HybridRetriever(index, self.embeddings, self.config)
        facts = build_facts(index.records)  # tens of milliseconds: rebuilt with each generation, no file
        with self._lock:
            self.index, self.scorer, self.retriever, self.facts = index, scorer, retriever, facts
            self.composer = Composer(scorer, facts, index.records, self.translations, self.italian)

    def reload(self) -> None:
        """Pick up a generation another process (or an upload) switched to."""
        current = self.store.current()
        if current and current["generation"] != self.index.manifest["generation"]:
            self._load(self.store.load())

    def follow_index(self) -> None:
        """With a Chroma server, another replica may switch generations: look every few seconds."""
        interval = self.config.index_poll_seconds
        if not self.store.shared or not interval or time.monotonic() - self._checked < interval:
            return
        self._checked = time.monotonic()
        try:
            self.reload()
        except Exception as exc:  # keep serving the loaded generation; the next request looks again
            log.warning("index check failed, still serving %s: %s", self.index.manifest["generation"], exc)

    # --- input -----------------------------------------------------------------------------
    def clean_question(self, question: str) -> str:
        if not isinstance(question, str):
            raise BadQuestion("the question must be text")
        text = " ".join(strip_control(question).split())
        if not text:
            raise BadQuestion(prompts.text(self.config.default_language, "empty"))
        if len(text) > self.config.max_question_chars:
            raise BadQuestion(prompts.text(self.config.default_language, "too_long",
                                           max=self.config.max_question_chars))
        return text

    def language_of(self, text: str, language: str | None = None, fallback: str | None = None) -> str:
        if language in ("it", "en"):
            return language
        if language:
            raise BadQuestion("language must be 'it' or 'en'")
        return detect_language(text, fallback or self.config.default_language)

    def warm(self) -> None:
        """The first question's one-time costs, paid at start by a server rather than by a citizen: lingua's
        models, the glossary patterns, the embedding engine's first pages."""
        warm_language_detector()
        self.search("Lecce: ZTL e piste ciclabili", k=1)

    # --- search and answer -------------------------------------------------------------------
    def search(self, query: str, k: int | None = None, language: str | None = None,
               filters: Filters | None = None) -> SearchResult:
        query = self.clean_question(query)
        self.follow_index()
        lang = self.language_of(query, language)
        hits = self.retriever.search(query, k=k or self.config.top_k, filters=filters, language=lang)
        return SearchResult(query, lang, hits)

    def intent(self, text: str) -> str:
        patterns = prompts.intents()
        if any(p.search(text) for p in patterns["injection"]):
            return "injection"
        for name in ("thanks", "greeting", "help", "chitchat"):
            if any(p.search(text) for p in patterns[name]):
                return name
        return "question"

    def ask(self, question: str, language: str | None = None, filters: Filters | None = None,
            retrieval_query: str | None = None, fallback_language: str | None = None,
            previous_bullets: list[str] | None = None, on_token: Callable[[str], None] | None = None,
            previous_question: str | None = None) -> Answer:
        """Answer one question. `retrieval_query` lets a channel search with conversation context;
        `previous_bullets` (a follow-up) are not repeated, and `previous_question` frames a follow-up of a few
        words. With a model, `on_token` gets each piece of its text as it arrives (the streaming channel); the
        returned Answer is still the checked one."""
        answer = self.extractive(question, language, filters, retrieval_query, fallback_language, previous_bullets,
                                 previous_question)
        if self.llm is not None and answer.answered:  # an abstention stays an abstention
            answer = self.llm.answer(answer, on_token)
        return answer

    def condense(self, question: str, history: list[tuple[str, str]], language: str) -> str | None:
        """LLM mode: a follow-up rewritten as a standalone question ([(role, text)] history), else None."""
        return self.llm.condense(question, history, language) if self.llm is not None else None

    def extractive(self, question: str, language: str | None = None, filters: Filters | None = None,
                   retrieval_query: str | None = None, fallback_language: str | None = None,
                   previous_bullets: list[str] | None = None, previous_question: str | None = None) -> Answer:
        question = self.clean_question(question)
        self.follow_index()
        lang = self.language_of(question, language, fallback_language)
        kind = self.intent(question)
        if kind != "question":
            return self._canned(question, lang, kind)
        query = retrieval_query or question
        expansion = expand(query)
        analysis = analyse(question)
        if previous_question and is_fragment(question):
            analysis = analysis.following(previous_question)
        # "who is the mayor?": the passage naming a person with the role may rank below the general pages.
        depth = self.config.top_k + (WHO_DEPTH if analysis.has("who") else 0)
        hits = self.retriever.search(query, k=depth, filters=filters, expansion=expansion, language=lang)
        top_dense = max((h.dense for h in hits), default=0.0)
        # The question's focus must be in the evidence: a desk-service request or a name the
        # documents never use is declined even when generic words match well.
        glossary_words = {w.casefold() for term in expansion.matched for w in term.split()}
        required = required_focus(question, lang) + [
            name for name in proper_names(question)
            if not self.scorer.known(name.lower(), lang) and name.casefold() not in glossary_words]
        evidence = self.scorer.score(query, [h.id for h in hits], top_dense, expansion, required, lang)
        if hits and not evidence.uncovered and evidence.score < self.config.abstain_threshold:
            # About to decline: look once more, for the passages holding a specific word of the question
            # that the best ones lack ("che cos'è il progetto City4Age?" against an English-only page).
            again = self.retriever.search(query, k=depth, filters=filters, expansion=expansion, language=lang,
                                          rescue=True)
            if [h.id for h in again] != [h.id for h in hits]:
                top_again = max((h.dense for h in again), default=0.0)
                retry = self.scorer.score(query, [h.id for h in again], top_again, expansion, required, lang)
                if retry.score >= self.config.abstain_threshold and not retry.uncovered:
                    hits, evidence = again, retry
        if not hits or evidence.uncovered or evidence.score < self.config.abstain_threshold:
            answer = self._canned(question, lang, "abstain")
            if hits and evidence.uncovered:
                answer.answer = prompts.text(lang, "abstain_focus", focus=evidence.uncovered[0],
                                             urp=prompts.text(lang, "urp_contact"))
                answer.lead = answer.answer
            answer.evidence = {"score": evidence.score, "coverage": evidence.coverage, "dense": evidence.dense,
                               "uncovered": evidence.uncovered}
            answer.retrieval_query = query if query != question else None
            return answer
        answer = self.composer.compose(question, lang, hits, list(expansion.terms), evidence, analysis,
                                       previous_bullets)
        answer.retrieval_query = query if query != question else None
        return answer

    def _canned(self, question: str, lang: str, kind: str) -> Answer:
        urp = prompts.text(lang, "urp_contact")
        example = prompts.text(lang, "example")
        # Small talk ("ciao", "grazie!", "👍") gets a line of small talk, not the introduction or "not found".
        key = {"greeting": "smalltalk_hello", "thanks": "smalltalk_thanks", "help": "help",
               "chitchat": "out_of_scope", "injection": "injection", "abstain": "abstain"}[kind]
        templated = "{" in prompts.messages(lang)[key]
        body = prompts.text(lang, key, urp=urp, example=example) if templated else prompts.text(lang, key)
        return Answer(question, lang, False, body, [], intent=kind, lead=body)


def _llm_answerer(config: RetrievalConfig):
    """The model is optional: its LangChain packages are imported only when SIBYL_LLM names one."""
    if config.llm == "none":
        return None
    from retrieval.llm import LLMAnswerer

    return LLMAnswerer.from_settings(config)
