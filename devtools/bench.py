"""Benchmark (not a test): cold ingest time, warm ask latency p50/p95, peak RSS."""

from __future__ import annotations

import contextlib
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


def run_worst_case(settings: Settings, questions: Path | None = None, rounds: int = 3, as_json: bool = False) -> str:
    """CPU per ask of the costliest inputs within max_question_chars, as a ratio to a normal question.

    One run, interleaved rounds, new texts every round and the query-vector cache emptied before each
    ask, so no cache hides a cost. CPU time (all threads), not wall time: what a flood of such
    requests takes from everyone else. Target: every ratio <= 5.
    """
    from retrieval.evaluate import load_questions
    from retrieval.limits import worst_case_inputs
    from retrieval.pipeline import BadQuestion, Pipeline

    questions = questions or (DEFAULT_QUESTIONS if DEFAULT_QUESTIONS.exists() else FALLBACK_QUESTIONS)
    normal = [row["q"] for row in load_questions(questions)]
    pipeline = Pipeline.open(settings)
    length = settings.max_question_chars - 10
    for text in [*normal, *worst_case_inputs(length, seed=0).values()]:  # warm-up: model pages, lingua
        pipeline.ask(text)
    cpu: dict[str, list[float]] = {}

    def ask(kind: str, text: str) -> None:
        pipeline.retriever._query_cache.clear()
        started = time.process_time()
        with contextlib.suppress(BadQuestion):
            pipeline.ask(text)
        cpu.setdefault(kind, []).append((time.process_time() - started) * 1000)

    for r in range(rounds):
        for text in normal:
            ask("normal question", text)
        for kind, text in worst_case_inputs(length, seed=r + 1).items():
            ask(kind, text)
    base = statistics.median(cpu["normal question"])
    rows = {kind: {"cpu_ms_median": round(statistics.median(v), 1), "cpu_ms_max": round(max(v), 1),
                   "ratio": round(statistics.median(v) / base, 2)} for kind, v in cpu.items()}
    worst = max(r["ratio"] for r in rows.values())
    if as_json:
        return json.dumps({"chars": length, "rounds": rounds, "kinds": rows, "worst_ratio": worst, "target": 5},
                          indent=1)
    lines = [f"CPU per ask, {length}-character inputs vs {len(normal)} normal questions, {rounds} rounds:"]
    lines += [f"  {kind:24s} median {r['cpu_ms_median']:8.1f} ms  max {r['cpu_ms_max']:8.1f} ms  "
              f"ratio {r['ratio']:5.2f}" for kind, r in rows.items()]
    lines.append(f"worst ratio: {worst} (target <= 5)")
    return "\n".join(lines)
