#!/usr/bin/env bash
# Install everything the test suite needs and run it. Used as-is by the README and by .ci/run.
#   - a virtualenv in .venv with the project, its test extras (torch pinned to the CPU build) and the
#     local LLM server for the real-model test (llama-cpp-python builds from source: ~7 min on 2 cores)
#   - Debian's chromium + chromium-driver for the browser tests (when missing and we can apt-get)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3

#   - docker-compose (the client only: `docker compose config` checks docker-compose.yml; no engine needed)
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
command -v docker-compose >/dev/null 2>&1 || docker compose version >/dev/null 2>&1 || missing+=(docker-compose)
#   - PostgreSQL server binaries: tests/test_migrations.py starts a throw-away cluster with initdb/pg_ctl
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
#   - espeak-ng (spoken answers; the voice tests speak their questions with it) and ffmpeg (Telegram-like OGG/Opus)
command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "!! missing ${missing[*]} and apt-get unavailable: browser/compose tests will fail or skip" >&2
  fi
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test,llm-local,voice]'
# Lint and types first (config in pyproject.toml): zero findings or no tests.
echo "== ruff"
.venv/bin/ruff check .
echo "== mypy"
.venv/bin/mypy
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 ANONYMIZED_TELEMETRY=False
if [ $# -gt 0 ]; then  # any arguments: one plain pytest run with them
  exec .venv/bin/python -m pytest "$@"
fi
# The test pyramid (tests/conftest.py marks each test): the unit tier first, stopping at the first failure
# (under a minute, no index), then the integration tier (the session index) and the end-to-end tier
# (subprocesses, servers, browser, compose) in one run so the index is built once.
echo "== unit tier"
.venv/bin/python -m pytest -m unit -x -q
echo "== integration and end-to-end tiers"
exec .venv/bin/python -m pytest -m "not unit"
