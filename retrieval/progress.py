"""Progress of long work (embedding the corpus) with an ETA: a bar on a terminal, sparse lines otherwise.

An ingest calls `report(0, 0)` once it holds the index lock, `report(0, total)` before embedding and
`report(done, total)` after each persisted batch; who shows it is the caller's choice
(the CLI: tqdm on a TTY, `LineProgress` in logs and pipes; the console: a job field it polls).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from typing import Any, TextIO

ProgressFn = Callable[[int, int], None]

NOISY_LIBRARIES = ("bm25s", "chromadb", "httpx", "httpcore", "urllib3", "filelock")


def quiet_libraries() -> None:
    """Third-party DEBUG/INFO chatter (bm25s sets its own logger to DEBUG on import) stays out of our output."""
    for name in NOISY_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class Rate:
    """Done/total and an ETA from the average speed since the first report."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.started: float | None = None
        self.done = 0
        self.total = 0

    def update(self, done: int, total: int) -> None:
        if self.started is None or done == 0:  # (0, n) starts the clock: embedding begins now
            self.started = self.clock()
        self.done, self.total = done, total

    def eta(self) -> float | None:
        if self.started is None or self.done <= 0:
            return None
        elapsed = self.clock() - self.started
        return elapsed / self.done * max(0, self.total - self.done)

    def line(self) -> str:
        return f"embedded {self.done}/{self.total} chunks, ETA {format_eta(self.eta())}"


class LineProgress:
    """Not a terminal: one line per tenth of the work or per `every` seconds, whichever comes first."""

    def __init__(self, stream: TextIO, every: float = 30.0, prefix: str = "sibyl: ",
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream, self.every, self.prefix, self.clock = stream, every, prefix, clock
        self.rate = Rate(clock)
        self._last_time = 0.0
        self._last_tenth = -1

    def __call__(self, done: int, total: int) -> None:
        self.rate.update(done, total)
        if total <= 0:
            return
        if done == 0:
            print(f"{self.prefix}embedding {total} chunks", file=self.stream, flush=True)
            self._last_time, self._last_tenth = self.clock(), 0
            return
        tenth = done * 10 // total
        if tenth > self._last_tenth or self.clock() - self._last_time >= self.every or done == total:
            print(self.prefix + self.rate.line(), file=self.stream, flush=True)
            self._last_time, self._last_tenth = self.clock(), tenth


class BarProgress:
    """A terminal: a tqdm bar (it shows rate and ETA itself)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._bar: Any = None  # a tqdm bar (tqdm is untyped), made on the first call

    def __call__(self, done: int, total: int) -> None:
        from tqdm import tqdm

        if total <= 0:
            return
        if self._bar is None:
            # shutil's size falls back to 80x24 where a pseudo-terminal reports 0x0 (tqdm would draw nothing)
            size = shutil.get_terminal_size()
            self._bar = tqdm(total=total, unit="chunk", desc="embedding", file=self.stream,
                             ncols=size.columns, nrows=size.lines)
        self._bar.update(done - self._bar.n)
        if done >= total:
            self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def for_stream(stream: TextIO) -> LineProgress | BarProgress:
    return BarProgress(stream) if stream.isatty() else LineProgress(stream)
