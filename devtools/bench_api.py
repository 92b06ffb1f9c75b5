"""HTTP benchmark (not a test): N concurrent clients over loopback against POST /api/chat.

Starts `sibyl serve` in a subprocess (rate limit off, a throw-away conversation database, the
configured index) unless --url names a running server, warms it up for a few seconds, then
measures unique questions/s against the embedding limit of the same run, p50/p95/p99 latency against
the queueing mean, errors, server CPU per answer and memory per worker; `--repeat-share` adds
repeated questions (cache hits), reported apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from devtools.bench import (
    DEFAULT_QUESTIONS,
    FALLBACK_QUESTIONS,
    _pct,
    embedding_costs,
    embedding_limit,
    unique_questions,
)
from sibyl.settings import PROJECT_ROOT, Settings

WARMUP_SECONDS = 3.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(settings: Settings, port: int, workers: int, db_url: str, log_path: Path) -> subprocess.Popen:
    env = dict(os.environ, SIBYL_RATE_LIMIT="", SIBYL_DATABASE_URL=db_url, HF_HUB_OFFLINE="1",
               SIBYL_DATA_DIR=str(settings.data_dir), SIBYL_CORPUS_DIR=str(settings.corpus_dir),
               SIBYL_API_WORKERS=str(workers))
    with log_path.open("wb") as log:  # a file, not a pipe: an unread pipe would block the server's logging
        return subprocess.Popen([sys.executable, "-m", "sibyl", "serve", "--port", str(port)], cwd=PROJECT_ROOT,
                                env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_ready(url: str, proc: subprocess.Popen | None, log_path: Path | None = None, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            log = log_path.read_text(errors="replace")[-2000:] if log_path else "(no log)"
            raise RuntimeError("server exited: " + log)
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"server not ready after {timeout} s")


class _Connection:
    """One keep-alive HTTP/1.1 connection to the server: the load generator's whole client.

    The client shares this machine's cores with the server it measures, so it must cost little: aiohttp took
    about 1.8 ms of CPU per request (6% of the cores at 65 answers/s), this plain exchange a fraction of that.
    It reconnects when the server says `Connection: close` (a crowded worker spreading its clients).
    """

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.timeout = timeout
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post_json(self, path: str, payload: dict) -> int:
        try:
            return await asyncio.wait_for(self._exchange(path, json.dumps(payload).encode()), self.timeout)
        except BaseException:
            self.close()
            raise

    async def _exchange(self, path: str, body: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(b"POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                          b"Content-Length: %d\r\n\r\n%s" % (path.encode(), self.host.encode(), self.port,
                                                              len(body), body))
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        headers = {}
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip().lower()
        if headers.get(b"transfer-encoding") == b"chunked":
            while size := int((await self.reader.readuntil(b"\r\n")).strip() or b"0", 16):
                await self.reader.readexactly(size + 2)
            await self.reader.readuntil(b"\r\n")
        else:
            await self.reader.readexactly(int(headers.get(b"content-length", b"0")))
        if headers.get(b"connection") == b"close":
            self.close()
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def _load(url: str, stream: Iterator[tuple[str, bool]], clients: int, seconds: float,
                warmup: float = WARMUP_SECONDS, on_start: Callable[[], None] | None = None) -> Load:
    """Closed loop: each client sends the stream's next question as soon as the previous answer arrives."""
    load = Load()
    connections = [_Connection(url) for _ in range(clients)]

    async def client(connection: _Connection, until: float, record: bool) -> None:
        while time.monotonic() < until:
            question, repeat = next(stream)
            started = time.perf_counter()
            try:
                status = await connection.post_json("/api/chat", {"message": question})
                ok, key = status == 200, str(status)
            except (TimeoutError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                    ValueError) as exc:
                ok, key = False, type(exc).__name__
            if not record:
                continue
            if ok:
                (load.repeats if repeat else load.latencies).append((time.perf_counter() - started) * 1000)
            else:
                load.errors[key] = load.errors.get(key, 0) + 1

    try:
        if warmup:
            warm_until = time.monotonic() + warmup
            await asyncio.gather(*(client(c, warm_until, False) for c in connections))
        if on_start is not None:
            on_start()
        started = time.monotonic()
        await asyncio.gather(*(client(c, started + seconds, True) for c in connections))
        load.elapsed = time.monotonic() - started
    finally:
        for connection in connections:
            connection.close()
    return load


@dataclass
class Load:
    latencies: list[float] = field(default_factory=list)  # unique questions, ms
    repeats: list[float] = field(default_factory=list)  # repeated questions (cache-hit traffic), ms
    errors: dict[str, int] = field(default_factory=dict)
    elapsed: float = 0.0
    client_cpu: float = 0.0  # CPU seconds of this load generator during the run (it shares the server's cores)


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (uvicorn's workers), from /proc."""
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                todo += [int(c) for c in task.read_text().split()]
    return out


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes (all their threads) so far."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def run_bench_api(settings: Settings, questions: Path | None = None, clients: int = 16, seconds: float = 30.0,
                  workers: int | None = None, url: str | None = None, as_json: bool = False,
                  repeat_share: float = 0.0, single_seconds: float = 5.0) -> str:
    """Unique questions by default (citizens' questions vary; a cycle of 32 measures the cache), repeats
    reported apart; server CPU per answer, memory per worker and the embedding limit of this run."""
    path = questions or (DEFAULT_QUESTIONS if DEFAULT_QUESTIONS.exists() else FALLBACK_QUESTIONS)
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    texts = [r["q"] for r in rows]
    workers = workers or settings.serve_workers
    proc = None
    with tempfile.TemporaryDirectory(prefix="sibyl-bench-api-") as tmp:
        log_path = Path(tmp) / "server.log"
        if url is None:
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            proc = start_server(settings, port, workers, f"sqlite:///{Path(tmp) / 'bench.db'}", log_path)
        try:
            wait_ready(url, proc, log_path)
            stream = unique_questions(texts, repeat_share)
            single = asyncio.run(_load(url, stream, 1, single_seconds)) if single_seconds else Load()
            embed_ms, embed_median = embedding_costs(texts)  # the server is idle now: this run's unit
            pids = process_tree(proc.pid) if proc is not None else []
            cpu_at: list[float] = []
            client_at: list[float] = []

            def on_start() -> None:
                cpu_at.append(cpu_seconds(pids))
                client_at.append(time.process_time())

            load = asyncio.run(_load(url, stream, clients, seconds, on_start=on_start))
            server_cpu = cpu_seconds(pids) - cpu_at[0] if pids else None
            load.client_cpu = time.process_time() - client_at[0]
            memory = {pid: round(rss_mb(pid), 1) for pid in pids}
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode} during the run: "
                                   + log_path.read_text(errors="replace")[-3000:])
        finally:
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
    return report(load, single, embed_ms, server_cpu, memory, proc is not None, url=url, questions=str(path),
                  embed_median=embed_median,
                  clients=clients, workers=workers, repeat_share=repeat_share, as_json=as_json)


def report(load: Load, single: Load, embed_ms: float, server_cpu: float | None, memory: dict[int, float],
           started_server: bool, *, url: str, questions: str, clients: int, workers: int, repeat_share: float,
           as_json: bool, embed_median: float | None = None) -> str:
    """The run's figures: throughput against the embedding limit, p95 against the queueing mean."""
    latencies = sorted(load.latencies)
    answered = len(load.latencies) + len(load.repeats)
    rate = len(latencies) / load.elapsed if load.elapsed else 0.0
    cores = os.cpu_count() or 1
    limit = embedding_limit(embed_ms, cores)
    queueing_ms = clients / rate * 1000 if rate else float("nan")
    p95 = _pct(latencies, 0.95)
    errors = sum(load.errors.values())
    numbers = {
        "url": url, "questions": questions, "clients": clients, "seconds": round(load.elapsed, 1),
        "server_workers": workers if started_server else None, "cpus": cores,
        "requests": answered + errors, "ok": answered, "errors": errors, "errors_by_kind": load.errors,
        "unique_per_s": round(rate, 1),
        "p50_ms": round(statistics.median(latencies), 1) if latencies else None,
        "p95_ms": round(p95, 1) if latencies else None,
        "p99_ms": round(_pct(latencies, 0.99), 1) if latencies else None,
        "queueing_mean_ms": round(queueing_ms, 1), "p95_over_queueing_mean": round(p95 / queueing_ms, 2),
        "embedding_ms_one_core": round(embed_ms, 1), "embedding_limit_per_s": round(limit, 1),
        "share_of_embedding_limit": round(rate / limit, 3),
        # the same against a unit of the median embedding (the unit before: a skewed mix's median understates)
        "embedding_ms_median": round(embed_median, 1) if embed_median else None,
        "share_of_median_limit": round(rate / embedding_limit(embed_median, cores), 3) if embed_median else None,
        "server_cpu_ms_per_answer": round(server_cpu * 1000 / answered, 1) if server_cpu and answered else None,
        # What the server would reach with the cores to itself (no client, no other load): one embedding's CPU
        # over an answer's CPU. Shared or busy cores lower `share_of_embedding_limit`, not this.
        "cpu_share_of_embedding_limit": round(embed_ms * answered / (server_cpu * 1000), 3)
        if server_cpu and answered else None,
        # The first process is `sibyl serve` itself (the only worker when it runs one); with several, uvicorn's
        # workers are its children (a few-MB multiprocessing helper too).
        "server_rss_mb": next(iter(memory.values()), None),
        "worker_rss_mb": [mb for mb in list(memory.values())[1:] if mb >= 50],
        "single_client_p50_ms": round(statistics.median(single.latencies), 1) if single.latencies else None,
        "client_cpu_ms_per_request": round(load.client_cpu * 1000 / (answered + errors), 2)
        if answered + errors else None,
        "repeat_share": repeat_share, "repeats": len(load.repeats),
        "repeat_per_s": round(len(load.repeats) / load.elapsed, 1) if load.elapsed else 0.0,
        "repeat_p50_ms": round(statistics.median(load.repeats), 1) if load.repeats else None,
        "target": {"share_of_embedding_limit": 0.8, "p95_over_queueing_mean": 1.5, "errors": 0,
                   "single_client_p50_ms": 35},
    }
    if as_json:
        return json.dumps(numbers, indent=1)
    lines = [
        f"POST /api/chat, {clients} clients, {numbers['seconds']} s, {numbers['server_workers']} server worker(s), "
        f"{cores} CPUs, unique questions",
        f"unique questions/s: {numbers['unique_per_s']}  ({numbers['ok']} ok, {errors} errors {load.errors or ''})",
        f"embedding limit: {numbers['embedding_limit_per_s']}/s ({cores} x 1000 / "
        f"{numbers['embedding_ms_one_core']} ms, the mean query embedding of these questions on one core); "
        f"reached {numbers['share_of_embedding_limit']:.0%} (target >= 80%; "
        f"{numbers['share_of_median_limit'] or 0:.0%} of a limit from the median embedding, "
        f"{numbers['embedding_ms_median']} ms)",
        f"latency: p50 {numbers['p50_ms']} ms, p95 {numbers['p95_ms']} ms, p99 {numbers['p99_ms']} ms; "
        f"queueing mean {numbers['queueing_mean_ms']} ms, p95 = {numbers['p95_over_queueing_mean']}x (target <= 1.5)",
        f"server CPU per answer: {numbers['server_cpu_ms_per_answer']} ms "
        f"(one embedding = {numbers['cpu_share_of_embedding_limit']} of it); RSS: serve {numbers['server_rss_mb']} MB, "
        f"workers {numbers['worker_rss_mb']} MB; load generator CPU per request: "
        f"{numbers['client_cpu_ms_per_request']} ms",
        f"single client: p50 {numbers['single_client_p50_ms']} ms (target <= 35 ms)",
    ]
    if load.repeats:
        lines.append(f"cache-hit traffic (repeat share {repeat_share}): {numbers['repeat_per_s']}/s, "
                     f"p50 {numbers['repeat_p50_ms']} ms")
    return "\n".join(lines)
