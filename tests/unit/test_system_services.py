"""The service table: start order, addresses and options taken from the settings, no process started."""

from __future__ import annotations

import pytest

from driftloop.infra.services import Health, find_service, service_table
from driftloop.infra.stack import Component
from driftloop.process import InfraError
from shared.settings import Settings


def test_services_start_after_what_they_call() -> None:
    names = [spec.name for spec in service_table(Settings())]
    assert names == ["registry", "ingest", "monitor", "trainer", "serving", "advisor", "console"]


def test_addresses_and_arguments_come_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLOOP_MONITOR_WEB_PORT", "7001")
    monkeypatch.setenv("DRIFTLOOP_SERVING_PORT", "7002")
    settings = Settings(registry_url="http://127.0.0.1:7000", ingest_port=7003)
    table = service_table(settings, serving_model="churn")
    assert find_service(table, "registry").address == "http://127.0.0.1:7000"
    assert find_service(table, "ingest").address == "http://127.0.0.1:7003"
    monitor = find_service(table, "monitor")
    assert monitor.args == ("--web-port", "7001") and monitor.health is Health.HTTP
    assert set(monitor.needs) == {Component.KAFKA, Component.CLICKHOUSE}
    serving = find_service(table, "serving")
    assert serving.args[:2] == ("--model", "churn") and serving.port == 7002
    assert serving.health is Health.LISTENING  # no model registered yet is still a running server


def test_a_registry_on_another_machine_is_only_probed() -> None:
    table = service_table(Settings(registry_url="http://registry.internal:8000"))
    assert find_service(table, "registry").external
    assert not find_service(service_table(Settings()), "registry").external


def test_s3_artifacts_make_the_registry_need_the_s3_server() -> None:
    registry = find_service(service_table(Settings(artifact_root="s3://bucket/models")), "registry")
    assert Component.S3 in registry.needs


def test_unknown_service_lists_the_known_ones() -> None:
    with pytest.raises(InfraError, match="registry, ingest, monitor, trainer, serving"):
        find_service(service_table(Settings()), "nope")
