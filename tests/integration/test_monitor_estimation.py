"""A real monitor worker estimates a window's performance before any label exists (``estimated_*`` rows),
and the realized metric joins it in ``estimation_error`` once the window's labels arrived and were judged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from driftloop.bench import estimate
from services.monitor.domain.profiles import profiles_file_json
from shared.clickhouse import clickhouse_client
from shared.kafka.admin import create_topics
from shared.topics import topic_names
from tests.integration.monitor_worker import monitor_settings, produce, start_monitor, wait_for

pytestmark = pytest.mark.integration

PER_WINDOW = 1_000
LABEL_WAIT_S = 300


def _rows(client: Any, sql: str, **params: Any) -> list[Any]:
    try:
        return list(client.query(sql, parameters=params).result_rows)
    except Exception:  # the worker has not created the tables yet
        return []


def test_estimates_come_before_labels_and_the_realized_metric_joins_them(
    kafka: Any, clickhouse_server: Any, tmp_path: Any
) -> None:
    settings = monitor_settings(
        kafka,
        clickhouse_server,
        tmp_path,
        monitor_window_seconds=60,
        monitor_allowed_lateness_seconds=0,
        monitor_label_wait_seconds=LABEL_WAIT_S,
    )
    topics = topic_names(settings.topic_prefix)
    create_topics(settings.kafka_bootstrap, topics.all(), 2, 1)
    x, y = estimate.reference(seed=5, rows=4_000)
    model, profile = estimate.train(x, y, estimate.FEATURES)
    assert profile.estimator is not None and profile.estimator.calibration
    stream = estimate.synthetic("stationary", 9, 0, seed=6)
    stream = estimate.Stream("est-it", stream.x, stream.y, None, stream.features, rows_per_window=PER_WINDOW)
    profiles = tmp_path / "profiles.json"
    profiles.write_text(profiles_file_json({"est-it": {"1": profile}}))
    start = (datetime.now(UTC) - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
    predictions, labels, _ = estimate.events(stream, model, start)
    predictions_list, labels_list = list(predictions), list(labels)
    first_window = start + timedelta(minutes=1)
    worker = start_monitor(settings, tmp_path / "monitor.log", profiles=profiles)
    client = clickhouse_client(settings)
    try:
        # three minutes of predictions, no label: windows 0 and 1 close, their labels are not due yet
        produce(settings, topics.predictions, predictions_list[: 3 * PER_WINDOW])
        estimated = "SELECT metric, value FROM window_metrics FINAL WHERE model_name = 'est-it' AND window_start = {w:DateTime64(3, 'UTC')}"
        wait_for(
            lambda: any(m == "estimated_accuracy" for m, _ in _rows(client, estimated, w=start)),
            120,
            "the first window's estimate",
            worker.log_path,
        )
        metrics = dict(_rows(client, estimated, w=start))
        assert {
            "estimated_accuracy_low",
            "estimated_accuracy_high",
            "estimated_f1",
            "estimated_roc_auc",
        } <= set(metrics)
        assert (
            metrics["estimated_accuracy_low"]
            < metrics["estimated_accuracy"]
            < metrics["estimated_accuracy_high"]
        )
        assert "accuracy" not in metrics  # no label yet
        pending = _rows(
            client,
            "SELECT realized, abs_error FROM estimation_error WHERE model_name = 'est-it' AND metric = 'accuracy' "
            "AND window_start = {w:DateTime64(3, 'UTC')}",
            w=start,
        )
        assert pending == [(None, None)]

        # the labels of the first windows arrive, then enough later predictions for their label wait to pass
        produce(settings, topics.labels, labels_list[: 2 * PER_WINDOW])
        wait_for(
            lambda: _rows(client, "SELECT count() FROM labels FINAL")[0][0] == 2 * PER_WINDOW,
            60,
            "labels stored",
            worker.log_path,
        )
        produce(settings, topics.predictions, predictions_list[3 * PER_WINDOW :])
        joined = (
            "SELECT window_start, estimated, realized, abs_error FROM estimation_error "
            "WHERE model_name = 'est-it' AND metric = 'accuracy' AND realized IS NOT NULL ORDER BY window_start"
        )
        wait_for(
            lambda: len(_rows(client, joined)) == 2, 180, "realized accuracy of two windows", worker.log_path
        )
        rows = _rows(client, joined)
        assert [r[0].replace(tzinfo=UTC) for r in rows] == [start, first_window]
        for _, est, realized, error in rows:
            assert error == pytest.approx(abs(est - realized))
            assert error < 0.06  # a calibrated model on stationary data: within sampling noise of 1,000 rows
        # no estimated-performance alarm on a stationary stream
        alarms = _rows(
            client, "SELECT count() FROM drift_events FINAL WHERE has(kinds, 'estimated_performance')"
        )
        assert alarms == [(0,)]
    finally:
        worker.stop()
