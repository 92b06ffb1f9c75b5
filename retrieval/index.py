"""The index: a Chroma collection (dense) and a BM25 index (lexical), built as one generation.

Ingest writes a new generation beside the current one and switches a pointer file only when
everything is written, so a crash mid-ingest leaves the previous index serving. Unchanged
chunks (same content hash, same embedding model) reuse their stored vectors, and so do the
batches an interrupted ingest already wrote into its half-built collection: a re-run after a
kill embeds only what is missing. One ingest at a time (retrieval/ingest_lock.py); after the
switch only the new generation and the previous one (still loaded by servers that have not
reloaded yet) are kept.

English passages (issue 14): an Italian passage with a complete approved translation
(retrieval/translations.py) gets a second vector in the same collection, id ``<passage>#en``
(reused by content hash like the others), and a second BM25 index (``bm25_en``: every passage plus the
English twins, each stemmed in its language, so English documents and twins share one vocabulary);
its record carries the English as ``record["en"]``. The translations are part of the digest, so an
approved line rebuilds the generation on the next ingest.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import sqlite3
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import closing, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import chromadb
import numpy as np
from chromadb.config import Settings as ChromaSettings
from chromadb.errors import NotFoundError

from retrieval.chunks import Chunk, body_lines, is_prose
from retrieval.config import NO_HOOKS, ConfigSource, RetrievalConfig, RetrievalHooks, as_config
from retrieval.corpus import load_corpus
from retrieval.embeddings import embedding_id, get_embeddings
from retrieval.glossary import glossary_dense_terms
from retrieval.ingest_lock import IngestLock
from retrieval.language import detect_language
from retrieval.lexical import LexicalIndex
from retrieval.progress import ProgressFn, quiet_libraries
from retrieval.translations import Translations, TranslationStore

log = logging.getLogger(__name__)
quiet_libraries()  # after bm25s's import, which sets its logger to DEBUG

POINTER = "CURRENT.json"
POINTER_COLLECTION = "sibyl_pointer"  # with a Chroma server: the pointer every replica reads
GENERATION_PREFIX = "sibyl_g"
EN_SUFFIX = "#en"  # the id of a passage's English vector: <passage id>#en
BATCH = 32  # chunks embedded and persisted at a time: what a killed ingest can lose
PAGE = 500


class IndexMissing(RuntimeError):
    """No index has been built yet in this data directory."""


@dataclass
class IngestResult:
    generation: str
    changed: bool
    chunks: int
    embedded: int
    reused: int
    seconds: float
    documents: dict[str, dict] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def chroma_client(source: ConfigSource):
    config = as_config(source)
    if config.chroma_url:
        url = urlsplit(config.chroma_url)
        if url.hostname is None:
            raise ValueError(f"chroma_url has no host: {config.chroma_url!r}")
        token = config.chroma_token or ""
        return chromadb.HttpClient(
            host=url.hostname, port=url.port or (443 if url.scheme == "https" else 80), ssl=url.scheme == "https",
            headers={"Authorization": f"Bearer {token}"} if token else None,
            settings=ChromaSettings(anonymized_telemetry=False),
        )
    path = config.index_dir / "chroma"
    path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(path), settings=ChromaSettings(anonymized_telemetry=False))


class IndexStore:
    def __init__(self, config: ConfigSource, client=None, hooks: RetrievalHooks = NO_HOOKS) -> None:
        self.config: RetrievalConfig = as_config(config)
        self.root = self.config.index_dir
        self._client = client
        self.hooks = hooks

    @property
    def client(self):
        if self._client is None:
            self._client = chroma_client(self.config)
        return self._client

    @property
    def shared(self) -> bool:
        """With a Chroma server, replicas on other machines must agree on the generation: the pointer lives there."""
        return bool(self.config.chroma_url)

    # --- pointer -------------------------------------------------------------------------
    def current(self) -> dict | None:
        if self.shared:
            try:
                pointer = self.client.get_collection(POINTER_COLLECTION)
            except NotFoundError:
                return None
            raw = (pointer.metadata or {}).get("manifest")
            return json.loads(raw) if raw else None
        path = self.root / POINTER
        if not path.exists():
            return None
        return json.loads(path.read_text(encoding="utf-8"))

    def _switch(self, manifest: dict) -> None:
        if self.shared:  # one metadata update on the server: atomic for every reader
            pointer = self.client.get_or_create_collection(POINTER_COLLECTION, embedding_function=None)
            pointer.modify(metadata={"manifest": json.dumps(manifest, ensure_ascii=False)})
            return
        tmp = self.root / f".{POINTER}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
        os.replace(tmp, self.root / POINTER)

    def generation_dir(self, generation: str) -> Path:
        return self.root / "generations" / generation

    # --- build ---------------------------------------------------------------------------
    def lock(self, on_wait=None, timeout: float | None = None) -> IngestLock:
        """The one-writer lock of this index (file lock; plus a lease in the server when shared)."""
        self.root.mkdir(parents=True, exist_ok=True)
        return IngestLock(self.root, self.config.ingest_lock_timeout if timeout is None else timeout,
                          client=self.client if self.shared else None,
                          lease_seconds=self.config.ingest_lease_seconds, on_wait=on_wait)

    def ingest(self, corpus_dir: Path | None = None, force: bool = False, progress: ProgressFn | None = None,
               on_wait=None) -> IngestResult:
        """Build a generation if the corpus changed (or `force`): waits for, or fails on, a running ingest.

        `progress(done, total)` is called as embedded batches are persisted; `on_wait(message)` once
        if another ingest holds the lock. Raises IngestLocked when the lock timeout runs out.
        """
        with self.lock(on_wait) as lock:
            if progress is not None:
                progress(0, 0)  # the lock is ours: no longer waiting, nothing embedded yet
            return self._ingest(Path(corpus_dir or self.config.corpus_dir), force, progress, lock)

    def _ingest(self, corpus_dir: Path, force: bool, progress: ProgressFn | None, lock: IngestLock) -> IngestResult:
        started = time.perf_counter()
        fallback = self.config.default_language
        corpus = load_corpus(corpus_dir, detect_language=lambda text: detect_language(text, fallback))
        if not corpus.chunks:
            raise ValueError(f"no readable documents in {corpus_dir}")
        model_id = embedding_id(self.config.embedding)
        english = english_chunks(corpus.chunks, self._translations(corpus_dir))
        digest = corpus_digest(corpus.chunks, model_id, english)
        current = self.current()
        if current and not force and current.get("digest") == digest and self._collection_exists(current):
            return IngestResult(current["generation"], False, len(corpus.chunks), 0, 0,
                                time.perf_counter() - started, corpus.documents, corpus.skipped)

        generation = time.strftime("g%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
        gen_dir = self.generation_dir(generation)
        gen_dir.mkdir(parents=True)
        collection = self.client.create_collection(
            f"sibyl_{generation}", metadata={"hnsw:space": "cosine", "embedding": model_id}, embedding_function=None
        )
        every = corpus.chunks + english
        reused_vectors = self._reusable_vectors(current, model_id, every)
        order = {c.id: i for i, c in enumerate(every)}
        reused = [c for c in every if c.id in reused_vectors]
        for start in range(0, len(reused), BATCH):
            batch = reused[start : start + BATCH]
            _add(collection, batch, [reused_vectors[c.id] for c in batch], order)
        todo = [c for c in every if c.id not in reused_vectors]
        if todo:
            log.info("embedding %d chunks (%d reused)", len(todo), len(reused))
            if progress is not None:
                progress(0, len(todo))
            embeddings = get_embeddings(self.config.embedding, self.config.embedding_threads)
            for start in range(0, len(todo), BATCH):
                batch = todo[start : start + BATCH]
                vectors = embeddings.embed_documents([embedding_text(c) for c in batch])
                _add(collection, batch, vectors, order)  # persisted now: a re-run after a kill reuses it
                if progress is not None:
                    progress(start + len(batch), len(todo))

        _save_term_vectors(gen_dir, self._term_vectors(current, model_id))
        lexical = LexicalIndex.build([c.id for c in corpus.chunks], [c.text for c in corpus.chunks],
                                     [c.language for c in corpus.chunks])
        lexical.save(gen_dir / "bm25")
        if english:
            both = corpus.chunks + english
            LexicalIndex.build([c.id for c in both], [c.text for c in both],
                               [c.language for c in both]).save(gen_dir / "bm25_en")
        by_passage = {c.id[: -len(EN_SUFFIX)]: c for c in english}
        with (gen_dir / "chunks.jsonl").open("w", encoding="utf-8") as fh:
            for c in corpus.chunks:
                fh.write(json.dumps(chunk_record(c, by_passage.get(c.id)), ensure_ascii=False) + "\n")
        seconds = time.perf_counter() - started
        manifest = {
            "generation": generation,
            "collection": collection.name,
            "digest": digest,
            "embedding": model_id,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "ingest_seconds": round(seconds, 3),
            "documents": corpus.documents,
            "skipped": corpus.skipped,
            "chunks": len(corpus.chunks),
            "english_passages": len(english),
        }
        (gen_dir / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
        lock.check()  # a lost Chroma lease: another replica is building, do not switch under it
        self._switch(manifest)
        self._cleanup(keep={generation, current["generation"] if current else ""})
        self.hooks.ingest_finished(seconds)
        log.info("index generation %s built: %d chunks (%d embedded, %d reused) in %.1fs",
                 generation, len(corpus.chunks), len(todo), len(reused), seconds)
        return IngestResult(generation, True, len(corpus.chunks), len(todo), len(reused), seconds,
                            corpus.documents, corpus.skipped)

    def _translations(self, corpus_dir: Path) -> Translations:
        """The approved English lines: the corpus's own, under the data directory's (operator approvals)."""
        if self.config.data_dir is None:
            return Translations.load(Path(corpus_dir) / "translations" / "en")
        return TranslationStore.under(corpus_dir, self.config.data_dir).current()

    def _collection_exists(self, manifest: dict) -> bool:
        try:
            self.client.get_collection(manifest["collection"])
        except Exception:
            return False
        if self.shared:
            return True  # the local BM25 files are rebuilt from the collection on load
        return self.generation_dir(manifest["generation"]).joinpath("bm25").exists()

    def _generation_collections(self) -> list[str]:
        names = [c if isinstance(c, str) else c.name for c in self.client.list_collections()]
        return [n for n in names if n.startswith(GENERATION_PREFIX)]

    def _reusable_vectors(self, current: dict | None, model_id: str, chunks: list[Chunk]) -> dict[str, list[float]]:
        """Vectors of unchanged chunks: from the current generation and from any dead one (an ingest
        killed half-way left its persisted batches there) embedded by the same model."""
        sources = [current["collection"]] if current and current.get("embedding") == model_id else []
        with suppress(Exception):  # no server listing: only the current generation's vectors
            sources += [n for n in self._generation_collections() if current is None or n != current["collection"]]
        wanted = {c.id: c.content_hash for c in chunks}
        out: dict[str, list[float]] = {}
        for name in sources:
            missing = [cid for cid in wanted if cid not in out]
            if not missing:
                break
            try:
                old = self.client.get_collection(name)
                if (old.metadata or {}).get("embedding") != model_id:
                    continue  # a different model: never mix vectors
                got = old.get(ids=missing, include=["embeddings", "metadatas"])
            except Exception:
                continue
            for cid, vector, meta in zip(got["ids"], got["embeddings"], got["metadatas"], strict=True):
                if meta and meta.get("content_hash") == wanted.get(cid):
                    out[cid] = list(vector)
        return out

    def _term_vectors(self, current: dict | None, model_id: str) -> dict[str, np.ndarray]:
        """The query vectors of every glossary entry's dense terms: the current generation's where the model
        is the same, the rest embedded now (a couple of seconds for the whole glossary)."""
        wanted = glossary_dense_terms()
        known: dict[str, np.ndarray] = {}
        if current and current.get("embedding") == model_id:
            known = _load_term_vectors(self.generation_dir(current["generation"]))
        missing = [t for t in wanted if t not in known]
        if missing:
            embeddings = get_embeddings(self.config.embedding, self.config.embedding_threads)
            known.update({t: np.asarray(embeddings.embed_query(t), dtype=np.float32) for t in missing})
        return {t: known[t] for t in wanted}

    def _cleanup(self, keep: set[str]) -> None:
        """Drop every generation but the new and the previous one (collections, local dirs, and the
        segment folders embedded Chroma leaves behind when a collection is deleted). Runs under the
        ingest lock, so no generation being built by someone else can be among them."""
        for name in self._generation_collections():
            if name[len("sibyl_"):] not in keep:
                try:
                    self.client.delete_collection(name)
                except Exception as exc:
                    log.warning("could not delete old collection %s: %s", name, exc)
        gens = self.root / "generations"
        if gens.exists():
            for path in gens.iterdir():
                if path.name not in keep:
                    shutil.rmtree(path, ignore_errors=True)
        if not self.shared:
            _sweep_chroma_segments(self.root / "chroma")

    # --- load ----------------------------------------------------------------------------
    def load(self) -> LoadedIndex:
        manifest = self.current()
        if manifest is None:
            where = self.config.chroma_url if self.shared else self.root
            raise IndexMissing(f"no index in {where}; run `sibyl ingest` first")
        gen_dir = self.generation_dir(manifest["generation"])
        collection = self.client.get_collection(manifest["collection"])
        if not _complete(gen_dir):
            self._rebuild_local(manifest, collection)
        records = {}
        with (gen_dir / "chunks.jsonl").open(encoding="utf-8") as fh:
            for line in fh:
                rec = json.loads(line)
                records[rec["id"]] = rec
        self.hooks.index_loaded(manifest)
        english = gen_dir / "bm25_en"
        return LoadedIndex(
            manifest=manifest,
            collection=collection,
            lexical=LexicalIndex.load(gen_dir / "bm25"),
            records=records,
            client=self.client,
            lexical_en=LexicalIndex.load(english) if english.exists() else None,
            vectors=_vectors(collection, self.config.exact_search_max),
            term_vectors=_load_term_vectors(gen_dir),
        )

    def _rebuild_local(self, manifest: dict, collection) -> None:
        """Another replica built this generation: derive the chunk records and BM25 from the collection."""
        started = time.perf_counter()
        rows = []
        english: dict[str, dict] = {}
        seen = 0
        for got in _pages(collection, ["documents", "metadatas"]):
            seen += len(got["ids"])
            for cid, text, meta in zip(got["ids"], got["documents"], got["metadatas"], strict=True):
                meta = dict(meta or {})
                ordinal = meta.pop("ordinal", seen)
                meta.pop("content_hash", None)
                if cid.endswith(EN_SUFFIX):
                    english[cid[: -len(EN_SUFFIX)]] = {"title": meta["title"], "section": meta["section"], "text": text}
                    continue
                rows.append((ordinal, {"id": cid, "document": meta["document"], "title": meta["title"],
                                       "section": meta["section"], "text": text, "language": meta["language"],
                                       "metadata": meta}))
        rows.sort(key=lambda row: row[0])
        records = [rec for _, rec in rows]
        for rec in records:
            if rec["id"] in english:
                rec["en"] = english[rec["id"]]
        gen_dir = self.generation_dir(manifest["generation"])
        tmp = gen_dir.parent / f".{gen_dir.name}.{os.getpid()}.{uuid.uuid4().hex[:6]}.tmp"
        tmp.mkdir(parents=True)
        LexicalIndex.build([r["id"] for r in records], [r["text"] for r in records],
                           [r["language"] for r in records]).save(tmp / "bm25")
        translated = [r for r in records if "en" in r]
        if translated:
            LexicalIndex.build([r["id"] for r in records] + [r["id"] + EN_SUFFIX for r in translated],
                               [r["text"] for r in records] + [r["en"]["text"] for r in translated],
                               [r["language"] for r in records] + ["en"] * len(translated)).save(tmp / "bm25_en")
        with (tmp / "chunks.jsonl").open("w", encoding="utf-8") as fh:
            for rec in records:
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
        (tmp / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
        if gen_dir.exists() and not _complete(gen_dir):  # a crashed ingest's leftovers
            stale = tmp.with_suffix(".stale")
            os.rename(gen_dir, stale)
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.rename(tmp, gen_dir)
        except OSError:  # another process on this volume finished first: keep its copy
            shutil.rmtree(tmp, ignore_errors=True)
        log.info("index generation %s: %d chunk records and BM25 rebuilt from Chroma in %.1fs",
                 manifest["generation"], len(records), time.perf_counter() - started)


@dataclass
class Vectors:
    """A generation's vectors, row-normalised, read once from its Chroma collection (see `_vectors`)."""

    ids: list[str]
    matrix: np.ndarray  # float32, one unit row per id

    def ranked(self, query: Sequence[float]) -> Iterator[tuple[str, float]]:
        """Every id by cosine similarity to `query`, best first (an exact scan: what HNSW approximates); lazily,
        as the caller usually stops after a few dozen."""
        q = np.asarray(query, dtype=np.float32)
        sims = self.matrix @ (q / (np.linalg.norm(q) or 1.0))
        for i in np.argsort(-sims, kind="stable").tolist():
            yield self.ids[i], float(sims[i])


@dataclass
class LoadedIndex:
    manifest: dict
    collection: Any  # a chromadb Collection; its query() is typed narrower than the lists it accepts
    lexical: LexicalIndex
    records: dict[str, dict]
    client: object = None
    lexical_en: LexicalIndex | None = None  # every passage plus the English twins (ids <passage>#en)
    vectors: Vectors | None = None  # set when the collection is small enough for an exact scan
    term_vectors: dict[str, np.ndarray] = field(default_factory=dict)  # glossary dense terms -> query vector


TERM_VECTORS = "term_vectors"


def _save_term_vectors(gen_dir: Path, vectors: dict[str, np.ndarray]) -> None:
    if not vectors:
        return
    np.save(gen_dir / f"{TERM_VECTORS}.npy", np.stack(list(vectors.values())).astype(np.float32))
    (gen_dir / f"{TERM_VECTORS}.json").write_text(json.dumps(list(vectors), ensure_ascii=False), encoding="utf-8")


def _load_term_vectors(gen_dir: Path) -> dict[str, np.ndarray]:
    """Empty when the generation has none (built before them, or rebuilt by a replica from Chroma): the
    retriever then embeds each term text the first time a question names it."""
    try:
        texts = json.loads((gen_dir / f"{TERM_VECTORS}.json").read_text(encoding="utf-8"))
        matrix = np.load(gen_dir / f"{TERM_VECTORS}.npy")
    except (OSError, ValueError):
        return {}
    if len(texts) != len(matrix):
        return {}
    return dict(zip(texts, matrix, strict=True))


def _pages(collection, include: list[str]) -> Iterator[Any]:
    """The collection's rows, PAGE at a time (one unbounded get of a large collection is slow and big)."""
    seen = 0
    while True:
        got = collection.get(include=include, limit=PAGE, offset=seen)
        if not len(got["ids"]):
            return
        seen += len(got["ids"])
        yield got


def _vectors(collection, limit: int) -> Vectors | None:
    """The collection's vectors in memory when it holds at most `limit` of them (None otherwise).

    A city's corpus is a few hundred passages: scoring them all is exact and takes microseconds, where a
    Chroma query costs 1-2 ms of CPU per question (a twentieth of an answer). Chroma stays the store (ingest,
    reuse, replicas); larger collections are queried there.
    """
    if limit <= 0 or collection.count() > limit:
        return None
    ids: list[str] = []
    rows: list[Any] = []
    for got in _pages(collection, ["embeddings"]):
        ids += got["ids"]
        rows += list(got["embeddings"])
    if not ids:
        return None
    matrix = np.asarray(rows, dtype=np.float32)
    matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    return Vectors(ids, matrix)


def _complete(gen_dir: Path) -> bool:
    return (gen_dir / "chunks.jsonl").exists() and (gen_dir / "bm25").exists()


_KIND_NOTE = re.compile(r" \(attività di (?:sviluppo|miglioramento)\)|attività di (?:sviluppo|miglioramento); ")
_WELLBEING = re.compile(r"^- Benessere [^:]{1,60}:\s*", re.M)
_LIST_HEADERS = re.compile(
    r"^(Attività:|Obiettivi operativi di sviluppo 2023:|Obiettivi strategici dell'area \d+ \(\d+\):"
    r"|Obiettivi strategici 2019-2024 dell'area e realizzazione degli obiettivi operativi 2023:)\n", re.M)
_LATER_PART = re.compile(r"\(parte (?!1/)\d+/\d+\)$")
_OBJECTIVE_LABEL = re.compile(r"^Obiettivo strategico (?:2019-2024 )?(\d+\.\d+): ", re.M)


def embedding_text(chunk: Chunk) -> str:
    """What the dense model reads: the section path and body, without the boilerplate every row repeats.

    Embedding cost grows with tokens (cold ingest is the budget), and the document title, list
    headers, the activity kind after each row and the "Benessere …:" prefixes add tokens but no
    meaning. Area overviews list their objectives' first words only (each objective has its own
    chunk), and a continuation part of a long objective repeats only the start of its statement.
    BM25 and the reader still get the full text.
    """
    head = [chunk.title] if is_prose(chunk.section) else [chunk.section]
    body = body_lines(chunk.text, chunk.section)
    if chunk.metadata.get("level") == "area":
        body = [" ".join(line.split()[:10]) if line.startswith("- ") else line for line in body]
    elif _LATER_PART.search(chunk.section) and body:
        body[0] = " ".join(body[0].split()[:12])
    text = "\n".join(head + body)
    text = _LIST_HEADERS.sub("", _WELLBEING.sub("- ", _KIND_NOTE.sub("", text)))
    text = text.replace("Realizzazione degli obiettivi operativi 2023:", "Realizzazione 2023:")
    return _OBJECTIVE_LABEL.sub(r"\1: ", text)


def chunk_record(chunk: Chunk, english: Chunk | None = None) -> dict:
    record = {"id": chunk.id, "document": chunk.document, "title": chunk.title, "section": chunk.section,
              "text": chunk.text, "language": chunk.language, "metadata": chunk.flat_metadata()}
    if english is not None:
        record["en"] = {"title": english.title, "section": english.section, "text": english.text}
    return record


def english_chunks(chunks: list[Chunk], translations: Translations) -> list[Chunk]:
    """The English twin (id <passage>#en) of every non-English passage whose every line has an approved translation."""
    out = []
    for c in chunks:
        if c.language == "en":
            continue
        en = translations.translate_record(c)
        if en is not None:
            out.append(replace(c, id=c.id + EN_SUFFIX, language="en",
                               title=en["title"], section=en["section"], text=en["text"]))
    return out


def corpus_digest(chunks: list[Chunk], model_id: str, english: Sequence[Chunk] = ()) -> str:
    h = hashlib.sha256(model_id.encode())
    for c in sorted([*chunks, *english], key=lambda c: c.id):
        h.update(c.content_hash.encode())
    return h.hexdigest()


_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def _sweep_chroma_segments(path: Path) -> None:
    """Embedded Chroma keeps a deleted collection's vector folder on disk: remove folders no segment owns."""
    db = path / "chroma.sqlite3"
    if not db.exists():
        return
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as conn:
            live = {row[0] for row in conn.execute("SELECT id FROM segments")}
    except sqlite3.Error as exc:  # another Chroma version's schema: leave the folders alone
        log.warning("could not list Chroma segments in %s: %s", db, exc)
        return
    for folder in path.iterdir():
        if folder.is_dir() and _UUID.match(folder.name) and folder.name not in live:
            shutil.rmtree(folder, ignore_errors=True)


def _add(collection, chunks: list[Chunk], vectors: list[list[float]], order: dict[str, int]) -> None:
    metas = []
    for c in chunks:
        meta = c.flat_metadata()
        meta["content_hash"] = c.content_hash
        meta["ordinal"] = order[c.id]  # corpus order, so a replica rebuilds BM25 identically
        metas.append(meta)
    collection.add(ids=[c.id for c in chunks], embeddings=vectors, documents=[c.text for c in chunks], metadatas=metas)
