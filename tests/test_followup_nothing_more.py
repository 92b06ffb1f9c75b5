"""A follow-up whose passages all repeat the previous answer says so in its lead (cited): no bullet repeats it."""

from __future__ import annotations

import re

import prompts

QUERY = "quali obiettivi ha il comune per le politiche giovanili?"


def test_a_followup_with_nothing_new_says_so_instead_of_repeating(pipeline):
    # Every passage the follow-up can reach was already shown in full in the previous answer.
    shown = [hit.record["text"] for hit in pipeline.search(QUERY, k=50).hits]
    again = pipeline.ask("e per i giovani?", retrieval_query=QUERY, previous_bullets=shown)
    head = prompts.text("it", "lead_nothing_more", answer="").split(":")[0]
    assert again.answered and again.bullets == []
    assert again.lead.startswith(head) and again.sources and re.search(r"\[1\](\[\d+\])*$", again.lead)

