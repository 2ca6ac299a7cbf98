"""Drift that matters, on the real stack: a shift in a feature the model ignores is not announced when the
model's ``min_importance_share`` says so (so the trainer, which retrains on ``DriftDetected``, never starts),
and every announcement ranks the drifted features by importance x effect, on the topic and in ClickHouse."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from driftloop.bench import synthetic
from services.monitor.adapters.clickhouse.sink import ClickHouseSink
from services.monitor.domain.profiles import profiles_file_json
from services.monitor.domain.tables import DRIFT_EVENTS, drift_event_row
from shared import codec
from shared.clickhouse import clickhouse_client
from shared.events import DriftDetected, RankedFeature
from shared.kafka.admin import create_topics
from shared.settings import Settings
from shared.topics import topic_names
from tests.integration.ingest_helpers import read_topic
from tests.integration.monitor_worker import monitor_settings, produce, start_monitor, wait_for

pytestmark = pytest.mark.integration

EVENTS = 10_000
SPACING = timedelta(milliseconds=60)  # 1,000 events per 60 s window: 10 windows, the shift from the 4th
# the same stream twice: num_3 moves, and the model gives num_3 no importance at all
IGNORING = synthetic.StreamSpec(
    "ignoring", numeric=4, categorical=1, shifted=("num_3",), change_at=3000, seed=5
)
CONTROL = synthetic.StreamSpec(
    "control", numeric=4, categorical=1, shifted=("num_3",), change_at=3000, seed=5
)
# two features move by as much; the model leans on num_3 ten times more than on num_1
RANKED = synthetic.StreamSpec(
    "ranked", numeric=4, categorical=1, shifted=("num_1", "num_3"), change_at=3000, seed=6
)
ZERO_FOR_NUM_3 = {"num_0": 0.2, "num_1": 0.1, "num_2": 0.1, "num_3": 0.0, "cat_0": -0.001}
LEANS_ON_NUM_3 = {"num_0": 0.1, "num_1": 0.05, "num_2": 0.05, "num_3": 0.5, "cat_0": 0.0}


@dataclass
class Run:
    client: Any
    detected: dict[str, list[DriftDetected]]


def _judged(client: Any, model: str) -> int:
    try:
        return int(
            client.command(
                "SELECT count() FROM window_metrics FINAL WHERE model_name = {m:String} AND metric = 'count'",
                parameters={"m": model},
            )
        )
    except Exception:
        return -1


@pytest.fixture(scope="module")
def run(kafka: Any, clickhouse_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    tmp = tmp_path_factory.mktemp("monitor-importance")
    settings = monitor_settings(
        kafka, clickhouse_server, tmp, monitor_window_seconds=60, monitor_allowed_lateness_seconds=0
    )
    topics = topic_names(settings.topic_prefix)
    create_topics(settings.kafka_bootstrap, topics.all(), 2, 1)

    def profile(spec: synthetic.StreamSpec, importance: dict[str, float]) -> Any:
        return synthetic.reference_profile(spec).model_copy(update={"feature_importance": importance})

    profiles = tmp / "profiles.json"
    profiles.write_text(
        profiles_file_json(
            {
                "ignoring": {"1": profile(IGNORING, ZERO_FOR_NUM_3)},
                "control": {"1": profile(CONTROL, ZERO_FOR_NUM_3)},
                "ranked": {"1": profile(RANKED, LEANS_ON_NUM_3)},
            },
            thresholds={"ignoring": {"min_importance_share": 0.05}},
        )
    )
    start = (datetime.now(UTC) - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
    worker = start_monitor(settings, tmp / "monitor.log", profiles=profiles)
    client = clickhouse_client(settings)
    try:
        for spec in (IGNORING, CONTROL, RANKED):
            produce(settings, topics.predictions, synthetic.predictions(spec, EVENTS, start, SPACING))
        for spec in (IGNORING, CONTROL, RANKED):  # the last window stays open: no later event closes it
            wait_for(
                lambda m=spec.model_name: _judged(client, m) >= 9, 300, f"{spec.model_name}'s windows judged",
                worker.log_path,
            )  # fmt: skip
        announced = int(client.command("SELECT count() FROM drift_events FINAL"))
        payloads = read_topic(
            settings.kafka_bootstrap, topics.drift_events, expected=announced, deadline_s=60
        )
        detected: dict[str, list[DriftDetected]] = {s.model_name: [] for s in (IGNORING, CONTROL, RANKED)}
        for payload in payloads:
            event = codec.decode_any(payload)
            if isinstance(event, DriftDetected):
                detected[event.model_name].append(event)
        yield Run(client, detected)
    finally:
        worker.stop()


def test_drift_in_a_zero_importance_feature_is_not_announced_when_the_setting_says_so(run: Run) -> None:
    assert run.detected["ignoring"] == []  # nothing on drift-events: the trainer is never asked to retrain
    # the same stream without the setting is announced, so it is the setting that kept it quiet
    (control,) = run.detected["control"]
    assert control.drifted_features == ["num_3"] and control.importance_share_drifted == 0.0
    # the tests and the reason stay queryable: num_3 drifted, and was ignored for holding 0% of the importance
    ignored = run.client.query(
        "SELECT feature, count(), max(value) FROM window_metrics FINAL "
        "WHERE model_name = 'ignoring' AND metric = 'drift_ignored' GROUP BY feature"
    ).result_rows
    assert [(f, v) for f, _, v in ignored] == [("num_3", 0.0)] and ignored[0][1] >= 5
    drifted_tests = run.client.command(
        "SELECT countIf(drifted = 1) FROM drift_tests FINAL WHERE model_name = 'ignoring' AND feature = 'num_3'"
    )
    assert int(drifted_tests) >= 5


def test_the_event_ranks_drifted_features_by_importance_times_effect(run: Run) -> None:
    (event,) = run.detected["ranked"]
    assert event.drifted_features == ["num_1", "num_3"]
    ranked = event.ranked_features
    assert [f.feature for f in ranked] == ["num_3", "num_1"]
    top, second = ranked
    assert top.importance == pytest.approx(0.5 / 0.7) and second.importance == pytest.approx(0.05 / 0.7)
    assert all(f.score == pytest.approx(f.importance * f.effect) and f.effect > 1 for f in ranked)
    assert event.importance_share_drifted == pytest.approx(0.55 / 0.7)
    # stored beside the event in ClickHouse, unpacked with plain JSON functions (docs/analytics.md)
    rows = run.client.query(
        "SELECT JSONExtractString(f, 'feature'), JSONExtractFloat(f, 'score'), importance_share_drifted "
        "FROM drift_events FINAL ARRAY JOIN JSONExtractArrayRaw(ranked_features) AS f "
        "WHERE model_name = 'ranked' AND event_type = 'drift_detected'"
    ).result_rows
    assert [r[0] for r in rows] == ["num_3", "num_1"]
    assert rows[0][1] == pytest.approx(top.score) and rows[0][2] == pytest.approx(0.55 / 0.7)
    assert (
        json.loads(
            run.client.command(
                "SELECT ranked_features FROM drift_events FINAL WHERE model_name = 'ranked' LIMIT 1"
            )
        )[0]["feature"]
        == "num_3"
    )


def test_a_drift_events_table_from_an_older_release_gains_the_columns_and_keeps_its_rows(
    clickhouse_server: Any,
) -> None:
    settings = Settings(clickhouse_url=clickhouse_server.url, clickhouse_database=f"t_{uuid.uuid4().hex[:8]}")
    client = clickhouse_client(settings, create_database=True)
    old = replace(DRIFT_EVENTS, columns=DRIFT_EVENTS.columns[: -len(DRIFT_EVENTS.added)], added=())
    client.command(old.ddl())
    at = datetime(2026, 3, 1, tzinfo=UTC)
    before = [uuid.uuid4(), "drift_detected", "m", "1", at, at, at, ["feature"], 0.5, ["x"], "[]"]
    client.insert("drift_events", [before], column_names=old.column_names)
    sink = ClickHouseSink(settings, create_tables=True)  # what a worker of this release does on start
    try:
        sink.open()
        sink.open()  # again, as every worker does: the upgrade is idempotent
        event = DriftDetected(
            model_name="m", model_version="2", kinds=["feature"], severity=0.5, window_start=at, window_end=at,
            windows_considered=3, windows_drifted=2, drifted_features=["x"],
            ranked_features=[RankedFeature(feature="x", importance=0.9, effect=2.0, score=1.8)],
            importance_share_drifted=0.9,
        )  # fmt: skip
        sink.write(DRIFT_EVENTS, [drift_event_row(event)])
        rows = client.query(
            "SELECT model_version, ranked_features, importance_share_drifted FROM drift_events ORDER BY model_version"
        ).result_rows
        assert rows[0] == ("1", "", None)  # the old row reads the defaults
        assert rows[1][0] == "2" and json.loads(rows[1][1])[0]["score"] == 1.8 and rows[1][2] == 0.9
    finally:
        sink.close()
        client.command(f"DROP DATABASE IF EXISTS {settings.clickhouse_database}")
