"""Document management for operators: list, upload, remove, re-index without stopping the service.

An upload is parsed in a scratch directory first; only a readable document is written into the
corpus. Ingest then runs in a background thread and builds a new index generation that the
pipeline picks up with reload(); if it fails, the file change is rolled back and the old generation
keeps serving. One job runs at a time here, and the index lock (retrieval/ingest_lock.py) also makes it
wait for a CLI ingest or another replica's; the running job carries its progress (done/total, ETA).
"""

from __future__ import annotations

import io
import itertools
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from retrieval.corpus import SUPPORTED, document_id, parse_file
from retrieval.language import detect_language
from retrieval.parsers.generic import UnreadableDocument, sniff_kind
from retrieval.progress import Rate, format_eta

log = logging.getLogger(__name__)
ROME = ZoneInfo("Europe/Rome")  # the console shows local time

EXTENSION = {"pdf": ".pdf", "docx": ".docx", "html": ".html"}
MAX_ARCHIVE_MEMBERS = 5000  # a real DOCX has a few dozen parts
# python-docx spends ~75 us per paragraph: a 7 MB document.xml of empty <w:p/> took 90 s to parse. A
# 1,500-page report has fewer than 50,000 paragraphs (table cells included).
MAX_DOCX_PARAGRAPHS = 50_000
PARAGRAPH_TAG = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?p[\s/>]")  # <w:p>, <w:p/>, <w:p w:rsid..>, any prefix


MAX_URL_CHARS = 500


def official_url(url: str | None) -> str | None:
    """An upload's link to its official original: empty means none; anything but a plain http(s) URL is refused."""
    url = (url or "").strip()
    if not url:
        return None
    parts = urlsplit(url)
    if (len(url) > MAX_URL_CHARS or parts.scheme not in ("http", "https") or not parts.hostname
            or any(ch.isspace() or ord(ch) < 0x20 or ch in "<>\"" for ch in url)):
        raise UploadRejected("not an http(s) address", 422, "upload_bad_url")
    return url


def set_catalog_url(corpus_dir: Path, filename: str, url: str | None) -> str | None:
    """Write (or with None remove) the `url` of a file's catalog entry, keeping the catalog's comments and
    order (tomlkit); returns the previous value. Replaced atomically: a reader never sees half a file."""
    import tomlkit

    path = corpus_dir / "catalog.toml"
    document = tomlkit.parse(path.read_text(encoding="utf-8")) if path.exists() else tomlkit.document()
    entry = document.get(filename)
    previous = entry.get("url") if entry is not None else None
    if url is None:
        if entry is None or "url" not in entry:
            return previous
        del entry["url"]
        if not entry:
            del document[filename]
    else:
        if entry is None:
            entry = tomlkit.table()
            document[filename] = entry
        entry["url"] = url
    tmp = path.with_name(f".catalog.toml.{os.getpid()}.part")
    tmp.write_text(tomlkit.dumps(document), encoding="utf-8")
    os.replace(tmp, path)
    return previous


class UploadRejected(ValueError):
    """The upload is refused and nothing changed; `code` is the HTTP status, the message is safe to show."""

    def __init__(self, message: str, code: int = 422, key: str = "upload_unreadable") -> None:
        super().__init__(message)
        self.code = code
        self.key = key


class Busy(RuntimeError):
    """Another ingest job is running."""


@dataclass
class Job:
    id: int
    kind: str  # upload | remove | reindex
    document: str | None
    username: str
    state: str = "running"  # running | done | failed
    message: str = ""
    started: float = field(default_factory=time.time)
    finished: float | None = None
    generation: str | None = None
    info: dict = field(default_factory=dict)  # the parsed upload (title, language, chunks)
    waiting: bool = False  # another ingest (CLI, replica) holds the index lock
    rate: Rate = field(default_factory=Rate, repr=False)  # embedded chunks so far, for the console's progress line

    def report(self, done: int, total: int) -> None:
        self.waiting = False
        self.rate.update(done, total)

    def to_dict(self) -> dict:
        eta = self.rate.eta()
        return {"id": self.id, "kind": self.kind, "document": self.document, "username": self.username,
                "state": self.state, "message": self.message, "started": self.started, "finished": self.finished,
                "generation": self.generation, "waiting": self.waiting,
                "progress": {"done": self.rate.done, "total": self.rate.total,
                             "eta_seconds": None if eta is None else round(eta), "eta": format_eta(eta)}}


def check_archive(data: bytes, max_unpacked: int) -> None:
    """Refuse a zip (DOCX) whose members would unpack to more than `max_unpacked` bytes, from its
    directory alone, before any parser inflates it: a 1 MB zip bomb unpacks to gigabytes. The declared
    sizes are binding: Python's zipfile stops at a member's declared size and fails its CRC if it lies.
    Then the body (now known to be small enough to inflate) may hold at most MAX_DOCX_PARAGRAPHS
    paragraphs, since parse time grows with their number, not with bytes."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
            if len(members) > MAX_ARCHIVE_MEMBERS:
                raise UploadRejected(f"{len(members)} parts in the archive (at most {MAX_ARCHIVE_MEMBERS})", 413,
                                     "upload_unpacked_too_large")
            unpacked = sum(m.file_size for m in members)
            if unpacked > max_unpacked:
                raise UploadRejected(f"unpacks to {unpacked} bytes (at most {max_unpacked})", 413,
                                     "upload_unpacked_too_large")
            body = next((m for m in members if m.filename == "word/document.xml"), None)
            xml = archive.read(body) if body is not None else b""
            paragraphs = sum(1 for _ in itertools.islice(PARAGRAPH_TAG.finditer(xml), MAX_DOCX_PARAGRAPHS + 1))
    except UploadRejected:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, NotImplementedError, EOFError, ValueError,
            OSError) as exc:
        raise UploadRejected(f"damaged archive: {exc}", 422, "upload_unreadable") from None
    if paragraphs > MAX_DOCX_PARAGRAPHS:
        raise UploadRejected(f"{paragraphs} paragraphs (at most {MAX_DOCX_PARAGRAPHS})", 413,
                             "upload_unpacked_too_large")


def safe_stem(filename: str) -> str:
    """A document id from an uploaded file name: ASCII letters, digits and dashes only."""
    stem = Path(filename or "").name
    for suffix in (".it.txt", ".en.txt"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    stem = stem.rsplit(".", 1)[0] if "." in stem else stem
    stem = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode()
    stem = re.sub(r"[^A-Za-z0-9]+", "-", stem).strip("-").lower()[:60]
    return stem or "documento"


def _when(stamp: str | None) -> str | None:
    """'2026-11-21T22:47:42+0000' -> '21/11/2026 23:47' (Rome time, as the rest of the console) for the table."""
    if not stamp:
        return None
    try:
        return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S%z").astimezone(ROME).strftime("%d/%m/%Y %H:%M")
    except ValueError:
        return stamp


class DocumentManager:
    def __init__(self, pipeline, max_bytes: int, on_finish=None) -> None:
        self.pipeline = pipeline
        self.settings = pipeline.settings
        self.max_bytes = max_bytes
        self.on_finish = on_finish  # called with the finished Job (the console audits it)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.jobs: list[Job] = []

    @property
    def corpus_dir(self) -> Path:
        return Path(self.settings.corpus_dir)

    @property
    def trash_dir(self) -> Path:
        return Path(self.settings.data_dir) / "removed-documents"

    # --- listing -----------------------------------------------------------------------------
    def documents(self) -> list[dict]:
        manifest = self.pipeline.index.manifest
        out = []
        for _doc_id, info in sorted(manifest.get("documents", {}).items()):
            path = self.corpus_dir / info.get("source_file", "")
            out.append({**info, "indexed_at": _when(manifest.get("built_at")), "generation": manifest.get("generation"),
                        "added_at": datetime.fromtimestamp(path.stat().st_mtime, ROME).strftime("%d/%m/%Y %H:%M")
                        if path.exists() else None})
        return out

    def skipped(self) -> list[tuple[str, str]]:
        return [tuple(x) for x in self.pipeline.index.manifest.get("skipped", [])]

    def running(self) -> Job | None:
        return next((j for j in self.jobs if j.state == "running"), None)

    def job(self, job_id: int) -> Job | None:
        return next((j for j in self.jobs if j.id == job_id), None)

    # --- validation ----------------------------------------------------------------------------
    def validate(self, filename: str, data: bytes) -> tuple[str, dict]:
        """(file name to write, parsed document info) or UploadRejected. Type comes from the bytes.
        Blocking (parsing a large document takes seconds): the web layer calls it in a worker thread."""
        if len(data) > self.max_bytes:
            raise UploadRejected(f"file larger than {self.max_bytes} bytes", 413, "upload_too_large")
        if not data.strip():
            raise UploadRejected("empty file", 422, "upload_empty")
        kind = sniff_kind(data)
        if kind == "binary":
            raise UploadRejected("not a PDF, DOCX, HTML, Markdown or text file", 415, "upload_type")
        if kind == "docx":
            check_archive(data, self.settings.upload_max_unpacked_bytes)
        stem = safe_stem(filename)
        if kind in EXTENSION:
            ext = EXTENSION[kind]
        else:
            ext = ".md" if Path(filename or "").suffix.lower() in (".md", ".markdown") else ".txt"
        name = stem + ext
        with tempfile.TemporaryDirectory(prefix="sibyl-upload-") as tmp:
            path = Path(tmp) / name
            path.write_bytes(data)
            fallback = self.settings.default_language
            log.info("parsing upload %s (%s, %d bytes)", name, kind, len(data))
            try:
                chunks, info = parse_file(path, {}, lambda text: detect_language(text, fallback))
            except (UnreadableDocument, UnicodeDecodeError, ValueError, OSError) as exc:
                raise UploadRejected(str(exc), 422, "upload_unreadable") from None
            except Exception as exc:  # parsers of third-party formats raise anything
                log.warning("upload %s failed to parse: %r", filename, exc)
                raise UploadRejected(f"could not be parsed ({type(exc).__name__})", 422, "upload_unreadable") from None
        doc_id = document_id(Path(name))
        existing = {document_id(p) for p in self.corpus_dir.iterdir() if p.is_file() and p.suffix.lower() in SUPPORTED}
        if doc_id in existing or doc_id in self.pipeline.index.manifest.get("documents", {}):
            raise UploadRejected(f"a document with id {doc_id!r} already exists", 409, "upload_exists")
        info["chunks"] = len(chunks)
        return name, info

    # --- jobs -------------------------------------------------------------------------------------
    def _start(self, job: Job, work, rollback=None) -> Job:
        with self._lock:
            if self.running() is not None:
                raise Busy("an indexing job is already running")
            self.jobs.append(job)
            self.jobs[:] = self.jobs[-50:]
        thread = threading.Thread(target=self._run, args=(job, work, rollback), name=f"ingest-{job.id}", daemon=True)
        self._thread = thread
        thread.start()
        return job

    def _next_id(self) -> int:
        return (self.jobs[-1].id + 1) if self.jobs else 1

    def _ingest(self, force: bool = False):
        """Ingest under the cross-process index lock, reporting into the running job (the console polls it)."""
        job = self.running()

        def on_wait(message: str) -> None:
            log.info("indexing job waits: %s", message)
            if job is not None:
                job.waiting = True

        return self.pipeline.store.ingest(self.corpus_dir, force=force, on_wait=on_wait,
                                          progress=job.report if job is not None else None)

    def _run(self, job: Job, work, rollback) -> None:
        try:
            result = work()
            self.pipeline.reload()
            job.generation = result.generation
            job.state, job.message = "done", f"{result.chunks} chunks, {len(result.documents)} documents"
            job.info.update(indexed_chunks=result.chunks, indexed_documents=len(result.documents))  # for the console
        except Exception as exc:
            log.exception("ingest job %s failed", job.id)
            if rollback is not None:
                try:
                    rollback()
                except Exception:
                    log.exception("rollback of job %s failed", job.id)
            job.state, job.message = "failed", str(exc) or type(exc).__name__
        finally:
            job.finished = time.time()
            if self.on_finish is not None:
                try:
                    self.on_finish(job)
                except Exception:
                    log.exception("on_finish for job %s failed", job.id)

    def wait(self, timeout: float | None = None) -> Job | None:
        """Block until the current job ends (tests and the CLI); returns the last job."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self.jobs[-1] if self.jobs else None

    def upload(self, filename: str, data: bytes, username: str, url: str | None = None) -> Job:
        """`url`: the official original's address, kept in the catalog for the public document view."""
        if self.running() is not None:
            raise Busy("an indexing job is already running")
        url = official_url(url)
        name, info = self.validate(filename, data)
        target = self.corpus_dir / name
        tmp = self.corpus_dir / f".{name}.{os.getpid()}.part"
        tmp.write_bytes(data)
        os.replace(tmp, target)
        previous_url = set_catalog_url(self.corpus_dir, name, url) if url else None

        def work():
            result = self._ingest()
            if info["id"] not in result.documents:
                reason = dict(result.skipped).get(name, "not indexed")
                raise UnreadableDocument(reason)
            return result

        def rollback():
            target.unlink(missing_ok=True)
            if url:
                set_catalog_url(self.corpus_dir, name, previous_url)
            if self.pipeline.store.current() and info["id"] in self.pipeline.store.current().get("documents", {}):
                self._ingest()  # the file was indexed before failing: index without it

        job = Job(self._next_id(), "upload", info["id"], username, info=info)
        try:
            return self._start(job, work, rollback)
        except Busy:
            target.unlink(missing_ok=True)
            if url:
                set_catalog_url(self.corpus_dir, name, previous_url)
            raise

    def remove(self, doc_id: str, username: str) -> Job:
        docs = self.pipeline.index.manifest.get("documents", {})
        if doc_id not in docs:
            raise KeyError(doc_id)
        source = self.corpus_dir / docs[doc_id]["source_file"]
        if not source.exists():
            raise KeyError(doc_id)
        if len(docs) <= 1:
            raise UploadRejected("the last document cannot be removed", 409, "remove_last")
        self.trash_dir.mkdir(parents=True, exist_ok=True)
        parked = self.trash_dir / f"{time.strftime('%Y%m%dT%H%M%S')}-{source.name}"
        if self.running() is not None:
            raise Busy("an indexing job is already running")
        shutil.move(source, parked)

        def rollback():
            shutil.move(parked, source)

        try:
            return self._start(Job(self._next_id(), "remove", doc_id, username),
                               self._ingest, rollback)
        except Busy:
            rollback()
            raise

    def reindex(self, username: str) -> Job:
        return self._start(Job(self._next_id(), "reindex", None, username),
                           lambda: self._ingest(force=True))
