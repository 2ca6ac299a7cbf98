"""A model's work per window stays flat however many versions it had: retired versions stop being judged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shared import wire
from shared.clickhouse import clickhouse_client
from shared.kafka.admin import create_topics
from shared.topics import topic_names
from tests.integration.monitor_worker import monitor_settings, produce, start_monitor, wait_for

pytestmark = pytest.mark.integration
WINDOW_S, PER_VERSION_WINDOWS, IDLE = 10, 3, 2


def test_ten_successive_versions_cost_no_more_per_window_than_one(
    kafka: Any, clickhouse_server: Any, tmp_path: Path
) -> None:
    settings = monitor_settings(
        kafka,
        clickhouse_server,
        tmp_path,
        monitor_window_seconds=WINDOW_S,
        monitor_allowed_lateness_seconds=0,
        monitor_label_wait_seconds=0,
        monitor_idle_windows=IDLE,
    )
    topics = topic_names(settings.topic_prefix)
    create_topics(settings.kafka_bootstrap, topics.all(), 2, 1)
    start = (datetime.now(UTC) - timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    span = timedelta(seconds=WINDOW_S * PER_VERSION_WINDOWS)
    events = [
        wire.PredictionWire(
            model_name="retiring",
            model_version=str(version),
            prediction_id=f"{version}-{i}",
            occurred_at=start + (version - 1) * span + i * span / 30,
            features={"x": float(i)},
            prediction=i % 2,
        )
        for version in range(1, 11)
        for i in range(30 if version < 10 else 60)  # the last version keeps serving
    ]
    produce(settings, topics.predictions, events)
    worker = start_monitor(settings, tmp_path / "monitor.log")
    client = clickhouse_client(settings)

    def judged() -> list[tuple[datetime, int]]:
        try:
            return client.query(
                "SELECT window_start, uniqExact(model_version) FROM window_metrics FINAL "
                "WHERE metric = 'count' GROUP BY window_start ORDER BY window_start"
            ).result_rows
        except Exception:
            return []

    try:
        last_window = start + 9 * span + 2 * span - timedelta(seconds=WINDOW_S)
        wait_for(
            lambda: (
                bool(judged())
                and judged()[-1][0].replace(tzinfo=UTC) >= last_window - timedelta(seconds=WINDOW_S)
            ),
            90,
            lambda: f"the last version's windows judged: {judged()[-3:]}",
            worker.log_path,
        )
        per_window = [n for _, n in judged()]
        # each window: the version serving it, plus at most the IDLE empty windows of the one before
        assert max(per_window) <= 2, per_window
        assert len(per_window) == 9 * PER_VERSION_WINDOWS + 2 * PER_VERSION_WINDOWS - 1
        paused = client.query(
            "SELECT model_version FROM window_metrics FINAL WHERE metric = 'judging_paused' ORDER BY model_version"
        ).result_rows
        assert sorted(int(v) for (v,) in paused) == list(range(1, 10))
    finally:
        worker.stop()
