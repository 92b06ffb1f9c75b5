"""One writer at a time for an index: a file lock on the data directory, plus a lease in Chroma.

Every ingest (CLI, the console's upload/remove/re-index, a replica's first start) takes this lock
before it reads the pointer and holds it until the new generation is switched to and the dead ones
are removed, so two builders can never delete each other's collections or switch the pointer to a
generation the other is about to drop.

- Local index (embedded Chroma under the data directory): a `filelock` lock file next to the pointer.
  The kernel releases it when the holder dies, even by SIGKILL.
- Chroma server (replicas with separate data directories): the file lock only guards one machine, so
  the lock also lives in the server as a lease: a small collection whose creation is atomic, holding
  owner and expiry in its metadata, renewed by a thread while the ingest runs. A holder killed without
  releasing it frees it when the lease expires; a taker renames the stale collection by id first, so
  two takers cannot both win. Expiry compares wall clocks of the replicas: keep them NTP-synced, well
  within the lease length.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

LOCK_FILE = "ingest.lock"
LEASE_COLLECTION = "sibyl_ingest_lease"


class IngestLocked(RuntimeError):
    """Another ingest holds the index lock and did not release it within the timeout."""


class LeaseLost(RuntimeError):
    """The Chroma lease expired and another replica took it: this ingest must not switch the pointer."""


def owner_id() -> str:
    return f"pid {os.getpid()} on {socket.gethostname()} ({uuid.uuid4().hex[:6]})"


class IngestLock:
    """Context manager: `with IngestLock(root, timeout, client=...):` builds a generation alone."""

    def __init__(self, root: Path, timeout: float, client=None, lease_seconds: float = 60.0,
                 on_wait: Callable[[str], None] | None = None) -> None:
        self.root = Path(root)
        self.timeout = timeout
        self.client = client  # a Chroma HttpClient when the index lives in a server
        self.lease_seconds = lease_seconds
        self.on_wait = on_wait
        self.owner = owner_id()
        self._file = FileLock(str(self.root / LOCK_FILE))
        # Our lease collection (its id tells it from a successor's); a chromadb Collection from `client`.
        self._lease: Any = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self.lost = False

    # --- file lock ---------------------------------------------------------------------------
    def _holder_file(self) -> Path:
        return self.root / (LOCK_FILE + ".owner")

    def _acquire_file(self, deadline: float) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            self._file.acquire(timeout=0)
        except Timeout:
            holder = self._read_holder()
            if self.timeout <= 0:
                raise IngestLocked(f"another ingest is running ({holder}); SIBYL_INGEST_LOCK_TIMEOUT=0") from None
            self._waiting(holder)
            try:
                self._file.acquire(timeout=max(0.0, deadline - time.monotonic()))
            except Timeout:
                raise IngestLocked(f"another ingest is still running ({holder}) after waiting "
                                   f"{self.timeout:g}s (SIBYL_INGEST_LOCK_TIMEOUT)") from None
        self._holder_file().write_text(self.owner, encoding="utf-8")

    def _read_holder(self) -> str:
        try:
            return self._holder_file().read_text(encoding="utf-8").strip() or "unknown holder"
        except OSError:
            return "unknown holder"

    def _waiting(self, holder: str) -> None:
        if self.on_wait is not None:
            self.on_wait(f"waiting up to {self.timeout:g}s for another ingest ({holder})")

    # --- Chroma lease ------------------------------------------------------------------------
    def _meta(self) -> dict:
        return {"owner": self.owner, "expires": time.time() + self.lease_seconds}

    def _acquire_lease(self, deadline: float) -> None:
        waited = False
        while True:
            try:
                self._lease = self.client.create_collection(LEASE_COLLECTION, metadata=self._meta(),
                                                            embedding_function=None)
                return
            except Exception:  # exists already (InternalError/UniqueConstraintError by client version)
                pass
            try:
                held = self.client.get_collection(LEASE_COLLECTION)
            except Exception:
                continue  # released between the two calls: try again at once
            meta = held.metadata or {}
            if float(meta.get("expires", 0)) < time.time():
                self._take_over(held)
                continue
            holder = str(meta.get("owner", "unknown holder"))
            if self.timeout <= 0:
                raise IngestLocked(f"another ingest is running ({holder}, lease in the Chroma server); "
                                   "SIBYL_INGEST_LOCK_TIMEOUT=0")
            if time.monotonic() >= deadline:
                raise IngestLocked(f"another ingest is still running ({holder}, lease in the Chroma server) "
                                   f"after waiting {self.timeout:g}s (SIBYL_INGEST_LOCK_TIMEOUT)")
            if not waited:
                self._waiting(holder)
                waited = True
            time.sleep(min(1.0, max(0.05, deadline - time.monotonic())))

    def _take_over(self, stale) -> None:
        """Move an expired lease aside by id (never by name: that could hit a newer holder's), then drop it."""
        aside = f"{LEASE_COLLECTION}_stale_{uuid.uuid4().hex[:8]}"
        try:
            stale.modify(name=aside)
            self.client.delete_collection(aside)
        except Exception:
            pass  # another taker moved it first; whoever creates the new lease wins

    def _ours(self) -> bool:
        try:
            return self.client.get_collection(LEASE_COLLECTION).id == self._lease.id
        except Exception:
            return False

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.lease_seconds / 3):
            if not self._ours():
                self.lost = True
                return
            # The server may be briefly unreachable: the next round retries before expiry.
            with contextlib.suppress(Exception):
                self._lease.modify(metadata=self._meta())

    def check(self) -> None:
        """Raise LeaseLost if a Chroma lease was taken over (call before switching the pointer)."""
        if self._lease is not None and (self.lost or not self._ours()):
            raise LeaseLost("the ingest lease in the Chroma server expired and another ingest took it")

    # --- context manager ---------------------------------------------------------------------
    def __enter__(self) -> IngestLock:
        deadline = time.monotonic() + self.timeout
        self._acquire_file(deadline)
        if self.client is not None:
            try:
                self._acquire_lease(deadline)
            except BaseException:
                self._file.release()
                raise
            self._renewer = threading.Thread(target=self._renew_loop, name="ingest-lease", daemon=True)
            self._renewer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=5)
        if self._lease is not None and self._ours():
            with contextlib.suppress(Exception):  # expires on its own
                self.client.delete_collection(LEASE_COLLECTION)
        self._lease = None
        try:
            self._holder_file().unlink(missing_ok=True)
        finally:
            self._file.release()
