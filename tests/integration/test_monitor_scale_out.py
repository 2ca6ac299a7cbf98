"""Three monitor workers share 24 models over six partitions; one is killed mid-stream and nothing is lost or
counted twice: its models move to the other two, which resume them from their checkpoints."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka.partitioner import DefaultPartitioner

from driftloop.bench.monitor_scale import models_spread_over
from driftloop.process import free_port
from shared import wire
from shared.clickhouse import clickhouse_client
from shared.kafka.admin import create_topics
from shared.topics import topic_names
from tests.integration.monitor_worker import monitor_settings, produce, start_monitor, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

PARTITIONS = 6
PER_MODEL = 1_000
"""Events per model, 0.25 s apart in event time: 250 s, windows of 60 s. The first half (version 1) closes
windows 0 and 1; the second half (version 2) moves the watermark to 249.75 s, closing windows 2 and 3."""
SPACING = timedelta(seconds=0.25)
CHUNKS = 10
"""The second half is sent in chunks, so the worker is killed while events still arrive."""


def _events(
    models: list[str], start: datetime, first: int, last: int, version: str
) -> list[wire.PredictionWire]:
    return [
        wire.PredictionWire(
            model_name=model,
            model_version=version,
            prediction_id=f"{model}-{i}",
            occurred_at=start + i * SPACING,
            features={"x": float(i % 7), "plan": "pro" if i % 2 else "free"},
            prediction=i % 2,
        )
        for i in range(first, last)
        for model in models
    ]


def _health(port: int) -> dict[str, Any]:
    try:
        return dict(httpx.get(f"http://127.0.0.1:{port}/health", timeout=3).json())
    except (httpx.HTTPError, ValueError):
        return {}


def _predictions_partitions(health: dict[str, Any], topic: str) -> set[int]:
    """The predictions partitions a worker owns, while its /health says ok."""
    if health.get("status") != "ok":
        return set()
    return {int(n) for t, _, n in (p.rpartition("-") for p in health["partitions"]) if t == topic}


def _count(client: Any, final: bool = True) -> int:
    try:
        return int(client.command(f"SELECT count() FROM predictions{' FINAL' if final else ''}"))
    except Exception:  # the tables are not there yet
        return -1


def _judged_counts(client: Any) -> dict[tuple[str, str, datetime], int]:
    """The event count each non-empty judged window was given (once per window: FINAL)."""
    rows = client.query(
        "SELECT model_name, model_version, window_start, value FROM window_metrics FINAL "
        "WHERE metric = 'count' AND value > 0"
    ).result_rows
    return {(m, v, w.replace(tzinfo=UTC)): int(n) for m, v, w, n in rows}


def _stored_per_window(client: Any, closed_before: datetime) -> dict[tuple[str, str, datetime], int]:
    """Events stored per model, version and 60 s window, for the windows the watermark closed."""
    rows = client.query(
        "SELECT model_name, model_version, toStartOfInterval(occurred_at, INTERVAL 60 SECOND) AS w, count() "
        "FROM predictions FINAL GROUP BY model_name, model_version, w HAVING w + INTERVAL 60 SECOND <= {end:DateTime64(3, 'UTC')}",
        parameters={"end": closed_before},
    ).result_rows
    return {(m, v, w.replace(tzinfo=UTC)): int(n) for m, v, w, n in rows}


def _checkpoints(client: Any) -> dict[str, tuple[str, list[str]]]:
    """Per model: the worker of its newest checkpoint and the versions that checkpoint knows."""
    rows = client.query(
        "SELECT model_name, argMax(worker, source_offset), argMax(versions, source_offset) "
        "FROM monitor_progress GROUP BY model_name"
    ).result_rows
    return {model: (worker, sorted(json.loads(versions))) for model, worker, versions in rows}


def test_three_workers_share_the_models_and_a_killed_ones_move_on_without_loss_or_double_count(
    kafka: Any, clickhouse_server: Any, tmp_path: Path
) -> None:
    settings = monitor_settings(
        kafka,
        clickhouse_server,
        tmp_path,
        kafka_partitions=PARTITIONS,
        monitor_session_timeout_seconds=6,
        monitor_batch_size=500,
        monitor_batch_seconds=0.2,
        monitor_window_seconds=60,
        monitor_allowed_lateness_seconds=0,
    )
    topics = topic_names(settings.topic_prefix)
    create_topics(settings.kafka_bootstrap, topics.all(), PARTITIONS, 1)
    models = models_spread_over(PARTITIONS, per_partition=4)
    every = list(range(PARTITIONS))
    partition_of = {m: DefaultPartitioner()(m.encode(), every, every) for m in models}
    start = (datetime.now(UTC) - timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
    ports = [free_port() for _ in range(3)]
    workers = [
        start_monitor(settings, tmp_path / f"monitor-{i}.log", web_port=p) for i, p in enumerate(ports)
    ]
    client = clickhouse_client(settings)
    try:
        # three workers settle on two partitions each: the models are shared
        wait_for(
            lambda: all(len(_predictions_partitions(_health(p), topics.predictions)) == 2 for p in ports),
            120,
            "three workers owning two events partitions each",
            workers[0].log_path,
        )
        half = PER_MODEL // 2
        first = produce(settings, topics.predictions, _events(models, start, 0, half, "1"))
        wait_for(lambda: _count(client) == first, 120, f"{first} rows", workers[0].log_path)
        wait_for(  # each batch's checkpoint is saved just after its rows
            lambda: sorted(m for p in ports for m in _health(p).get("models", [])) == sorted(models),
            60,
            "every model judged by one worker",
        )
        healths = [_health(p) for p in ports]
        judged = [set(h["models"]) for h in healths]
        for health, mine in zip(healths, judged, strict=True):
            owned = _predictions_partitions(health, topics.predictions)
            assert len(mine) == 8 and {partition_of[m] for m in mine} == owned, (
                "a worker judges exactly the models of its partitions"
            )
        assert not (judged[0] & judged[1] or judged[0] & judged[2] or judged[1] & judged[2])
        orphaned = judged[0]
        checkpointed = _checkpoints(client)
        assert all(checkpointed[m][0].endswith(f":{workers[0].pid}") for m in orphaned)

        # the second half arrives in chunks; the first worker dies (kill -9) while it does
        chunk = half // CHUNKS
        sent = [first]

        def send_second_half() -> None:
            for i in range(CHUNKS):
                lo = half + i * chunk
                sent.append(
                    produce(settings, topics.predictions, _events(models, start, lo, lo + chunk, "2"))
                )
                time.sleep(0.3)

        sender = threading.Thread(target=send_second_half)
        sender.start()
        try:
            wait_for(
                lambda: _count(client, final=False) >= first + 2 * chunk * len(models),
                60,
                "the stream flowing",
            )
            os.killpg(workers[0].pid, signal.SIGKILL)
            workers[0].proc.wait(timeout=10)
            stored_at_kill = _count(client)
        finally:
            sender.join()
        total = sum(sent)
        assert total == PER_MODEL * len(models) and stored_at_kill < total, "killed mid-stream"

        # the survivors take the six partitions and the dead worker's models, and finish the stream
        wait_for(lambda: _count(client) == total, 180, f"{total} rows", workers[1].log_path)
        end = start + PER_MODEL * SPACING  # the watermark: windows ending before it are closed
        expected = _stored_per_window(client, end)
        assert len(expected) == len(models) * 5, "v1 windows 0-2 and v2 windows 2-3 of every model"
        wait_for(
            lambda: _judged_counts(client) == expected,
            120,
            lambda: (
                f"every closed window judged with its stored count ({len(_judged_counts(client))}/{len(expected)})"
            ),
            workers[1].log_path,
        )
        survivors = [_health(p) for p in ports[1:]]
        assert sorted(p for h in survivors for p in _predictions_partitions(h, topics.predictions)) == every
        assert orphaned <= {m for h in survivors for m in h["models"]}, "the dead worker's models moved"

        # nothing lost, nothing counted twice
        per_model = dict(
            client.query("SELECT model_name, count() FROM predictions FINAL GROUP BY model_name").result_rows
        )
        assert per_model == {m: PER_MODEL for m in models}
        assert int(client.command("SELECT uniqExact(event_id) FROM predictions")) == total
        twice = client.query(
            "SELECT model_name, model_version, window_start, groupUniqArray(value) FROM window_metrics "
            "WHERE metric = 'count' GROUP BY model_name, model_version, window_start HAVING uniqExact(value) > 1"
        ).result_rows
        assert twice == [], "no window judged twice with different counts"
        after = _checkpoints(client)
        pids = (workers[1].pid, workers[2].pid)
        assert all(
            after[m][0].endswith((f":{pids[0]}", f":{pids[1]}")) and after[m][1] == ["1", "2"]
            for m in orphaned
        ), "the survivors resumed the dead worker's models from their checkpoints (version 1 still known)"
    finally:
        for w in workers:
            w.stop()
