"""No Docker engine runs here, so check that the compose file refers only to things that exist."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
OURS = {name: svc for name, svc in SERVICES.items() if "build" in svc}
SETTINGS_ENV = {f"DRIFTLOOP_{name.upper()}" for name in Settings.model_fields}


def test_infrastructure_uses_official_images() -> None:
    images = {name: svc["image"].split(":")[0] for name, svc in SERVICES.items() if "image" in svc}
    assert images == {
        "kafka": "apache/kafka",
        "clickhouse": "clickhouse/clickhouse-server",
        "minio": "minio/minio",
        "minio-init": "minio/mc",
        "postgres": "postgres",
    }


@pytest.mark.parametrize("name", sorted(OURS))
def test_service_builds_from_a_dockerfile_in_the_repo(name: str) -> None:
    build = OURS[name]["build"]
    assert (ROOT / build["context"] / build["dockerfile"]).is_file()


@pytest.mark.parametrize("name", sorted(OURS))
def test_service_command_runs_a_module_that_exists(name: str) -> None:
    command = OURS[name]["command"]
    assert command[:2] == ["python", "-m"]
    module = command[2]
    assert importlib.util.find_spec(f"{module}.__main__") is not None, f"{name}: no {module}/__main__.py"


@pytest.mark.parametrize("name", sorted(OURS))
def test_service_environment_names_only_real_settings(name: str) -> None:
    env = OURS[name]["environment"]
    unknown = set(env) - SETTINGS_ENV
    assert not unknown, f"{name} sets variables no setting reads: {unknown}"
    settings = Settings(**{k.removeprefix("DRIFTLOOP_").lower(): v for k, v in env.items()})
    assert not settings.kafka_is_local and not settings.clickhouse_is_local, "compose must not use loopback"


@pytest.mark.parametrize("name", sorted(OURS))
def test_dependencies_and_ports_are_declared(name: str) -> None:
    for dep in OURS[name].get("depends_on", []):
        assert dep in SERVICES, f"{name} depends on undefined service {dep}"
    env = OURS[name]["environment"]
    host, port = env["DRIFTLOOP_KAFKA_BOOTSTRAP"].split(":")
    assert (
        host in SERVICES
        and f"PLAINTEXT://{host}:{port}" in SERVICES[host]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    )
    ch = env["DRIFTLOOP_CLICKHOUSE_URL"].removeprefix("http://").split(":")
    assert ch[0] in SERVICES and f"{ch[1]}:{ch[1]}" in SERVICES[ch[0]]["ports"]


def test_artifact_bucket_is_created_before_services_write() -> None:
    bucket = OURS["registry"]["environment"]["DRIFTLOOP_ARTIFACT_ROOT"].removeprefix("s3://").split("/")[0]
    init = SERVICES["minio-init"]
    assert f"mc mb --ignore-existing local/{bucket}" in " ".join(init["entrypoint"])
    assert "minio-init" in OURS["registry"]["depends_on"]


def _settings_of(service: str) -> Settings:
    return Settings(
        **{k.removeprefix("DRIFTLOOP_").lower(): v for k, v in OURS[service]["environment"].items()}
    )


def test_http_services_listen_beyond_loopback_and_publish_their_port() -> None:
    ingest = _settings_of("ingest")
    assert ingest.ingest_host == "0.0.0.0"
    assert f"{ingest.ingest_port}:{ingest.ingest_port}" in OURS["ingest"]["ports"]
    registry_port = _settings_of("registry").registry_url.rsplit(":", 1)[1]
    assert f"{registry_port}:{registry_port}" in OURS["registry"]["ports"]
