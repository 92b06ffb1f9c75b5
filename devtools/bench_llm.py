"""Benchmark (not a test) of LLM mode over the dev questions: latency, share of model answers that
pass the grounding checks, share that fall back to the extractive answer (and why), example answers.

`python -m sibyl bench-llm --local` starts the bundled Gemma 3 270M on loopback (devtools.local_llm);
without --local it measures the model SIBYL_LLM names.
"""

from __future__ import annotations

import json
import statistics
import time
from collections import Counter
from pathlib import Path

from sibyl.settings import Settings

REASONS = [("unsupported sentences", "unsupported claims"),
           ("repeats the instructions", "echoed the prompt"), ("no citation", "no citation"),
           ("cites sources not given", "bad citation"),
           ("numbers not in", "number not in sources"), ("answer is in", "wrong language"),
           ("empty answer", "empty"), ("Timeout", "timeout"), ("Connection", "connection error")]


def _reason_kind(reason: str) -> str:
    return next((kind for needle, kind in REASONS if needle in reason), "other")


def _measure(settings: Settings, rows: list[dict]) -> dict:
    from retrieval.pipeline import Pipeline

    pipeline = Pipeline.open(settings)
    if pipeline.llm is None:
        raise ValueError("no language model configured: set SIBYL_LLM (or use --local)")
    pipeline.ask(rows[0]["q"])  # warm-up: the server loads the model, caches fill
    results = []
    for row in rows:
        started = time.perf_counter()
        extractive = pipeline.extractive(row["q"])
        outcome = pipeline.llm.attempt(extractive) if extractive.answered else None
        seconds = time.perf_counter() - started
        shown = outcome.answer if outcome else extractive
        results.append({"q": row["q"], "lang": shown.language, "seconds": seconds, "called": outcome is not None,
                        "mode": shown.mode, "answered": shown.answered, "answer": shown.answer,
                        "model_text": outcome.text if outcome else None,
                        "reason": outcome.reason if outcome else None})
    called = [r for r in results if r["called"]]
    passed = [r for r in called if r["mode"] == "llm"]
    trimmed = [r for r in called if r["mode"] == "llm-trimmed"]
    fell = [r for r in called if r["mode"] == "extractive"]
    lat = sorted(r["seconds"] for r in called) or [0.0]
    return {
        "model": settings.llm, "questions": len(rows), "model_calls": len(called),
        "abstained_without_call": len(results) - len(called),
        "latency_p50_s": round(statistics.median(lat), 2),
        "latency_p95_s": round(lat[min(len(lat) - 1, int(round(0.95 * (len(lat) - 1))))], 2),
        "passed": len(passed), "passed_share": round(len(passed) / max(1, len(called)), 3),
        "declined": sum(1 for r in passed if not r["answered"]),
        "trimmed": len(trimmed),
        "fell_back": len(fell), "fell_back_share": round(len(fell) / max(1, len(called)), 3),
        "fallback_reasons": dict(Counter(_reason_kind(r["reason"]) for r in fell)),
        "results": results,
    }


def _examples(results: list[dict], count: int = 3) -> list[dict]:
    """Model answers that passed when there are any (one English question first), else fallbacks."""
    called = [r for r in results if r["called"]]
    ranked = sorted(called, key=lambda r: (r["mode"] != "llm", r["lang"] != "en"))
    picked = ranked[:1]
    picked += [r for r in sorted(called, key=lambda r: r["mode"] != "llm") if r not in picked][: count - 1]
    return picked


def run_bench_llm(settings: Settings, questions: Path | None = None, local: bool = False, as_json: bool = False,
                  limit: int | None = None) -> str:
    from devtools.bench import DEFAULT_QUESTIONS, FALLBACK_QUESTIONS
    from retrieval.evaluate import load_questions

    questions = questions or (DEFAULT_QUESTIONS if DEFAULT_QUESTIONS.exists() else FALLBACK_QUESTIONS)
    rows = load_questions(questions)[:limit] if limit else load_questions(questions)
    if local:
        from devtools import local_llm

        missing = local_llm.available()
        if missing:
            raise ValueError(
                f"--local needs the local model server: pip install -e '.[llm-local]' (missing: {missing})")
        with local_llm.serve() as base_url:
            report = _measure(settings.model_copy(update={"llm": f"openai:{local_llm.MODEL_NAME}",
                                                          "llm_base_url": base_url}), rows)
    else:
        report = _measure(settings, rows)
    report["questions_file"] = str(questions)
    report["examples"] = _examples(report["results"])
    if as_json:
        return json.dumps(report, ensure_ascii=False, indent=1)
    lines = [
        f"model: {report['model']} over {report['questions']} questions ({report['questions_file']})",
        f"model calls: {report['model_calls']} ({report['abstained_without_call']} abstained before any call)",
        f"latency per answer (retrieval + model + checks): p50 {report['latency_p50_s']} s, "
        f"p95 {report['latency_p95_s']} s",
        f"passed the checks: {report['passed']}/{report['model_calls']} ({report['passed_share']:.0%}, "
        f"of which {report['declined']} said they don't know)",
        f"shown without their unsupported sentences (llm-trimmed): {report['trimmed']}/{report['model_calls']}",
        f"fell back to the extractive answer: {report['fell_back']}/{report['model_calls']} "
        f"({report['fell_back_share']:.0%}) {report['fallback_reasons']}",
    ]
    for i, ex in enumerate(report["examples"], start=1):
        lines += ["", f"--- example {i} [{ex['lang']}] mode={ex['mode']} ({ex['seconds']:.1f} s): {ex['q']}"]
        if ex["mode"] == "extractive":
            lines += [f"model wrote (rejected: {ex['reason']}):", (ex["model_text"] or "").strip(), "shown instead:"]
        lines.append(ex["answer"])
    return "\n".join(lines)


def run_bench_checks(settings: Settings, cases_file: Path | None = None, rounds: int = 5) -> str:
    """The sentence support check alone (no model) over a labelled set of model replies: ms per answer
    (first pass: source lines analysed and embedded; later passes: cached), inventions shown, paraphrases kept."""
    from retrieval.llm import LLMAnswerer
    from retrieval.pipeline import Pipeline
    from retrieval.support import Passage

    cases_file = cases_file or Path(__file__).resolve().parents[1] / "tests" / "data" / "support_cases.jsonl"
    cases = [json.loads(line) for line in cases_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    pipeline = Pipeline.open(settings)
    # No chat model: only the answer checker is used (LLMAnswerer wants a model for the generating half).
    answerer = LLMAnswerer(None, settings)  # type: ignore[arg-type]
    records = pipeline.index.records
    cold: list[float] = []
    warm: list[float] = []
    warm_cpu: list[float] = []  # CPU time of the process: what the check costs, whatever else runs on the machine
    shown = kept = faithful = 0
    embedded: list[int] = []
    for round_ in range(rounds):
        for case in cases:
            passages = [Passage(i, pid, records[pid]["text"], records[pid]["metadata"].get("language", "it"))
                        for i, pid in enumerate(case["passages"], 1)]
            sentences = [s for s, _ in case["sentences"]]
            text = "".join(s + ("\n" if s.endswith(":") else " ") for s in sentences)
            if case.get("layout") == "bullets":
                text = sentences[0] + "\n" + "\n".join("- " + s for s in sentences[1:])
            started, started_cpu = time.perf_counter(), time.process_time()
            report = answerer.checker(case["lang"]).check(text.strip(), passages, case["question"])
            (cold if round_ == 0 else warm).append((time.perf_counter() - started) * 1000)
            if round_:
                warm_cpu.append((time.process_time() - started_cpu) * 1000)
            if round_ == 0:
                embedded.append(sum(1 for s in report.sentences if s.similarity is not None))
                left = report.kept_text() if report.answers or report.points_to_urp else ""
                for sentence, label in case["sentences"]:
                    shown += label == "bad" and sentence in left
                    faithful += label == "ok"
                    kept += label == "ok" and sentence in left
    warm = sorted(warm) or [0.0]
    cold = sorted(cold)
    embedder = answerer.checker("it").embeddings
    one = []
    for i in range(10):  # the unit cost the check avoids: one sentence embedding, measured in the same run
        started = time.perf_counter()
        embedder.embed_documents([f"Nel {2020 + i} il Comune ha potenziato il servizio di trasporto pubblico locale."])
        one.append((time.perf_counter() - started) * 1000)
    return "\n".join([
        f"support check over {len(cases)} labelled answers ({cases_file}), {rounds} passes",
        f"first pass (source lines analysed + embedded): p50 {statistics.median(cold):.1f} ms, "
        f"max {cold[-1]:.1f} ms per answer",
        f"cached passages: p50 {statistics.median(warm):.1f} ms, mean {statistics.mean(warm):.1f} ms, "
        f"p95 {warm[int(0.95 * (len(warm) - 1))]:.1f} ms; CPU time mean {statistics.mean(warm_cpu or [0.0]):.1f} ms "
        f"per answer",
        f"sentences needing an e5 embedding: {statistics.mean(embedded):.2f} per answer "
        f"({embedded.count(0)}/{len(embedded)} answers none); one sentence embedding: p50 "
        f"{statistics.median(one):.1f} ms",
        f"invented sentences shown: {shown}; faithful sentences kept: {kept}/{faithful} "
        f"({kept / max(1, faithful):.0%})",
    ])
