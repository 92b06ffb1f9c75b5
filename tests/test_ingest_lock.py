"""One writer per index: concurrent `sibyl ingest` processes, the fail-fast timeout, the lease in a Chroma server."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from retrieval.index import POINTER, IndexStore
from retrieval.ingest_lock import LEASE_COLLECTION, IngestLock, IngestLocked, LeaseLost
from retrieval.pipeline import Pipeline
from sibyl.settings import Settings
from tests.deploy_support import ChromaServer, sibyl_env

REPO = Path(__file__).resolve().parents[1]
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def _small_corpus(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("lecce-smart-city.it.txt", "city-lab-area-vasta.it.txt", "lecce-city4age-municipality.en.txt",
                 "catalog.toml"):
        shutil.copy(REPO / "corpus" / name, dest / name)
    return dest


def _ingest(data: Path, corpus: Path, *args: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sibyl", "ingest", *args], cwd=data.parent, text=True,
                            env=sibyl_env(SIBYL_DATA_DIR=str(data), SIBYL_CORPUS_DIR=str(corpus), **env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _assert_one_consistent_index(settings: Settings) -> dict:
    """The pointer names an existing generation, search works, and nothing of dead generations is left."""
    store = IndexStore(settings)
    manifest = json.loads((settings.index_dir / POINTER).read_text(encoding="utf-8"))
    collections = {c.name for c in store.client.list_collections()}
    assert manifest["collection"] in collections
    generations = {p.name for p in (settings.index_dir / "generations").iterdir()}
    assert manifest["generation"] in generations
    # the new generation and at most the previous one (servers still loaded with it), as dirs and collections
    assert len(generations) <= 2
    assert {f"sibyl_{g}" for g in generations} == {c for c in collections if c.startswith("sibyl_g")}
    # embedded Chroma keeps one vector folder per live collection; a deleted one's folder must be gone too
    folders = [p for p in (settings.index_dir / "chroma").iterdir() if p.is_dir() and UUID.match(p.name)]
    assert len(folders) <= len(collections)
    hits = Pipeline(settings, store).search("Accordo Quadro firmato nel 2013", k=1).hits
    assert hits and hits[0].record["document"] == "lecce-smart-city"
    return manifest


@pytest.mark.slow
def test_concurrent_force_ingests_leave_one_consistent_index(tmp_path):
    corpus = _small_corpus(tmp_path / "corpus")
    data = tmp_path / "data"
    settings = Settings(data_dir=data, corpus_dir=corpus, _env_file=None)
    seen = set()
    for _ in range(3):
        procs = [_ingest(data, corpus, "--force") for _ in range(2)]
        outputs = [p.communicate(timeout=600) for p in procs]
        for proc, (out, err) in zip(procs, outputs, strict=True):
            assert proc.returncode == 0, err
            assert "index built" in out
        manifest = _assert_one_consistent_index(settings)
        seen.add(manifest["generation"])
    assert len(seen) == 3  # every round switched to a generation of its own


def test_second_ingest_fails_fast_with_a_clear_message(tmp_path):
    corpus = _small_corpus(tmp_path / "corpus")
    data = tmp_path / "data"
    settings = Settings(data_dir=data, corpus_dir=corpus, _env_file=None)
    with IndexStore(settings).lock():  # another ingest is building
        proc = _ingest(data, corpus, SIBYL_INGEST_LOCK_TIMEOUT="0")
        out, err = proc.communicate(timeout=300)
        waited = _ingest(data, corpus, SIBYL_INGEST_LOCK_TIMEOUT="1")
        _, waited_err = waited.communicate(timeout=300)
    assert proc.returncode == 75 and out == ""
    assert err.count("\n") == 1 and err.startswith("sibyl: another ingest is running (pid ")
    assert "SIBYL_INGEST_LOCK_TIMEOUT=0" in err
    assert waited.returncode == 75
    assert waited_err.splitlines()[0].startswith("sibyl: waiting up to 1s for another ingest (pid ")
    assert "after waiting 1s" in waited_err.splitlines()[-1]
    assert not (settings.index_dir / POINTER).exists()  # nothing was built beside the holder


def test_the_lock_is_released_when_its_holder_is_killed(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; "
         "from retrieval.ingest_lock import IngestLock; lock = IngestLock(Path(sys.argv[1]), 0).__enter__(); "
         "print('held', flush=True); time.sleep(600)",
         str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(IngestLocked, match="another ingest is running"), IngestLock(tmp_path, 0):
        pass
    holder.kill()
    holder.wait()
    with IngestLock(tmp_path, 5):  # the kernel dropped the dead holder's lock
        pass


# --- replicas on a Chroma server ----------------------------------------------------------------
@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("chroma-lease")
    srv = ChromaServer(base / "chroma", base / "chroma.log")
    srv.start()
    yield srv
    srv.stop()


def _replica(tmp_path: Path, name: str, server, **extra) -> Settings:
    return Settings(data_dir=tmp_path / name, corpus_dir=_small_corpus(tmp_path / "corpus"),
                    chroma_url=server.url, _env_file=None, **extra)


@pytest.mark.slow
def test_replicas_share_one_lease_in_the_chroma_server(server, tmp_path):
    a = IndexStore(_replica(tmp_path, "a", server))
    b = IndexStore(_replica(tmp_path, "b", server, ingest_lock_timeout=0))
    with a.lock():  # replica A builds; B has its own data dir, so only the lease in the server stops it
        assert LEASE_COLLECTION in {c.name for c in b.client.list_collections()}
        with pytest.raises(IngestLocked, match="lease in the Chroma server"):
            b.ingest()
    assert LEASE_COLLECTION not in {c.name for c in b.client.list_collections()}  # released on exit
    result = b.ingest()
    assert result.changed and b.current()["generation"] == result.generation


@pytest.mark.slow
def test_an_expired_lease_is_taken_over_and_its_holder_cannot_switch(server, tmp_path):
    a = IndexStore(_replica(tmp_path, "a", server))
    b = IndexStore(_replica(tmp_path, "b", server, ingest_lock_timeout=30))
    dead = a.lock().__enter__()  # a replica that stopped renewing (killed, or frozen)
    dead._stop.set()
    dead._lease.modify(metadata={"owner": dead.owner, "expires": time.time() - 1})
    with b.lock() as taker:  # without the takeover this would raise IngestLocked after 30 s
        taker.check()
        with pytest.raises(LeaseLost):
            dead.check()  # the frozen holder finds out before it would switch the pointer
    dead.__exit__(None, None, None)  # does not delete a lease that is not its own


def test_console_jobs_report_progress_and_wait_for_the_lock(tmp_path):
    """The operator console polls the job: embedding progress with an ETA, and 'waiting' while a CLI ingest runs."""
    from sibyl.backoffice.documents import DocumentManager

    corpus = _small_corpus(tmp_path / "corpus")
    settings = Settings(data_dir=tmp_path / "data", corpus_dir=corpus, _env_file=None)
    store = IndexStore(settings)
    store.ingest()
    manager = DocumentManager(Pipeline(settings, store), max_bytes=1_000_000)
    text = "# Avviso\n\nLo sportello URP di via Rubichi osserva un nuovo orario estivo dal primo luglio.\n"
    job = manager.upload("avviso.md", text.encode(), "ada")
    assert manager.wait(600).state == "done", job.message
    progress = job.to_dict()["progress"]
    assert progress["total"] == job.info["chunks"] and progress["done"] == progress["total"]
    assert progress["eta_seconds"] == 0 and progress["eta"] == "0s"

    with store.lock():  # a CLI ingest or another replica is building
        job = manager.reindex("ada")
        deadline = time.monotonic() + 300
        while not job.to_dict()["waiting"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert job.to_dict()["waiting"] and job.state == "running"
    assert manager.wait(600).state == "done", job.message
    assert not job.to_dict()["waiting"]
