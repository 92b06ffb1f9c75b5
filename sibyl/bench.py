"""Benchmark (not a test): cold ingest time, warm ask latency p50/p95, peak RSS."""

from __future__ import annotations

import json
import resource
import statistics
import tempfile
import time
from pathlib import Path

from sibyl.settings import PROJECT_ROOT, Settings

DEFAULT_QUESTIONS = PROJECT_ROOT.parent / "shared" / "eval" / "questions.jsonl"
FALLBACK_QUESTIONS = PROJECT_ROOT / "tests" / "data" / "calibration.jsonl"


def run_bench(settings: Settings, questions: Path | None = None, as_json: bool = False) -> str:
    from retrieval.evaluate import load_questions
    from retrieval.index import IndexStore
    from retrieval.pipeline import Pipeline

    questions = questions or (DEFAULT_QUESTIONS if DEFAULT_QUESTIONS.exists() else FALLBACK_QUESTIONS)
    rows = load_questions(questions)
    with tempfile.TemporaryDirectory(prefix="sibyl-bench-") as tmp:
        cold = settings.model_copy(update={"data_dir": Path(tmp)})
        started = time.perf_counter()
        result = IndexStore(cold).ingest(cold.corpus_dir)
        ingest_s = time.perf_counter() - started
        pipeline = Pipeline(cold)
        for row in rows:  # warm-up: model pages, caches of the first call
            pipeline.ask(row["q"])
        pipeline.retriever._query_cache.clear()
        latencies = []
        for _ in range(3):
            for row in rows:
                pipeline.retriever._query_cache.clear()
                t = time.perf_counter()
                pipeline.ask(row["q"])
                latencies.append((time.perf_counter() - t) * 1000)
    latencies.sort()
    p95 = latencies[min(len(latencies) - 1, int(round(0.95 * (len(latencies) - 1))))]
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    numbers = {
        "questions": str(questions), "chunks": result.chunks,
        "cold_ingest_s": round(ingest_s, 2), "ask_p50_ms": round(statistics.median(latencies), 1),
        "ask_p95_ms": round(p95, 1), "asks": len(latencies), "peak_rss_mb": round(rss_mb, 1),
        "targets": {"cold_ingest_s": 15, "ask_p50_ms": 40, "peak_rss_mb": 800},
    }
    if as_json:
        return json.dumps(numbers, indent=1)
    return (f"cold ingest: {numbers['cold_ingest_s']} s ({result.chunks} chunks; target <= 15 s)\n"
            f"warm ask latency over {len(latencies)} asks: p50 {numbers['ask_p50_ms']} ms, "
            f"p95 {numbers['ask_p95_ms']} ms (target p50 <= 40 ms)\n"
            f"peak RSS: {numbers['peak_rss_mb']} MB (target <= 800 MB)")
