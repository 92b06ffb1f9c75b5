"""Settings as an operator meets them: environment, .env, `sibyl config`, errors that name the variable."""

from __future__ import annotations

import os
import subprocess
import sys
import typing
from pathlib import Path

import pytest
from pydantic import SecretStr

from sibyl import cli
from sibyl.settings import PROJECT_ROOT, Settings, env_example, env_names, env_var_for, masked

ROOT = Path(__file__).resolve().parents[1]


def _is_secret(info) -> bool:
    ann = info.annotation
    return ann is SecretStr or SecretStr in typing.get_args(ann)


def _clean_env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIBYL_") and not k.startswith("TELEGRAM_")}
    env["HF_HUB_OFFLINE"] = "1"
    return env


def test_env_example_is_generated_from_the_settings():
    text = (ROOT / ".env.example").read_text(encoding="utf-8")
    assert text == env_example(), "regenerate: python -m sibyl config --env-example > .env.example"
    for name in Settings.model_fields:
        for env in env_names(name):
            assert f"# {env}=" in text


def test_env_example_shows_defaults_and_no_machine_paths():
    text = env_example()
    assert "# SIBYL_TOP_K=5\n" in text
    assert "# SIBYL_LOG_MESSAGES=false\n" in text
    assert "# SIBYL_DATA_DIR=data\n" in text
    assert str(PROJECT_ROOT) not in text


def test_every_field_maps_to_its_variable():
    for name in Settings.model_fields:
        assert env_var_for(name) == env_names(name)[0]
        for env in env_names(name):
            assert env_var_for(env) == env_names(name)[0]


def test_environment_and_dotenv_are_read(tmp_path):
    (tmp_path / ".env").write_text("SIBYL_TOP_K=7\nSIBYL_LOG_LEVEL=debug\n", encoding="utf-8")
    env = _clean_env() | {"SIBYL_CANDIDATES": "40"}
    out = subprocess.run([sys.executable, "-m", "sibyl", "config"], cwd=tmp_path, env=env | {"PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = dict(line.split(" = ", 1) for line in out.stdout.splitlines())
    assert lines["top_k"] == "7" and lines["candidates"] == "40" and lines["log_level"] == "DEBUG"


def test_config_masks_every_secret():
    """Every SecretStr field, and passwords inside URLs, stay hidden in `sibyl config`."""
    env = _clean_env() | {"PYTHONPATH": str(ROOT)}
    secrets = {}
    for name, info in Settings.model_fields.items():
        if _is_secret(info):
            value = f"s3cr3t-{name}-value"
            if "telegram" in name and "token" in name:
                value = "123456:AAF" + "x" * 32  # the shape python-telegram-bot expects
            secrets[env_names(name)[0]] = value
    assert "SIBYL_CHROMA_TOKEN" in secrets and "SIBYL_LLM_API_KEY" in secrets
    env |= secrets
    env["SIBYL_DATABASE_URL"] = "postgresql://sibyl:db-pass-123@db:5432/sibyl"
    out = subprocess.run([sys.executable, "-m", "sibyl", "config"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    for value in [*secrets.values(), "db-pass-123"]:
        assert value not in out.stdout + out.stderr
    assert "postgresql://sibyl:********@db:5432/sibyl" in out.stdout
    assert "chroma_token = ********" in out.stdout


def test_masked_leaves_plain_values_alone():
    s = Settings(chroma_url="http://chroma:8000/", database_url="sqlite:////data/sibyl.db")
    shown = masked(s)
    assert shown["chroma_url"] == "http://chroma:8000"
    assert shown["database_url"] == "sqlite:////data/sibyl.db"
    assert shown["chroma_token"] is None


@pytest.mark.parametrize(
    ("env", "value", "needle"),
    [
        ("SIBYL_TOP_K", "99", "less than or equal to 50"),
        ("SIBYL_TOP_K", "many", "valid integer"),
        ("SIBYL_LOG_LEVEL", "loud", "DEBUG, INFO"),
        ("SIBYL_LOG_FORMAT", "xml", "json"),
        ("SIBYL_LOG_MESSAGES", "perhaps", "boolean"),
        ("SIBYL_CHROMA_URL", "ftp://chroma", "http(s) URL"),
        ("SIBYL_CHROMA_URL", "http://chroma:99999", "port"),
        ("SIBYL_DEFAULT_LANGUAGE", "fr", "'it' or 'en'"),
    ],
)
def test_invalid_setting_fails_at_start_naming_the_variable(monkeypatch, capsys, env, value, needle):
    for key in list(os.environ):
        if key.startswith("SIBYL_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv(env, value)
    assert cli.main(["config"]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert f"invalid setting {env}:" in err
    assert needle in err
    assert "Traceback" not in err


def test_invalid_setting_in_a_real_process():
    env = _clean_env() | {"PYTHONPATH": str(ROOT), "SIBYL_CHROMA_URL": "chroma:8000"}
    out = subprocess.run([sys.executable, "-m", "sibyl", "ingest"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().startswith("sibyl: invalid setting SIBYL_CHROMA_URL")
    assert "Traceback" not in out.stderr


def test_empty_chroma_url_means_embedded():
    assert Settings(chroma_url="").chroma_url is None
    assert Settings(chroma_url="  ").chroma_url is None
