"""Helpers for the operator console tests: an isolated copy of the shared index and corpus (uploads and
re-indexing must not touch the session index), an operator account, and login over HTTP."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

PASSWORD = "lecce-urp-2025"


def isolated_settings(settings, tmp: Path, **overrides):
    """Settings over a private copy of the built index and of the corpus (vectors are reused on ingest)."""
    from sibyl.settings import Settings

    data = tmp / "data"
    corpus = tmp / "corpus"
    shutil.copytree(settings.index_dir, data / "index")
    shutil.copytree(settings.corpus_dir, corpus)
    values = {"data_dir": data, "corpus_dir": corpus, "rate_limit": "", "operator_login_rate_limit": "", **overrides}
    fields = Settings.model_fields
    values = {k: v for k, v in values.items() if k in fields}
    return Settings(_env_file=None, **values)


def add_operator(settings, name: str = "mario", password: str = PASSWORD, role: str = "admin") -> None:
    """An account (an administrator unless `role` says otherwise: the console tests upload documents)."""
    from sibyl.backoffice.accounts import Operators

    ops = Operators.from_settings(settings)
    if name not in ops.usernames():
        ops.add(name, password, role=role)
    ops.engine.dispose()


def login_token(client) -> str:
    page = client.get("/operatore/login")
    assert page.status_code == 200
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def login(client, name: str = "mario", password: str = PASSWORD):
    return client.post("/operatore/login", data={"username": name, "password": password,
                                                 "csrf_token": login_token(client)}, follow_redirects=False)


def csrf_of(client) -> str:
    page = client.get("/operatore/cerca")
    assert page.status_code == 200, page.text[:300]
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
