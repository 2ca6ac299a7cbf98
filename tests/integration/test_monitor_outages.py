"""The monitor waits for ClickHouse however long it is away, says so on /health, and resumes by itself."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from driftloop.clickhouse_server import server_url, start_clickhouse_server
from driftloop.process import free_port
from shared import wire
from shared.clickhouse import clickhouse_client
from shared.kafka.admin import create_topics
from shared.topics import topic_names
from tests.integration.monitor_worker import monitor_settings, produce, start_monitor, wait_for

pytestmark = pytest.mark.integration


@dataclass
class _Server:
    url: str


def _health(port: int) -> tuple[int, dict[str, Any]]:
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=3)
    except httpx.HTTPError:
        return 0, {}
    return response.status_code, response.json()


def _stored(settings: Any) -> int:
    try:
        return int(
            clickhouse_client(settings, create_database=False).command(
                "SELECT count() FROM predictions FINAL"
            )
        )
    except Exception:
        return -1


def _events(n: int, offset: int = 0) -> list[wire.PredictionWire]:
    return [
        wire.PredictionWire(
            model_name="m",
            model_version="1",
            prediction_id=f"p-{offset + i}",
            features={"x": 1.0},
            prediction=1,
        )
        for i in range(n)
    ]


def test_a_monitor_started_without_clickhouse_waits_then_stores_and_survives_a_hang(
    kafka: Any, tmp_path: Path
) -> None:
    port = free_port()
    settings = monitor_settings(kafka, _Server(server_url("127.0.0.1", port)), tmp_path)
    topics = topic_names(settings.topic_prefix)
    create_topics(settings.kafka_bootstrap, topics.all(), 2, 1)
    produce(settings, topics.predictions, _events(200))
    web = free_port()
    worker = start_monitor(settings, tmp_path / "monitor.log", web_port=web)
    server = None
    try:
        # no ClickHouse: the worker stays up, 503 degraded, naming what it waits for
        wait_for(
            lambda: _health(web)[1].get("status") == "degraded", 60, "a degraded /health", worker.log_path
        )
        status, body = _health(web)
        assert status == 503 and any("ClickHouse" in what for what in body["waiting_for"]), body
        assert worker.proc.poll() is None
        server = start_clickhouse_server("127.0.0.1", port, tmp_path / "ch", tmp_path / "ch.log")
        wait_for(
            lambda: _stored(settings) == 200,
            90,
            "the backlog stored once ClickHouse is there",
            worker.log_path,
        )
        wait_for(lambda: _health(web)[0] == 200, 30, "a healthy /health", worker.log_path)

        # the server hangs (SIGSTOP) while events arrive: the worker waits, then stores them
        os.kill(server.pid, signal.SIGSTOP)
        try:
            produce(settings, topics.predictions, _events(300, offset=200))
            wait_for(
                lambda: _health(web)[1].get("status") == "degraded",
                90,
                "degraded while it hangs",
                worker.log_path,
            )
        finally:
            os.kill(server.pid, signal.SIGCONT)
        wait_for(lambda: _stored(settings) == 500, 120, "everything stored after the hang", worker.log_path)
        wait_for(lambda: _health(web)[0] == 200, 30, "healthy again", worker.log_path)
        assert worker.proc.poll() is None
        log = worker.log_path.read_text()
        assert log.count("unavailable") <= 4, "one line when a dependency goes, not one per retry"
    finally:
        worker.stop()
        if server is not None:
            server.stop()
