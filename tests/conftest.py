"""Shared fixtures: one real index (Chroma on disk + BM25) built once per test session in a temp dir.

The test pyramid (`pytest -m unit`, then `-m integration`, then `-m e2e`; scripts/test.sh runs them in
that order) is marked here by what a test uses, so nobody has to remember a marker:
- e2e: its module starts other processes or a browser (subprocess, tests/browser.py, tests/deploy_support.py,
  selenium, a Bot API peer thread is fine);
- integration: it needs the session index (fixtures `built_index`/`pipeline`, directly or through
  another fixture) or is marked slow (it builds an index or starts a server in process);
- unit: everything else; it runs in under a minute without an index (channels on tests/fakes.py).
A test may also carry one of the three markers itself.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "corpus"
DEV_QUESTIONS = REPO.parent / "shared" / "eval" / "questions.jsonl"


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("sibyl-data")


@pytest.fixture(scope="session")
def settings(data_dir):
    from sibyl.settings import Settings

    return Settings(data_dir=data_dir, corpus_dir=CORPUS, _env_file=None)


@pytest.fixture(scope="session")
def built_index(settings):
    from retrieval.index import IndexStore

    store = IndexStore(settings)
    if store.current() is None:
        store.ingest(settings.corpus_dir)
    return store


@pytest.fixture(scope="session")
def pipeline(settings, built_index):
    from retrieval.pipeline import Pipeline

    return Pipeline(settings, built_index)


TIERS = ("unit", "integration", "e2e")
INDEX_FIXTURES = {"built_index", "pipeline"}
_E2E_SOURCE = re.compile(r"^\s*(?:import subprocess|from subprocess |from selenium|import selenium"
                         r"|from tests\.(?:browser|deploy_support) import"
                         r"|from tests import (?:browser|deploy_support))",
                         re.M)
_e2e_modules: dict[str, bool] = {}


def _starts_processes(item: pytest.Item) -> bool:
    path = str(item.path)
    if path not in _e2e_modules:
        try:
            _e2e_modules[path] = bool(_E2E_SOURCE.search(Path(path).read_text(encoding="utf-8")))
        except OSError:
            _e2e_modules[path] = False
    return _e2e_modules[path]


def tier_of(item: pytest.Item) -> str:
    for tier in TIERS:
        if item.get_closest_marker(tier) is not None:
            return tier
    if _starts_processes(item):
        return "e2e"
    if INDEX_FIXTURES & set(getattr(item, "fixturenames", ())) or item.get_closest_marker("slow") is not None:
        return "integration"
    return "unit"


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        tier = tier_of(item)
        if item.get_closest_marker(tier) is None:
            item.add_marker(getattr(pytest.mark, tier))
