"""Requests in flight per worker process of one `sibyl serve`, on a small shared memory-mapped file.

uvicorn's workers share one listening socket, and a new connection goes to whichever worker accepts first:
16 keep-alive clients arriving together split 13/3, so one worker queues while the other idles (issue 18:
6% of the cores idle, p95 1.8x the queueing mean). With this board a worker holding clearly more requests
than the others answers with `Connection: close`; the client reconnects, and the busier worker, whose event
loop is slower to wake, rarely wins that accept. Nothing is shared but one counter per worker.
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path

import numpy as np
from filelock import FileLock

SLOTS = 64  # workers of one server; more (never in practice) are simply not balanced
_SIZE = SLOTS * 2 * 8  # (pid, requests in flight) as int64


class WorkerBoard:
    def __init__(self, path: Path, pid: int | None = None) -> None:
        self.pid = pid or os.getpid()
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(f"{path}.lock"):
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                if os.fstat(fd).st_size < _SIZE:
                    os.ftruncate(fd, _SIZE)
                self._map = mmap.mmap(fd, _SIZE)
            finally:
                os.close(fd)
            self._rows = np.frombuffer(self._map, dtype=np.int64).reshape(SLOTS, 2)
            self._slot = self._claim()

    def _claim(self) -> int | None:
        """A row of our own: a free one, or a dead worker's (uvicorn restarts workers)."""
        for i, owner in enumerate(self._rows[:, 0]):
            if owner == self.pid or owner == 0 or not _alive(int(owner)):
                self._rows[i] = (self.pid, 0)
                return i
        return None

    def enter(self) -> None:
        if self._slot is not None:
            self._rows[self._slot, 1] += 1

    def leave(self) -> None:
        if self._slot is not None:
            self._rows[self._slot, 1] -= 1

    def crowded(self, margin: int = 1) -> bool:
        """More requests in flight here than the other live workers' mean plus `margin`."""
        if self._slot is None:
            return False
        own = int(self._rows[self._slot, 1])
        others = [int(n) for i, (owner, n) in enumerate(self._rows)
                  if owner and i != self._slot and _alive(int(owner))]
        return bool(others) and own > sum(others) / len(others) + margin

    def close(self) -> None:
        if self._slot is not None:
            self._rows[self._slot] = (0, 0)
            self._slot = None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
