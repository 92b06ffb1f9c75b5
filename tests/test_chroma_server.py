"""The index in a real Chroma server (`chroma run`): ingest, query, replicas without local files, re-index, restart."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from prometheus_client import REGISTRY

from retrieval.index import POINTER, POINTER_COLLECTION, IndexStore
from retrieval.pipeline import Pipeline
from retrieval.retriever import Filters
from sibyl.observability import retrieval_hooks
from sibyl.services import build_pipeline
from sibyl.settings import Settings
from tests.deploy_support import REPO, ChromaServer, free_port, sibyl_env

pytestmark = pytest.mark.slow

QUESTION = "Cosa prevede il Comune per la mobilità sostenibile?"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("chroma-server")
    srv = ChromaServer(base / "chroma", base / "chroma.log")
    srv.start()
    yield srv
    srv.stop()


def _settings(data_dir, server, **extra) -> Settings:
    return Settings(data_dir=data_dir, corpus_dir=REPO / "corpus", chroma_url=server.url, _env_file=None, **extra)


@pytest.fixture(scope="module")
def replica_a(server, tmp_path_factory):
    settings = _settings(tmp_path_factory.mktemp("replica-a"), server)
    result = IndexStore(settings).ingest()
    assert result.changed and result.chunks > 50
    return build_pipeline(settings, build_if_missing=False)  # as the app builds it: index metrics hooked in


def test_ingest_puts_index_and_pointer_in_the_server(server, replica_a):
    settings = replica_a.settings
    assert not (settings.index_dir / POINTER).exists(), "the pointer must live in Chroma, not on one replica's disk"
    assert not (settings.index_dir / "chroma").exists(), "no embedded store when a server is configured"
    store = IndexStore(settings)
    names = {c.name for c in store.client.list_collections()}
    manifest = store.current()
    assert {POINTER_COLLECTION, manifest["collection"]} <= names
    vectors = manifest["chunks"] + manifest["english_passages"]  # each passage, plus its English twin if translated
    assert manifest["english_passages"] > 0
    assert store.client.get_collection(manifest["collection"]).count() == vectors


def test_answers_match_the_embedded_index(replica_a, pipeline):
    """Same corpus, same model: the server-backed pipeline answers exactly like the embedded one."""
    served, local = replica_a.ask(QUESTION), pipeline.ask(QUESTION)
    assert served.answered, served.answer
    assert [s["id"] for s in served.to_dict()["sources"]] == [s["id"] for s in local.to_dict()["sources"]]
    assert served.answer == local.answer
    filtered = replica_a.search("obiettivi", k=5, filters=Filters(document="relazione-performance-2023"))
    assert filtered.hits and all(h.record["document"] == "relazione-performance-2023" for h in filtered.hits)


def test_a_replica_without_local_files_rebuilds_from_chroma(server, replica_a, tmp_path):
    settings_b = _settings(tmp_path / "replica-b", server)
    store_b = IndexStore(settings_b)
    assert store_b.current()["generation"] == replica_a.index.manifest["generation"]
    replica_b = Pipeline.open(settings_b, build_if_missing=False)
    assert replica_b.index.records == replica_a.index.records  # same records, same corpus order
    assert list(replica_b.index.records) == list(replica_a.index.records)
    assert replica_b.index.lexical.ids == replica_a.index.lexical.ids
    a, b = replica_a.ask(QUESTION).to_dict(), replica_b.ask(QUESTION).to_dict()
    assert a["sources"] == b["sources"] and a["answer"] == b["answer"]
    # an unchanged corpus is not re-embedded from a replica that never built it
    assert store_b.ingest().changed is False


def test_reindex_from_one_replica_switches_every_replica(server, replica_a, tmp_path):
    settings_b = _settings(tmp_path / "replica-b", server)
    replica_c = Pipeline.open(_settings(tmp_path / "replica-c", server, index_poll_seconds=0.2),
                              build_if_missing=False)
    old = replica_a.index.manifest["generation"]
    ingests = REGISTRY.get_sample_value("sibyl_ingest_duration_seconds_count") or 0
    result = IndexStore(settings_b, hooks=retrieval_hooks()).ingest(force=True)  # the metrics, as services pass them
    assert result.changed and result.generation != old
    manifest = IndexStore(settings_b).current()
    assert result.embedded == 0, "vectors of unchanged chunks are reused from the server"
    assert result.reused == result.chunks + manifest["english_passages"]
    assert REGISTRY.get_sample_value("sibyl_ingest_duration_seconds_count") == ingests + 1
    replica_a.reload()
    assert replica_a.index.manifest["generation"] == result.generation
    assert REGISTRY.get_sample_value("sibyl_index_chunks") == result.chunks
    time.sleep(0.3)  # replica C never calls reload(): it notices the switch while answering
    assert replica_c.ask(QUESTION).answered
    assert replica_c.index.manifest["generation"] == result.generation
    assert replica_a.ask(QUESTION).answered
    collections = {c.name for c in IndexStore(settings_b).client.list_collections()}
    assert f"sibyl_{result.generation}" in collections and f"sibyl_{old}" in collections  # previous kept


def test_server_restart_keeps_the_index(server, replica_a):
    before = replica_a.ask(QUESTION).to_dict()
    server.stop()
    # a fresh chromadb HttpClient turns the refused connection (httpx.ConnectError) into this ValueError
    with pytest.raises(ValueError, match="Could not connect to a Chroma server"):
        IndexStore(replica_a.settings).current()  # an outage is an error, never "no index yet"
    server.restart()
    after = replica_a.ask(QUESTION).to_dict()  # the same client reconnects
    assert after["sources"] == before["sources"] and after["answered"]
    fresh = Pipeline.open(replica_a.settings, build_if_missing=False)
    assert fresh.index.manifest["generation"] == replica_a.index.manifest["generation"]
    assert fresh.ask(QUESTION).to_dict()["sources"] == before["sources"]


def test_cli_against_the_server(server, replica_a, tmp_path):
    env = sibyl_env(SIBYL_CHROMA_URL=server.url, SIBYL_DATA_DIR=str(tmp_path / "cli"))
    out = subprocess.run([sys.executable, "-m", "sibyl", "ask", "--json", QUESTION], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["answered"] is True


def test_unreachable_server_is_a_clear_error(tmp_path):
    env = sibyl_env(SIBYL_CHROMA_URL=f"http://127.0.0.1:{free_port()}", SIBYL_DATA_DIR=str(tmp_path))
    out = subprocess.run([sys.executable, "-m", "sibyl", "search", "mobilità"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 1
    assert "Could not connect to a Chroma server" in out.stderr
    assert "Traceback" not in out.stderr


def test_api_answers_503_while_the_index_server_is_down(server, replica_a):
    """Queried in Chroma (a collection above SIBYL_EXACT_SEARCH_MAX): a clear 503 while the server is down."""
    from fastapi.testclient import TestClient

    from api.app import create_app

    settings = replica_a.settings.model_copy(update={"rate_limit": "", "exact_search_max": 0})
    with TestClient(create_app(settings)) as client:
        assert client.post("/api/chat", json={"message": QUESTION}).status_code == 200
        server.stop()
        try:
            down = client.post("/api/chat", json={"message": "Cosa prevede il DUP per la protezione civile?"})
            assert down.status_code == 503
            assert down.headers["Retry-After"] == "5" and down.json()["code"] == "unavailable"
        finally:
            server.restart()
        assert client.post("/api/chat", json={"message": QUESTION}).status_code == 200


def test_api_keeps_answering_from_its_loaded_vectors_while_the_index_server_is_down(server, replica_a):
    """Scanned in memory (the default for a city's corpus): a Chroma outage does not stop the answers."""
    from fastapi.testclient import TestClient

    from api.app import create_app

    settings = replica_a.settings.model_copy(update={"rate_limit": ""})
    with TestClient(create_app(settings)) as client:
        before = client.post("/api/chat", json={"message": QUESTION})
        assert before.status_code == 200 and before.json()["answered"]
        server.stop()
        try:
            during = client.post("/api/chat", json={"message": "Cosa prevede il DUP per la protezione civile?"})
            assert during.status_code == 200 and during.json()["answered"] and during.json()["sources"]
        finally:
            server.restart()
