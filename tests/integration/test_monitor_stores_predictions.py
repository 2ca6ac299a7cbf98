"""Events produced with aiokafka are consumed by the monitor's Faust agents and land as ClickHouse rows, once."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared import wire
from shared.clickhouse import clickhouse_client
from shared.infra.process import free_port
from shared.topics import topic_names
from tests.integration.monitor_worker import monitor_settings, produce, start_monitor, wait_for

pytestmark = pytest.mark.integration


def _predictions(n: int, offset: int = 0) -> list[wire.PredictionWire]:
    return [
        wire.PredictionWire(
            model_name=f"model-{i % 3}",
            model_version="1",
            prediction_id=f"p-{i}",
            features={"age": 30 + i % 50, "plan": "pro" if i % 2 else "free", "income": None},
            prediction=i % 2,
            probabilities={"0": 0.4, "1": 0.6},
            latency_ms=1.5,
        )
        for i in range(offset, offset + n)
    ]


def _count(client: Any, table: str, final: bool = True) -> int:
    try:
        return int(client.command(f"SELECT count() FROM {table}{' FINAL' if final else ''}"))
    except Exception:  # the worker has not created its tables yet
        return -1


def test_produced_predictions_and_labels_land_in_clickhouse_once(
    kafka: Any, clickhouse_server: Any, tmp_path: Path
) -> None:
    settings = monitor_settings(kafka, clickhouse_server, tmp_path)
    topics = topic_names(settings.topic_prefix)
    events = _predictions(500)
    produce(settings, topics.predictions, events)
    labels = [
        wire.LabelWire(model_name=e.model_name, prediction_id=e.prediction_id, label=1) for e in events[:100]
    ]
    produce(settings, topics.labels, labels)

    web_port = free_port()
    worker = start_monitor(settings, tmp_path / "monitor.log", web_port=web_port)
    try:
        client = clickhouse_client(settings)
        wait_for(
            lambda: _count(client, "predictions") == 500 and _count(client, "labels") == 100,
            90,
            "rows",
            worker.log_path,
        )
        row = client.query(
            "SELECT model_name, num_features['age'], cat_features['plan'], missing_features, prediction "
            "FROM predictions WHERE prediction_id = 'p-7'"
        ).result_rows
        assert row == [("model-1", 37.0, "pro", ["income"], "1")]
        base = f"http://127.0.0.1:{web_port}"
        assert httpx.get(f"{base}/health", timeout=5).json()["status"] == "ok"
        metrics = httpx.get(f"{base}/metrics", timeout=5).text
        assert 'driftloop_monitor_events_stored_total{topic="predictions"} 500.0' in metrics
        assert 'driftloop_monitor_events_stored_total{topic="labels"} 100.0' in metrics
    finally:
        worker.stop()


def test_killed_worker_restarts_without_loss_or_double_counting(
    kafka: Any, clickhouse_server: Any, tmp_path: Path
) -> None:
    settings = monitor_settings(
        kafka, clickhouse_server, tmp_path, monitor_batch_size=500, monitor_batch_seconds=0.2
    )
    topics = topic_names(settings.topic_prefix)
    total = 30_000
    produce(settings, topics.predictions, _predictions(total))

    worker = start_monitor(settings, tmp_path / "monitor-1.log")
    client = clickhouse_client(settings)
    try:
        wait_for(
            lambda: _count(client, "predictions", final=False) > 0, 90, "the first rows", worker.log_path
        )
    finally:
        os.killpg(
            worker.pid, signal.SIGKILL
        )  # no clean shutdown: offsets of in-flight batches are not committed
        worker.proc.wait(timeout=10)
    stored_at_kill = _count(client, "predictions", final=False)
    assert 0 < stored_at_kill < total, "the worker must be killed mid-stream"

    restarted = start_monitor(settings, tmp_path / "monitor-2.log")
    try:
        wait_for(
            lambda: _count(client, "predictions") == total,
            300,
            lambda: (
                f"{total} distinct rows (have {_count(client, 'predictions')}, "
                f"{_count(client, 'predictions', final=False)} with duplicates)"
            ),
            restarted.log_path,
        )
        assert _count(client, "predictions") == total
        assert int(client.command("SELECT uniqExact(event_id) FROM predictions")) == total
    finally:
        restarted.stop()
