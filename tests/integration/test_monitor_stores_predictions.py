"""Events produced with aiokafka are consumed by monitor workers and land as ClickHouse rows, once."""

from __future__ import annotations

import json
import os
import signal
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka.partitioner import DefaultPartitioner

from driftloop.process import free_port
from services.monitor.domain.tables import MODEL_EVENTS
from shared import codec, wire
from shared.clickhouse import clickhouse_client
from shared.events import AliasAction, AliasChanged, EventDeadLettered, ModelVersionRegistered
from shared.kafka.admin import create_topics
from shared.topics import topic_names
from tests.integration.monitor_worker import (
    monitor_settings,
    produce,
    produce_raw,
    start_monitor,
    wait_for,
)

pytestmark = pytest.mark.integration


def _predictions(
    n: int, offset: int = 0, models: int | list[str] = 3, version: str = "1"
) -> list[wire.PredictionWire]:
    names = models if isinstance(models, list) else [f"model-{i}" for i in range(models)]
    return [
        wire.PredictionWire(
            model_name=names[i % len(names)],
            model_version=version,
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


def test_dead_letters_and_registry_announcements_become_rows(
    kafka: Any, clickhouse_server: Any, tmp_path: Path
) -> None:
    settings = monitor_settings(kafka, clickhouse_server, tmp_path)
    topics = topic_names(settings.topic_prefix)
    refused = EventDeadLettered(
        model_name="churn",
        source="http:ingest",
        reason="unknown_model",
        detail="no model 'churn'",
        original=b"{}",
    )
    moved = AliasChanged(
        model_name="churn",
        alias="production",
        action=AliasAction.MOVED,
        version=4,
        previous_version=3,
        changed_by="ci",
    )
    produce_raw(settings, topics.dead_letter, [(b"churn", codec.encode(refused))])
    produce_raw(settings, topics.model_events, [(b"churn", codec.encode(moved))])
    produce_raw(settings, topics.predictions, [(b"churn", b"{not json")])

    worker = start_monitor(settings, tmp_path / "monitor.log")
    try:
        client = clickhouse_client(settings)
        wait_for(lambda: _count(client, "dead_letters") == 2, 90, "two dead letters", worker.log_path)
        wait_for(lambda: _count(client, "model_events") == 1, 30, "the alias move", worker.log_path)
        letters = client.query(
            "SELECT source, reason, original, source_offset FROM dead_letters FINAL ORDER BY source"
        ).result_rows
        assert letters == [
            ("http:ingest", "unknown_model", "{}", None),
            (f"topic:{topics.predictions}", "invalid_json", "{not json", 0),
        ]
        served = client.query(
            "SELECT version, previous_version, action, actor FROM model_events FINAL WHERE alias = 'production'"
        ).result_rows
        assert served == [(4, 3, "moved", "ci")]
    finally:
        worker.stop()


def test_an_older_model_events_table_gains_the_version_columns_and_registrations_fill_them(
    kafka: Any, clickhouse_server: Any, tmp_path: Path
) -> None:
    settings = monitor_settings(kafka, clickhouse_server, tmp_path)
    topics = topic_names(settings.topic_prefix)
    client = clickhouse_client(settings, create_database=True)
    old = replace(MODEL_EVENTS, columns=MODEL_EVENTS.columns[: -len(MODEL_EVENTS.added)], added=())
    client.command(old.ddl())  # as a release before versions' artifacts, metrics and lineage made it
    at = datetime(2026, 3, 1, tzinfo=UTC)
    before = [uuid.uuid4(), "model_version_registered", "churn", 1, "", "", None, "alice", at, at]
    client.insert("model_events", [before], column_names=old.column_names)
    registered = ModelVersionRegistered(
        model_name="churn",
        version=2,
        artifact_uri="s3://m/churn/2",
        artifact_sha256="2" * 64,
        created_by="trainer",
        artifact_size=2048,
        metrics={"accuracy": 0.9},
        lineage={"parent_version": 1, "dataset_sha256": "d" * 64},
    )
    produce_raw(settings, topics.model_events, [(b"churn", codec.encode(registered))])
    worker = start_monitor(settings, tmp_path / "monitor.log")
    try:
        wait_for(lambda: _count(client, "model_events") == 2, 90, "the registration", worker.log_path)
        rows = client.query(
            "SELECT version, actor, artifact_uri, artifact_sha256, artifact_size, metrics,"
            " JSONExtract(lineage, 'parent_version', 'Nullable(UInt32)'), JSONExtractString(lineage, 'dataset_sha256')"
            " FROM model_events FINAL ORDER BY version"
        ).result_rows
        assert rows == [
            (1, "alice", "", "", None, {}, None, ""),  # the old row reads the defaults
            (2, "trainer", "s3://m/churn/2", "2" * 64, 2048, {"accuracy": 0.9}, 1, "d" * 64),
        ]
    finally:
        worker.stop()


def _models_on_every_partition(partitions: int, per_partition: int) -> list[str]:
    """Model names that the producers' key hashing spreads evenly over the partitions."""
    choose = DefaultPartitioner()
    found: dict[int, list[str]] = {p: [] for p in range(partitions)}
    i = 0
    while any(len(names) < per_partition for names in found.values()):
        name = f"model-{i}"
        spot = found[choose(name.encode(), list(range(partitions)), list(range(partitions)))]
        if len(spot) < per_partition:
            spot.append(name)
        i += 1
    return [name for names in found.values() for name in names]


def _healthy_partitions(port: int) -> int:
    try:
        body = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json()
    except httpx.HTTPError:
        return 0
    return int(body.get("assigned_partitions", 0)) if body.get("status") == "ok" else 0


def _checkpoint_owners(client: Any) -> dict[str, tuple[str, list[str]]]:
    """Per model: the worker of its newest checkpoint and the versions that checkpoint knows."""
    rows = client.query(
        "SELECT model_name, argMax(worker, source_offset), argMax(versions, source_offset) "
        "FROM monitor_progress GROUP BY model_name"
    ).result_rows
    return {model: (worker, sorted(json.loads(versions))) for model, worker, versions in rows}


def test_workers_share_models_by_partition_and_a_survivor_resumes_a_dead_workers_models(
    kafka: Any, clickhouse_server: Any, tmp_path: Path
) -> None:
    settings = monitor_settings(kafka, clickhouse_server, tmp_path, monitor_session_timeout_seconds=6)
    topics = topic_names(settings.topic_prefix)
    create_topics(settings.kafka_bootstrap, topics.all(), 3, 1)
    models = _models_on_every_partition(3, per_partition=4)
    produce(settings, topics.predictions, _predictions(12, models=models))  # each model has a checkpoint
    ports = [free_port(), free_port()]
    workers = [
        start_monitor(settings, tmp_path / f"monitor-{i}.log", web_port=p) for i, p in enumerate(ports)
    ]
    client = clickhouse_client(settings)
    try:
        wait_for(lambda: all(_healthy_partitions(p) > 0 for p in ports), 90, "both workers owning partitions")
        first = 12 + produce(settings, topics.predictions, _predictions(12_000, offset=12, models=models))
        wait_for(lambda: _count(client, "predictions") == first, 120, f"{first} rows", workers[0].log_path)
        wait_for(  # a batch's checkpoint is saved just after its rows
            lambda: len({worker for worker, _ in _checkpoint_owners(client).values()}) == 2,
            60,
            "each worker checkpointing the models of its partitions",
        )
        owners = _checkpoint_owners(client)
        assert len(owners) == 12
        healths = [httpx.get(f"http://127.0.0.1:{p}/health", timeout=5).json() for p in ports]
        owned = [{p for p in h["partitions"] if p.startswith(topics.predictions)} for h in healths]
        assert not owned[0] & owned[1] and owned[0] | owned[1] == {
            f"{topics.predictions}-{i}" for i in range(3)
        }, "each worker names the partitions it owns"
        for health, worker in zip(healths, workers, strict=True):  # and the models it judges
            assert set(health["models"]) == {
                m for m, (w, _) in owners.items() if w.endswith(f":{worker.pid}")
            }

        os.killpg(workers[0].pid, signal.SIGKILL)
        workers[0].proc.wait(timeout=10)
        orphaned = {m for m, (w, _) in owners.items() if w.endswith(f":{workers[0].pid}")}
        later = _predictions(6_000, offset=first, models=models, version="2")
        total = first + produce(settings, topics.predictions, later)
        wait_for(lambda: _count(client, "predictions") == total, 180, f"{total} rows", workers[1].log_path)
        wait_for(
            lambda: all(w.endswith(f":{workers[1].pid}") for w, _ in _checkpoint_owners(client).values()),
            60,
            "the survivor checkpointing every model",
        )
        after = _checkpoint_owners(client)
        assert orphaned and all(after[m][1] == ["1", "2"] for m in orphaned), (
            "the survivor resumed from the dead worker's checkpoints instead of starting over"
        )
        assert _count(client, "predictions", final=False) >= total
    finally:
        for w in workers:
            w.stop()
