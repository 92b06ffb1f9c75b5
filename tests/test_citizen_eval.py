"""`sibyl eval` on the citizen format: the shared scorer's definitions, run through the real CLI."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from retrieval.citizen_eval import (
    contains,
    duplicate_bullets,
    is_citizen_format,
    norm_match,
    repeated_share,
    score_item,
    split_body,
    summary,
)
from tests.conftest import REPO
from tests.test_cli import run

TINY = REPO / "tests" / "data" / "citizen_tiny.jsonl"


def test_matching_folds_accents_and_dashes_but_not_glued_digits():
    body = norm_match("La Young-Card è prevista nel 2025-2027, “città” al 25%")
    assert contains(body, "young card") and contains(body, "2025 2027") and contains(body, "citta")
    assert contains(body, "25%") and not contains(body, "202") and not contains(body, "oung")


def test_facts_are_looked_for_above_the_sources_heading_only():
    reply = {"answered": True, "answer": "Sì, in parte.\n\n- Bicipolitana [1]\n\nFonti:\n[1] Rete Ciclabile",
             "sources": [{"n": 1, "document": "relazione-performance-2023.it.txt"}]}
    body, tail = split_body(reply["answer"])
    assert "Rete Ciclabile" in tail and "Rete Ciclabile" not in body
    item = {"id": "a", "kind": "answerable", "lang": "it", "q": "?", "facts": [["Bicipolitana"], ["Rete Ciclabile"]],
            "docs": ["relazione-performance-2023.it"]}
    res = score_item(item, reply, None)
    assert not res.passed and res.reasons == ["missing Rete Ciclabile"]
    item["facts"] = [["Bicipolitana"]]
    assert score_item(item, reply, None).passed
    item["docs"] = ["lecce-smart-city.it"]
    assert "no cited source" in score_item(item, reply, None).reasons[0]


def test_declines_duplicates_and_repeated_followups():
    declined = {"answered": False, "answer": "Non trovo questa informazione."}
    oos = {"id": "o", "kind": "out_of_scope", "lang": "en", "q": "?", "facts": []}
    assert score_item(oos, declined, None).passed
    assert not score_item(oos, {"answered": True, "answer": "x"}, None).passed
    body1 = "Lead\n- Potenziamento rete ciclabile cittadina [1]\n- Nuove linee bus urbane [2]"
    body2 = "Lead\n- Potenziamento della rete ciclabile cittadina [3]\n- Rotatorie nuove agli incroci [1]"
    assert duplicate_bullets(body1) == [] and len(duplicate_bullets(body1 + "\n- rete ciclabile cittadina")) == 1
    assert repeated_share(body2, body1) == 0.5
    fu = {"id": "f", "kind": "followup", "lang": "it", "q": "?", "followup_q": "e?", "facts": [["rotatorie"]]}
    res = score_item(fu, {"answered": True, "answer": body1}, {"answered": True, "answer": body2})
    assert res.passed and res.repeats_turn1_share == 0.5
    s = summary([res, score_item(oos, declined, None)])
    assert s["passed"] == 2 and s["repeated_followups"] == ["f(0.5)"] and s["by_kind"]["followup"] == [1, 1]


def test_format_detection():
    assert is_citizen_format([{"q": "?", "facts": [["x"]]}, {"q": "?", "kind": "out_of_scope"}])
    assert not is_citizen_format([{"q": "?", "expect": ["x"]}, {"q": "?", "kind": "out_of_scope"}])


@given(st.text(max_size=200), st.text(min_size=1, max_size=30))
def test_a_fact_set_apart_by_spaces_is_always_found(text, fact):
    body = norm_match(f"{text} {fact} {text}")
    assert contains(body, fact) or not norm_match(fact)


def test_cli_eval_runs_the_citizen_format_through_the_conversation(settings, built_index):
    out = run(["eval", str(TINY), "--json"], settings)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["items"] == 3
    assert set(report["by_kind"]) == {"answerable", "out_of_scope", "followup"}
    assert report["by_kind"]["out_of_scope"] == [1, 1]  # the passport question is declined
    assert report["by_kind"]["answerable"] == [1, 1], report["failing"]  # the overall 2023 average
    assert report["by_kind"]["followup"] == [1, 1], report["failing"]  # second turn, same session
    assert report["duplicate_bullets"] == [] and report["repeated_followups"] == []
    text = run(["eval", str(TINY)], settings)
    assert "Overall pass rate: 3/3" in text.stdout and "t-it-3" in text.stderr
