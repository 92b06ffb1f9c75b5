"""`sibyl serve`: builds the index on first start, then serves the chat and the API (real uvicorn, loopback)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SMALL_DOC = REPO / "corpus" / "lecce-city4age-municipality.en.txt"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_builds_the_index_on_first_start_and_serves(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(SMALL_DOC, corpus / SMALL_DOC.name)
    data = tmp_path / "data"
    port = free_port()
    env = dict(os.environ, SIBYL_CORPUS_DIR=str(corpus), HF_HUB_OFFLINE="1", SIBYL_RATE_LIMIT="")
    env.pop("SIBYL_DATABASE_URL", None)
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "sibyl", "--data-dir", str(data), "serve", "--port", str(port)],
                                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            assert proc.poll() is None, log_path.read_text()
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "not ready in time:\n" + log_path.read_text()
            time.sleep(0.3)
        assert (data / "index" / "CURRENT.json").exists()
        assert "first start, building the index" in log_path.read_text()
        docs = httpx.get(url + "/api/documents").json()["documents"]
        assert [d["id"] for d in docs] == ["lecce-city4age-municipality"] and docs[0]["language"] == "en"
        page = httpx.get(url + "/")
        assert page.status_code == 200 and "/static/chat.js" in page.text
        r = httpx.post(url + "/api/chat", json={"message": "What is City4Age?"}, timeout=30)
        assert r.status_code == 200 and r.json()["session_id"]
        assert (data / "sibyl.db").exists()  # conversations default to SQLite in the data directory
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_serve_defaults_to_loopback_8000():
    from sibyl.cli import build_parser

    args = build_parser().parse_args(["serve"])
    assert (args.host, args.port, args.workers) == ("127.0.0.1", 8000, None)
