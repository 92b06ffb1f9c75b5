"""Scale-out for real: two `sibyl serve` processes on different ports, one Chroma server, one database.

A conversation started on replica A continues on replica B; a re-index run elsewhere reaches both;
the Chroma server restarts under them; each replica logs JSON lines and serves /metrics.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy_support import REPO, ChromaServer, free_port, sibyl_env, stop, wait_http

pytestmark = pytest.mark.slow

FIRST = "Cosa fa il Comune per la mobilità?"
FOLLOW_UP = "e per le biciclette?"


class Replica:
    def __init__(self, name: str, env: dict, log) -> None:
        self.name, self.port, self.log = name, free_port(), log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sibyl", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=REPO, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        self.client = httpx.Client(base_url=self.url, timeout=60)

    def chat(self, message: str, session_id: str | None = None) -> dict:
        body = {"message": message} | ({"session_id": session_id} if session_id else {})
        r = self.client.post("/api/chat", json=body)
        assert r.status_code == 200, (self.name, r.status_code, r.text)
        return r.json()

    def ready(self) -> dict:
        r = self.client.get("/readyz")
        assert r.status_code == 200, (self.name, r.text)
        return r.json()

    def metric(self, name: str, **labels) -> float:
        text = self.client.get("/metrics").text
        total = 0.0
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                    total += s.value
        return total

    def json_lines(self) -> list[dict]:
        out = []
        for line in self.log.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("{"):
                out.append(json.loads(line))
        return out


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    base = tmp_path_factory.mktemp("scaleout")
    chroma = ChromaServer(base / "chroma", base / "chroma.log")
    chroma.start()
    common = dict(SIBYL_CHROMA_URL=chroma.url, SIBYL_DATABASE_URL=f"sqlite:///{base / 'shared.db'}",
                  SIBYL_CORPUS_DIR=str(REPO / "corpus"), SIBYL_INDEX_POLL_SECONDS="1", SIBYL_LOG_LEVEL="INFO")
    # the one-shot ingest, as the compose `ingest` service runs it
    ingest = subprocess.run([sys.executable, "-m", "sibyl", "ingest"], cwd=REPO, capture_output=True, text=True,
                            env=sibyl_env(**common, SIBYL_DATA_DIR=str(base / "ingest")), timeout=900)
    assert ingest.returncode == 0, ingest.stderr
    # each replica has its own (empty) data dir: nothing shared but the Chroma server and the database
    replicas = [Replica(n, sibyl_env(**common, SIBYL_DATA_DIR=str(base / n)), base / f"{n}.log") for n in "ab"]
    try:
        for r in replicas:
            wait_http(f"{r.url}/readyz", 300, r.proc, r.log)
        yield {"a": replicas[0], "b": replicas[1], "chroma": chroma, "common": common, "base": base}
    finally:
        for r in replicas:
            r.client.close()
            stop(r.proc)
        chroma.stop()


def test_both_replicas_serve_the_same_generation(cluster):
    a, b = cluster["a"], cluster["b"]
    ra, rb = a.ready(), b.ready()
    assert ra["generation"] == rb["generation"] and ra["chunks"] == rb["chunks"] > 50
    assert not (cluster["base"] / "a" / "index" / "CURRENT.json").exists()


def test_conversation_continues_across_replicas(cluster):
    a, b = cluster["a"], cluster["b"]
    first = a.chat(FIRST)
    assert first["answered"], first["answer"]
    session = first["session_id"]
    follow = b.chat(FOLLOW_UP, session_id=session)
    assert follow["session_id"] == session
    assert follow["followup"] is True, "replica B read the earlier turn that replica A stored"
    assert "mobilit" in (follow["retrieval_query"] or "").lower()
    assert follow["answered"] and follow["sources"]
    fresh = b.chat(FOLLOW_UP)  # the same words without the conversation: no context to carry
    assert fresh["session_id"] != session and not fresh.get("followup")
    third = a.chat("e per i pedoni?", session_id=session)  # and back to A: B's turn is there too
    assert third["session_id"] == session and third["followup"] is True


def test_each_replica_logs_json_and_counts_its_own_answers(cluster):
    a, b = cluster["a"], cluster["b"]
    for replica in (a, b):
        assert replica.metric("sibyl_answers_total", channel="web") >= 1
        assert replica.metric("sibyl_http_requests_total", route="/api/chat", status="200") >= 1
        assert replica.metric("sibyl_index_chunks") > 50
        lines = [e for e in replica.json_lines() if e.get("event") == "http_request" and e["route"] == "/api/chat"]
        assert lines, f"no JSON request line in {replica.name}'s log"
        assert {"latency_ms", "language", "answered", "sources", "status"} <= set(lines[0])
    text = (a.log.read_text() + b.log.read_text())
    assert "biciclette" not in text and "mobilità" not in text  # no message text at INFO by default


def test_reindex_elsewhere_reaches_both_replicas(cluster):
    a, b = cluster["a"], cluster["b"]
    old = a.ready()["generation"]
    base, common = cluster["base"], cluster["common"]
    out = subprocess.run([sys.executable, "-m", "sibyl", "ingest", "--force"], cwd=REPO, capture_output=True,
                         text=True, env=sibyl_env(**common, SIBYL_DATA_DIR=str(base / "ingest")), timeout=900)
    assert out.returncode == 0, out.stderr
    time.sleep(1.2)  # SIBYL_INDEX_POLL_SECONDS=1
    new_a, new_b = a.ready()["generation"], b.ready()["generation"]
    assert new_a == new_b != old
    assert a.chat(FIRST)["answered"] and b.chat(FIRST)["answered"]


def test_chroma_server_restart_under_the_replicas(cluster):
    a, b = cluster["a"], cluster["b"]
    before = a.chat(FIRST)
    cluster["chroma"].restart()
    after_a, after_b = a.chat(FIRST), b.chat(FIRST)
    assert [s["id"] for s in after_a["sources"]] == [s["id"] for s in before["sources"]]
    assert after_b["answered"]
