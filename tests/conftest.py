"""Shared fixtures: one real index (Chroma on disk + BM25) built once per test session in a temp dir."""

from __future__ import annotations

import os
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
