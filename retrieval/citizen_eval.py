"""The citizen evaluation format (items with "kind" and "facts"), scored as ../shared/eval/score_citizen.py does.

Same definitions as that scorer's docstring, so `sibyl eval` and the shared scorer agree without importing
it: a fact group passes when one alternative is in the answer body above the sources heading (case, accents,
typographic quotes folded, dashes as spaces, not glued to a letter or digit); at least one cited source's
document must be in "docs"; out-of-scope items (or "decline") pass when declined; follow-ups are scored on
their second turn. Also per reply: the language share of function words, duplicate bullets (content-word
overlap >= 75%) and, for follow-ups, the share of turn-2 bullets repeating turn 1.

The conversation is a plain callable (message, session_id) -> reply dict, so this module needs no channel.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# The scorer's function-word lists (accent-folded; words shared by both languages left out): one copy, beside
# the translation checks that use them too.
from retrieval.translations import EN_FUNCTION_WORDS, IT_FUNCTION_WORDS

LANG_THRESHOLD = 0.2
DUP_THRESHOLD = 0.75
Chat = Callable[[str, str | None], dict[str, Any]]

_QUOTES = {"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'", "\u00b4": "'",
           "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u00ab": '"', "\u00bb": '"'}
_DASHES = "-\u2010\u2011\u2012\u2013\u2014\u2015\u2212"
_SOURCES_HEADING = re.compile(r"^(fonti|fonte|sources|source)\s*:?$")
_SOURCES_INLINE = re.compile(r"^(fonti|fonte|sources|source)\s*:\s*\[\d+\]")
_BULLET = re.compile(r"^\s*(?:[-*\u2022\u00b7\u2013]|\d+[.)])\s+(.*\S)")
_TOKEN = re.compile(r"[a-z]+(?:-[a-z]+)*'?")
_CITATION = re.compile(r"\[\d+\]")
_BOILERPLATE = frozenset([
    "benessere", "ambientale", "sociale", "istituzionale", "economico", "attivita", "sviluppo", "obiettivo",
    "obiettivi", "strategico", "strategici", "operativo", "operativi", "original", "italian", "wording", "anni",
    "periodo",
])


def is_citizen_format(rows: list[dict]) -> bool:
    """Citizen items carry fact groups ("facts"); retrieval items carry expected passages ("expect")."""
    return any("facts" in r for r in rows) and not any("expect" in r for r in rows)


def fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", text or "")
    text = "".join(c for c in text if not unicodedata.combining(c))
    return "".join(_QUOTES.get(c, c) for c in text).replace("\u00a0", " ").lower()


def norm_match(text: str) -> str:
    text = "".join(" " if c in _DASHES else c for c in fold(text))
    return re.sub(r"\s+", " ", text).strip()


def contains(norm_text: str, alternative: str) -> bool:
    """A plain substring test, except that an alternative never matches glued to a letter or digit."""
    alt = norm_match(alternative)
    if not alt:
        return False
    pattern = (r"(?<![^\W_])" if alt[0].isalnum() else "") + re.escape(alt) + \
        (r"(?![^\W_])" if alt[-1].isalnum() else "")
    return re.search(pattern, norm_text) is not None


def split_body(answer: str) -> tuple[str, str]:
    lines = (answer or "").split("\n")
    for k, line in enumerate(lines):
        bare = fold(line).strip().strip("*_#> ").strip()
        if _SOURCES_HEADING.match(bare) or _SOURCES_INLINE.match(bare):
            return "\n".join(lines[:k]), "\n".join(lines[k:])
    return answer or "", ""


def bullets(body: str) -> list[str]:
    return [m.group(1) for line in body.split("\n") if (m := _BULLET.match(line))]


def _strip_curly_quotes(text: str) -> str:
    out, depth = [], 0
    for c in text:
        if c == "\u201c":
            depth += 1
        elif c == "\u201d":
            depth = max(0, depth - 1)
        elif depth == 0:
            out.append(c)
    return "".join(out)


def function_word_counts(text: str) -> tuple[int, int]:
    it = en = 0
    for tok in _TOKEN.findall(fold(text)):
        if tok in IT_FUNCTION_WORDS:
            it += 1
        elif tok in EN_FUNCTION_WORDS:
            en += 1
    return it, en


def language_check(body: str, lang: str) -> dict[str, Any]:
    it, en = function_word_counts(body)
    share = round(it / (it + en), 3) if it + en else None
    ok = None if share is None else (share <= LANG_THRESHOLD if lang == "en" else 1 - share <= LANG_THRESHOLD)
    uit, uen = function_word_counts(_strip_curly_quotes(body))
    mostly_it = sum(1 for b in bullets(body) if (c := function_word_counts(b))[0] > c[1])
    return {"it_share": share, "it_share_unquoted": round(uit / (uit + uen), 3) if uit + uen else None,
            "lang_ok": ok, "bullets_mostly_italian": mostly_it}


def content_words(bullet: str) -> frozenset[str]:
    text = _CITATION.sub(" ", norm_match(bullet))
    return frozenset(t for t in re.findall(r"[a-z0-9]+", text) if not t.isdigit() and len(t) >= 2
                     and t not in IT_FUNCTION_WORDS and t not in EN_FUNCTION_WORDS and t not in _BOILERPLATE)


def overlap(a: frozenset[str], b: frozenset[str]) -> float:
    return 0.0 if min(len(a), len(b)) < 2 else len(a & b) / min(len(a), len(b))


def duplicate_bullets(body: str) -> list[tuple[str, str, float]]:
    bl = bullets(body)
    sets = [content_words(b) for b in bl]
    return [(bl[i][:120], bl[j][:120], round(ov, 2)) for i in range(len(bl)) for j in range(i + 1, len(bl))
            if (ov := overlap(sets[i], sets[j])) >= DUP_THRESHOLD]


def repeated_share(body2: str, body1: str) -> float | None:
    """Share of turn-2 bullets that nearly repeat a turn-1 bullet."""
    b2 = [content_words(b) for b in bullets(body2)]
    b1 = [content_words(b) for b in bullets(body1)]
    if not b2:
        return None
    return round(sum(1 for s in b2 if any(overlap(s, t) >= DUP_THRESHOLD for t in b1)) / len(b2), 2)


def doc_key(name: str) -> str:
    name = (name or "").strip().lower()
    name = name.removesuffix(".txt")
    return re.sub(r"\.(it|en)$", "", name)


def cited_documents(reply: dict, body: str) -> list[str]:
    sources = reply.get("sources") or []
    marks = {int(m) for m in re.findall(r"\[(\d+)\]", body)}
    chosen = ([s for s in sources if s.get("n") in marks] if marks else sources) or sources
    return sorted({doc_key(s.get("document") or str(s.get("id", "")).split(":")[0]) for s in chosen})


@dataclass
class ItemResult:
    id: str
    kind: str
    lang: str
    passed: bool
    answered: bool | None
    reasons: list[str] = field(default_factory=list)
    lang_ok: bool | None = None
    it_share: float | None = None
    bullets_mostly_italian: int = 0
    dup_bullets: list = field(default_factory=list)
    first_turn_dup_bullets: list = field(default_factory=list)
    repeats_turn1_share: float | None = None
    answer: str = ""


def score_item(item: dict, r1: dict, r2: dict | None) -> ItemResult:
    kind, lang = item.get("kind", "answerable"), item.get("lang", "it")
    followup = bool(item.get("followup_q"))
    reply = (r2 if followup else r1) or {}
    body, _ = split_body(reply.get("answer") or "")
    nbody = norm_match(body)
    answered = reply.get("answered")
    missing = [g for g in item.get("facts", []) if not any(contains(nbody, alt) for alt in g)]
    want = {doc_key(d) for d in item.get("docs", [])}
    cited = cited_documents(reply, body)
    docs_ok = not want or bool(want & set(cited))
    reasons: list[str] = []
    if kind == "out_of_scope" or item.get("decline"):
        passed = answered is False
        if not passed:
            reasons.append(f"did not decline (answered={answered})")
    else:
        if answered is not True:
            reasons.append("declined" if answered is False else f"answered={answered}")
        if answered is True and missing:
            reasons.append("missing " + " | ".join("/".join(g[:3]) for g in missing))
        if answered is True and not docs_ok:
            reasons.append(f"no cited source in {sorted(want)} (cited {cited})")
        passed = answered is True and not missing and docs_ok
    lc = language_check(body, lang)
    res = ItemResult(item.get("id", "?"), kind, lang, passed, answered, reasons, lc["lang_ok"], lc["it_share"],
                     lc["bullets_mostly_italian"], duplicate_bullets(body), answer=reply.get("answer") or "")
    if followup:
        b1, _ = split_body((r1 or {}).get("answer") or "")
        res.first_turn_dup_bullets = duplicate_bullets(b1)
        res.repeats_turn1_share = repeated_share(body, b1)
    return res


def run(items: list[dict], chat: Chat, on_item: Callable[[ItemResult], None] | None = None) -> list[ItemResult]:
    """Ask every item (a follow-up in the first turn's session) and score it."""
    results = []
    for item in items:
        r1 = chat(item["q"], None)
        r2 = chat(item["followup_q"], r1.get("session_id")) if item.get("followup_q") else None
        results.append(res := score_item(item, r1, r2))
        if on_item is not None:
            on_item(res)
    return results


def _pct(a: int, b: int) -> str:
    return f"{a}/{b} ({100.0 * a / b:.0f}%)" if b else f"{a}/0"


def summary(results: list[ItemResult]) -> dict[str, Any]:
    """The scorer's figures as data (the text report is `format_summary`)."""
    cells: dict[str, list[bool]] = {}
    for r in results:
        cells.setdefault(f"{r.kind} {r.lang}", []).append(r.passed)
    by: dict[str, dict[str, list[bool]]] = {"kind": {}, "language": {}}
    for r in results:
        by["kind"].setdefault(r.kind, []).append(r.passed)
        by["language"].setdefault(r.lang, []).append(r.passed)
    dups = [f"{r.id}#1" for r in results if r.first_turn_dup_bullets] + \
        [r.id + ("#2" if r.kind == "followup" else "") for r in results if r.dup_bullets]
    en = [r for r in results if r.lang == "en" and r.lang_ok is not None]
    it = [r for r in results if r.lang == "it" and r.lang_ok is not None]
    return {
        "items": len(results), "passed": sum(r.passed for r in results),
        "cells": {k: [sum(v), len(v)] for k, v in sorted(cells.items())},
        "by_kind": {k: [sum(v), len(v)] for k, v in by["kind"].items()},
        "by_language": {k: [sum(v), len(v)] for k, v in by["language"].items()},
        "lang_ok_en": [sum(1 for r in en if r.lang_ok), len(en)],
        "lang_not_ok_en": [f"{r.id}({r.it_share})" for r in en if not r.lang_ok],
        "en_mostly_italian_bullets": [r.id for r in results if r.lang == "en" and r.bullets_mostly_italian],
        "lang_ok_it": [sum(1 for r in it if r.lang_ok), len(it)],
        "duplicate_bullets": dups,
        "repeated_followups": [f"{r.id}({r.repeats_turn1_share})" for r in results
                               if r.repeats_turn1_share is not None and r.repeats_turn1_share >= 0.5],
        "failing": {r.id: "; ".join(r.reasons) or "fail" for r in results if not r.passed},
    }


def format_summary(s: dict[str, Any]) -> str:
    out = [f"Citizen check -- {s['items']} items", "", "Pass by kind and language:"]
    out += [f"  {k.split()[0]:<13} {k.split()[1]}  {_pct(*v)}" for k, v in s["cells"].items()]
    out.append("By kind: " + ", ".join(f"{k} {_pct(*v)}" for k, v in s["by_kind"].items()))
    out.append("By language: " + ", ".join(f"{k} {_pct(*v)}" for k, v in s["by_language"].items()))
    out += [f"Overall pass rate: {_pct(s['passed'], s['items'])}", ""]
    out.append(f"lang_ok, English questions (Italian share of function words <= {LANG_THRESHOLD}): "
               f"{_pct(*s['lang_ok_en'])}")
    if s["lang_not_ok_en"]:
        out.append("  not ok [it_share]: " + ", ".join(s["lang_not_ok_en"]))
    if s["en_mostly_italian_bullets"]:
        out.append("  English replies with a bullet mostly in Italian (diagnostic): "
                   + ", ".join(s["en_mostly_italian_bullets"]))
    out += [f"lang_ok, Italian questions (English share <= {LANG_THRESHOLD}): {_pct(*s['lang_ok_it'])}", ""]
    dups = s["duplicate_bullets"]
    out.append(f"Replies with duplicate bullets (word overlap >= {int(DUP_THRESHOLD * 100)}%): {len(dups)}"
               + (": " + ", ".join(dups) if dups else ""))
    out.append(f"Follow-ups whose turn 2 mostly repeats turn 1: {len(s['repeated_followups'])}"
               + (": " + ", ".join(s["repeated_followups"]) if s["repeated_followups"] else ""))
    out += ["", f"Failing ids ({len(s['failing'])}): " + (", ".join(s["failing"]) or "none")]
    out += [f"  {k}: {v}" for k, v in s["failing"].items()]
    return "\n".join(out)
