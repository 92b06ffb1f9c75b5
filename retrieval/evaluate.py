"""Measure the pipeline on a JSONL question set (id, lang, kind, q, expect, answer_has)."""

from __future__ import annotations

import json
from pathlib import Path

from retrieval.language import detect_language
from retrieval.pipeline import Pipeline
from retrieval.text import fold


def load_questions(path: Path) -> list[dict]:
    rows = []
    with Path(path).open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict) or "q" not in row:
                raise ValueError(f"{path}:{lineno}: each line needs at least a 'q' field")
            rows.append(row)
    return rows


def evaluate(pipeline: Pipeline, rows: list[dict], k: int = 5) -> dict:
    per_question = []
    for row in rows:
        lang = row.get("lang")
        kind = row.get("kind", "answerable")
        result = pipeline.search(row["q"], k=k)
        rank = None
        for i, hit in enumerate(result.hits, start=1):
            if any(fold(e) in fold(hit.record["text"]) for e in row.get("expect", [])):
                rank = i
                break
        answer = pipeline.ask(row["q"])
        lead = answer.answer.split("\n", 1)[0]
        facts = row.get("answer_has", [])
        present = [f for f in facts if fold(f) in fold(answer.answer)]
        per_question.append({
            "id": row.get("id"), "lang": lang, "kind": kind, "q": row["q"], "rank": rank,
            "answered": answer.answered, "answer_language": answer.language,
            "lead_language": detect_language(lead, answer.language),
            "facts": len(facts), "facts_present": len(present), "evidence": answer.evidence,
        })
    return {"k": k, "summary": summarize(per_question), "questions": per_question}


def summarize(rows: list[dict]) -> dict:
    def retrieval(subset):
        if not subset:
            return None
        return {"n": len(subset),
                "hit_at_k": round(sum(1 for r in subset if r["rank"]) / len(subset), 4),
                "mrr": round(sum(1 / r["rank"] for r in subset if r["rank"]) / len(subset), 4)}

    answerable = [r for r in rows if r["kind"] == "answerable"]
    oos = [r for r in rows if r["kind"] != "answerable"]
    langs = sorted({r["lang"] for r in answerable if r["lang"]})
    facts = sum(r["facts"] for r in rows)
    in_lang = [r for r in rows if r["lang"]]
    return {
        "overall": retrieval(answerable),
        "by_language": {lang: retrieval([r for r in answerable if r["lang"] == lang]) for lang in langs},
        "out_of_scope": len(oos),
        "abstention_rate_out_of_scope": round(sum(1 for r in oos if not r["answered"]) / len(oos), 4) if oos else None,
        "false_abstentions": sum(1 for r in answerable if not r["answered"]),
        "answer_facts_present": round(sum(r["facts_present"] for r in rows) / facts, 4) if facts else None,
        "answers_in_question_language": round(
            sum(1 for r in in_lang if r["answer_language"] == r["lang"] and r["lead_language"] == r["lang"])
            / len(in_lang), 4) if in_lang else None,
    }


def format_report(report: dict) -> str:
    s = report["summary"]
    k = report["k"]
    lines = []
    for r in report["questions"]:
        mark = "ok " if (r["kind"] == "answerable" and r["rank"] and r["answered"]) or (
            r["kind"] != "answerable" and not r["answered"]) else "!! "
        ev = r["evidence"]["score"] if r["evidence"] else "-"
        lines.append(f"{mark}{r['id'] or '':<12} {r['lang'] or '':<3} {r['kind']:<13} rank={r['rank'] or '-':<3} "
                     f"answered={str(r['answered']):<5} evidence={ev} facts={r['facts_present']}/{r['facts']}")
    lines.append("")
    if s["overall"]:
        o = s["overall"]
        lines.append(f"hit@{k} overall {o['hit_at_k']:.3f}   MRR {o['mrr']:.3f}   (n={o['n']})")
    for lang, v in s["by_language"].items():
        lines.append(f"hit@{k} {lang:<7} {v['hit_at_k']:.3f}   MRR {v['mrr']:.3f}   (n={v['n']})")
    if s["abstention_rate_out_of_scope"] is not None:
        lines.append(f"abstention on out-of-scope: {s['abstention_rate_out_of_scope']:.3f} (n={s['out_of_scope']})")
    lines.append(f"false abstentions on answerable: {s['false_abstentions']}")
    if s["answer_facts_present"] is not None:
        lines.append(f"answer_has facts present: {s['answer_facts_present']:.3f}")
    lines.append(f"answers in the question's language: {s['answers_in_question_language']}")
    return "\n".join(lines)
