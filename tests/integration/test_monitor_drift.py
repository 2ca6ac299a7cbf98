"""The monitor on the real stack: quiet on stationary traffic, one alert naming the shifted features,
an alert when the error rate rises, and every number behind the decisions queryable in ClickHouse."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from driftloop.bench import synthetic
from services.monitor.domain.profiles import profiles_file_json
from shared import codec
from shared.clickhouse import clickhouse_client
from shared.events import DriftDetected, DriftKind
from shared.kafka.admin import create_topics
from shared.settings import Settings
from shared.topics import topic_names
from tests.integration.ingest_helpers import read_topic
from tests.integration.monitor_worker import monitor_settings, produce, start_monitor, wait_for

pytestmark = pytest.mark.integration

WINDOW = timedelta(seconds=60)
CALM = synthetic.StreamSpec("calm", seed=1)
SHIFT = synthetic.StreamSpec("shift", seed=2, shifted=("num_3", "cat_1"), change_at=40_000)
PERF = synthetic.StreamSpec("perf", numeric=4, categorical=1, seed=3, change_at=10_000)
SIZES = {"calm": 200_000, "shift": 80_000, "perf": 20_000}
SPACING = {"calm": WINDOW / 10_000, "shift": WINDOW / 4_000, "perf": WINDOW / 1_000}


@dataclass
class Run:
    settings: Settings
    start: datetime
    client: Any
    drift_events: list[Any]


def _windows(client: Any, model: str, metric: str = "count") -> int:
    try:
        return int(
            client.command(
                "SELECT count() FROM window_metrics FINAL WHERE model_name = {m:String} AND metric = {x:String}",
                parameters={"m": model, "x": metric},
            )
        )
    except Exception:
        return -1


@pytest.fixture(scope="module")
def run(kafka: Any, clickhouse_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    tmp = tmp_path_factory.mktemp("monitor-drift")
    settings = monitor_settings(
        kafka,
        clickhouse_server,
        tmp,
        monitor_window_seconds=60,
        monitor_allowed_lateness_seconds=0,
        monitor_label_wait_seconds=0,
    )
    topics = topic_names(settings.topic_prefix)
    create_topics(settings.kafka_bootstrap, topics.all(), 2, 1)
    profiles = tmp / "profiles.json"
    profiles.write_text(
        profiles_file_json(
            {
                "calm": {"1": synthetic.reference_profile(CALM)},
                "shift": {"1": synthetic.reference_profile(SHIFT)},
                "perf": {"1": synthetic.reference_profile(PERF, accuracy=0.9)},
            }
        )
    )
    start = (datetime.now(UTC) - timedelta(hours=6)).replace(minute=0, second=0, microsecond=0)
    worker = start_monitor(settings, tmp / "monitor.log", profiles=profiles)
    client = clickhouse_client(settings)
    try:
        labels = list(synthetic.labels(PERF, SIZES["perf"], start, SPACING["perf"], 0.9, 0.6))
        produce(settings, topics.labels, labels)
        wait_for(lambda: _label_count(client) == len(labels), 120, "labels stored", worker.log_path)
        for spec in (CALM, SHIFT, PERF):
            produce(
                settings,
                topics.predictions,
                synthetic.predictions(spec, SIZES[spec.model_name], start, SPACING[spec.model_name]),
            )
        for name, size in SIZES.items():  # the last window stays open: no later event closes it
            for judged in (
                "count",
                "label_coverage",
            ):  # a batch judges its data windows, then its label windows
                wait_for(
                    lambda n=name, j=judged: _windows(client, n, j) >= 19,
                    300,
                    f"{name}'s windows judged ({judged})",
                    worker.log_path,
                )
            wait_for(
                lambda n=name, k=size: _stored(client, n) == k, 60, f"{name}'s events stored", worker.log_path
            )
        # a window's rows are written before its announcement reaches the topic: wait for all of them
        announced = int(client.command("SELECT count() FROM drift_events FINAL"))
        payloads = read_topic(
            settings.kafka_bootstrap, topics.drift_events, expected=announced, deadline_s=60
        )
        events = [codec.decode_any(p) for p in payloads]
        assert len({e.event_id for e in events}) >= announced, f"{announced} drift events on the topic"
        # a 300,000-event backlog drained with batches in flight: no two requests ever shared a session
        log = worker.log_path.read_text()
        assert "concurrent queries" not in log and "ClickHouse unavailable" not in log
        yield Run(settings, start, client, events)
    finally:
        worker.stop()


def _stored(client: Any, model: str) -> int:
    return int(
        client.command(
            "SELECT count() FROM predictions FINAL WHERE model_name = {m:String}", parameters={"m": model}
        )
    )


def _label_count(client: Any) -> int:
    try:
        return int(client.command("SELECT count() FROM labels FINAL"))
    except Exception:
        return -1


def _detected(run: Run, model: str) -> list[DriftDetected]:
    return [e for e in run.drift_events if isinstance(e, DriftDetected) and e.model_name == model]


def test_stationary_stream_of_200k_events_raises_no_drift(run: Run) -> None:
    assert _detected(run, "calm") == []
    assert _windows(run.client, "calm") == 19
    assert _stored(run.client, "calm") == SIZES["calm"]


def test_shift_raises_one_drift_event_naming_only_the_shifted_features(run: Run) -> None:
    detected = _detected(run, "shift")
    assert len(detected) == 1, detected
    event = detected[0]
    assert event.kinds == [DriftKind.FEATURE]
    assert event.drifted_features == ["cat_1", "num_3"]
    change = run.start + SPACING["shift"] * (SHIFT.change_at or 0)
    assert event.window_start >= change, "no alert before the change point"
    assert event.windows_drifted >= 2 and {e.feature for e in event.evidence} == {"cat_1", "num_3"}
    assert all(e.drifted and e.p_value is not None and e.p_value < 0.01 for e in event.evidence)
    # the same decision, and the tests behind it, are queryable
    rows = run.client.query(
        "SELECT feature, countIf(drifted = 1) FROM drift_tests FINAL WHERE model_name = 'shift' AND test = 'ks' "
        "GROUP BY feature ORDER BY feature"
    ).result_rows
    drifted_windows = {feature: n for feature, n in rows}
    assert drifted_windows["num_3"] >= 5 and all(n == 0 for f, n in drifted_windows.items() if f != "num_3")
    stored = run.client.query(
        "SELECT drifted_features, evidence FROM drift_events FINAL WHERE model_name = 'shift'"
    ).result_rows
    assert stored[0][0] == ["cat_1", "num_3"] and json.loads(stored[0][1])


def test_rising_error_rate_raises_performance_drift(run: Run) -> None:
    detected = _detected(run, "perf")
    evidence = run.client.query(
        "SELECT window_start, test, statistic, threshold, drifted FROM drift_tests FINAL "
        "WHERE model_name = 'perf' AND test IN ('accuracy_drop', 'page_hinkley') ORDER BY window_start, test"
    ).result_rows
    stored = run.client.query(
        "SELECT event_type, kinds, window_end FROM drift_events FINAL WHERE model_name = 'perf'"
    )
    assert [e.kinds for e in detected] == [[DriftKind.PERFORMANCE]], (
        f"announced {stored.result_rows}; performance tests per window: "
        + "; ".join(f"{w:%H:%M} {t} {s:.3f}/{th} {d}" for w, t, s, th, d in evidence)
    )
    accuracy = run.client.query(
        "SELECT window_start, value FROM window_metrics FINAL WHERE model_name = 'perf' AND metric = 'accuracy' "
        "ORDER BY window_start"
    ).result_rows
    assert len(accuracy) >= 19
    assert min(v for _, v in accuracy[:9]) > 0.85 and max(v for _, v in accuracy[11:]) < 0.7
    first_drifting_window = accuracy[10][0]
    assert detected[0].window_start >= first_drifting_window.replace(tzinfo=UTC) - WINDOW
