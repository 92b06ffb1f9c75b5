"""HTTP benchmark (not a test): N concurrent clients over loopback against POST /api/chat.

Starts `sibyl serve` in a subprocess (rate limit off, a throw-away conversation database, the
configured index) unless --url names a running server, warms it up for a few seconds, then
measures requests/s, p50/p95/p99 latency and errors.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from devtools.bench import DEFAULT_QUESTIONS, FALLBACK_QUESTIONS
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


async def _load(url: str, questions: list[str], clients: int, seconds: float) -> tuple[list[float], dict, float]:
    """Closed loop: each client sends its next question as soon as the previous answer arrives.

    aiohttp, not httpx, on the client side: it costs about a tenth of the CPU per request, and the
    client shares this machine's cores with the server it measures.
    """
    import aiohttp

    latencies: list[float] = []
    errors: dict[str, int] = {}
    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(url, connector=connector, timeout=timeout) as http:
        async def client(i: int, until: float, record: bool) -> None:
            n = i
            while time.monotonic() < until:
                question = questions[n % len(questions)]
                n += clients
                started = time.perf_counter()
                try:
                    async with http.post("/api/chat", json={"message": question}) as r:
                        await r.read()
                        ok, key = r.status == 200, str(r.status)
                except (TimeoutError, aiohttp.ClientError) as exc:
                    ok, key = False, type(exc).__name__
                if not record:
                    continue
                if ok:
                    latencies.append((time.perf_counter() - started) * 1000)
                else:
                    errors[key] = errors.get(key, 0) + 1

        warm_until = time.monotonic() + WARMUP_SECONDS
        await asyncio.gather(*(client(i, warm_until, False) for i in range(clients)))
        started = time.monotonic()
        await asyncio.gather(*(client(i, started + seconds, True) for i in range(clients)))
        elapsed = time.monotonic() - started
    return latencies, errors, elapsed


def _pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))] if values else float("nan")


def run_bench_api(settings: Settings, questions: Path | None = None, clients: int = 16, seconds: float = 30.0,
                  workers: int | None = None, url: str | None = None, as_json: bool = False) -> str:
    path = questions or (DEFAULT_QUESTIONS if DEFAULT_QUESTIONS.exists() else FALLBACK_QUESTIONS)
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    texts = [r["q"] for r in rows]
    workers = workers or settings.api_workers
    proc = None
    with tempfile.TemporaryDirectory(prefix="sibyl-bench-api-") as tmp:
        log_path = Path(tmp) / "server.log"
        if url is None:
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            proc = start_server(settings, port, workers, f"sqlite:///{Path(tmp) / 'bench.db'}", log_path)
        try:
            wait_ready(url, proc, log_path)
            latencies, errors, elapsed = asyncio.run(_load(url, texts, clients, seconds))
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
    latencies.sort()
    numbers = {
        "url": url, "questions": str(path), "clients": clients, "seconds": round(elapsed, 1),
        "server_workers": workers if proc is not None else None, "cpus": os.cpu_count(),
        "requests": len(latencies) + sum(errors.values()), "ok": len(latencies),
        "errors": sum(errors.values()), "errors_by_kind": errors,
        "requests_per_s": round(len(latencies) / elapsed, 1) if elapsed else 0.0,
        "p50_ms": round(statistics.median(latencies), 1) if latencies else None,
        "p95_ms": round(_pct(latencies, 0.95), 1) if latencies else None,
        "p99_ms": round(_pct(latencies, 0.99), 1) if latencies else None,
        "target": {"p95_ms": 150, "errors": 0},
    }
    if as_json:
        return json.dumps(numbers, indent=1)
    return (f"POST /api/chat, {clients} clients, {numbers['seconds']} s, {numbers['server_workers']} server worker(s), "
            f"{numbers['cpus']} CPUs\n"
            f"requests/s: {numbers['requests_per_s']}  ({numbers['ok']} ok, {numbers['errors']} errors "
            f"{errors or ''})\n"
            f"latency: p50 {numbers['p50_ms']} ms, p95 {numbers['p95_ms']} ms, p99 {numbers['p99_ms']} ms "
            f"(target p95 <= 150 ms, 0 errors)")
