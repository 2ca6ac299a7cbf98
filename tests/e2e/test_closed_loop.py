"""The whole loop on the real stack, a shortened ``driftloop demo``: drift -> detection -> retraining ->
promotion -> swap -> recovery, each step proven by its event on Kafka and its rows in ClickHouse.

Real processes throughout: the session's Kafka broker and ClickHouse server, and a registry, ingest, monitor,
trainer and model server started by the demo's own system code. The simulated app calls the model server
over HTTP and sends labels through the SDK; nothing in the loop is called directly.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from driftloop.demo.dataset import RAINFALL_CHANGE_POINT, StreamPlan, rainfall
from driftloop.demo.model import training_recipe
from driftloop.demo.run import DemoResult, closed_loop
from driftloop.demo.system import Pace, demo_settings
from driftloop.demo.timeline import Step
from shared.clickhouse import clickhouse_client
from shared.codec import decode_any
from shared.events import AliasChanged, DriftDetected, Event, TrainingRunFinished, TrainingRunStarted
from shared.settings import Settings
from shared.topics import topic_names

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.timeout(420)]

# 250 rows before the drift, then up to 3,000 after it; the stream ends once v2 answered 500 requests
PLAN = StreamPlan(
    train=range(8_000, 11_000),
    stream=range(11_750, 15_000),
    change_point=RAINFALL_CHANGE_POINT,
    rate=50.0,
    label_delay_s=1.0,
)
PACE = Pace(window_seconds=8, lateness_seconds=1, label_wait_seconds=3, trainer_debounce_seconds=0.5)


def _read_topics(settings: Settings, model: str) -> dict[str, list[Event]]:
    """Every event of ``model`` on the loop's control topics, from the beginning, by topic."""
    topics = topic_names(settings.topic_prefix)
    names = (topics.drift_events, topics.training_runs, topics.model_events)

    async def consume() -> dict[str, list[Event]]:
        consumer = AIOKafkaConsumer(
            *names, bootstrap_servers=settings.kafka_bootstrap, group_id=None, auto_offset_reset="earliest"
        )
        await consumer.start()
        found: dict[str, list[Event]] = {name: [] for name in names}
        try:
            quiet_since = time.monotonic()
            while time.monotonic() - quiet_since < 3.0:
                batch = await consumer.getmany(timeout_ms=500)
                for tp, records in batch.items():
                    quiet_since = time.monotonic()
                    found[tp.topic] += [
                        e for r in records if (e := decode_any(r.value or b"")).model_name == model
                    ]
        finally:
            await consumer.stop()
        return found

    return asyncio.run(consume())


def _rows(settings: Settings, sql: str, model: str) -> list[tuple[Any, ...]]:
    client = clickhouse_client(settings)
    try:
        return [tuple(r) for r in client.query(sql, parameters={"m": model}).result_rows]
    finally:
        client.close()


@pytest.fixture(scope="module")
def loop(kafka: Any, clickhouse_server: Any, tmp_path_factory: pytest.TempPathFactory) -> DemoResult:
    root = tmp_path_factory.mktemp("closed-loop")
    model = f"rainfall-{uuid.uuid4().hex[:6]}"
    settings = demo_settings(Settings(), root / "system", model, PACE).model_copy(
        update={
            "kafka_bootstrap": kafka.bootstrap,
            "clickhouse_url": clickhouse_server.url,
            "clickhouse_database": f"e2e_{uuid.uuid4().hex[:8]}",
            "topic_prefix": f"e2e-{uuid.uuid4().hex[:8]}-",
        }
    )
    lines: list[str] = []
    result = closed_loop(
        settings,
        rainfall(),
        PLAN,
        lines.append,
        out_dir=root / "report",
        start_infra=False,
        model_name=model,
        recipe=training_recipe(max_rows=400),
        stop_after_new_answers=500,
    )
    print("\n".join(lines))  # the run's timeline, shown when a test fails
    return result


def test_each_step_of_the_loop_happened_in_order(loop: DemoResult) -> None:
    t = loop.timeline
    order = [
        Step.MODEL_REGISTERED,
        Step.SERVER_READY,
        Step.DRIFT_BEGINS,
        Step.DRIFT_DETECTED,
        Step.TRAINING_STARTED,
        Step.SERVER_SWAPPED,
        Step.ACCURACY_RECOVERED,
        Step.TRAFFIC_DONE,
        Step.STORED,
    ]
    firsts = [t.first(step) for step in order]
    missing = [step.value for step, entry in zip(order, firsts, strict=True) if entry is None]
    assert not missing, f"steps that never happened: {missing}"
    times = [e.at for e in firsts if e is not None]
    assert times == sorted(times), [
        (s.value, round(x - t.started_at, 1)) for s, x in zip(order, times, strict=True)
    ]
    promoted, started = t.first(Step.PROMOTED), t.first(Step.TRAINING_STARTED)
    # the demo may read the promotion a moment after the app's first answer from v2; the topics' own
    # timestamps order those two (next test)
    assert promoted is not None and started is not None and promoted.at > started.at
    finished = t.first(Step.TRAINING_FINISHED)
    assert finished is not None and finished.data["promoted"] and finished.data["version"] == 2
    assert finished.data["challenger"] > finished.data["champion"]
    assert t.first(Step.TRAINING_FAILED) is None and t.first(Step.REFUSED) is None

    summary = loop.summary
    assert summary.drift_detected_after_events is not None and summary.drift_detected_after_events > 0
    assert "sea_level_pressure" in summary.drifted_features
    assert summary.promoted_version is not None and summary.promoted_version >= 2
    assert summary.drift_to_serving_s is not None
    assert summary.accuracy_during is not None and summary.accuracy_after is not None
    assert summary.accuracy_before is not None
    assert summary.accuracy_after > summary.accuracy_during + 0.1  # the new model repaired the damage
    assert summary.accuracy_before > summary.accuracy_during + 0.1  # the drift did damage
    assert summary.oracle_accuracy is not None and summary.as_json()["report_path"] == str(loop.report_path)
    assert loop.report_path is not None and "data:image/png" in loop.report_path.read_text()
    assert loop.png_path is not None and loop.png_path.read_bytes()[:4] == b"\x89PNG"


def test_the_topics_carry_drift_training_and_promotion_in_causal_order(loop: DemoResult) -> None:
    settings, model = loop.settings, loop.settings.serving_model
    topics = topic_names(settings.topic_prefix)
    found = _read_topics(settings, model)
    drift_began = next(s.at for s in loop.served if s.row >= PLAN.change_point)

    drifts = [e for e in found[topics.drift_events] if isinstance(e, DriftDetected)]
    first_drift = drifts[0]  # the feature alert, or the performance alert if the labels were quicker
    assert first_drift.model_version == "1"
    assert first_drift.window_end.timestamp() > drift_began  # only windows with drifted rows alerted
    feature_alert = next(d for d in drifts if d.drifted_features)
    assert "sea_level_pressure" in feature_alert.drifted_features
    # ranked by importance x effect against the first version's permutation importance
    ranked = feature_alert.ranked_features
    assert {f.feature for f in ranked} == set(feature_alert.drifted_features)
    assert (
        all(f.importance is not None for f in ranked) and feature_alert.importance_share_drifted is not None
    )
    assert [f.score for f in ranked] == sorted((f.score for f in ranked), reverse=True)

    runs = found[topics.training_runs]
    started = next(e for e in runs if isinstance(e, TrainingRunStarted))
    finished = next(e for e in runs if isinstance(e, TrainingRunFinished))
    assert started.reason == "drift" and started.trigger_event_id in {d.event_id for d in drifts}
    assert finished.run_id == started.run_id and finished.promoted and finished.model_version == "2"

    moves = [e for e in found[topics.model_events] if isinstance(e, AliasChanged) and e.alias == "production"]
    # a later alert on newer data may retrain again: each move goes one version up from the previous
    assert [(m.previous_version, m.version) for m in moves][:2] == [(None, 1), (1, 2)]
    assert all(m.version == m.previous_version + 1 for m in moves[1:] if m.version and m.previous_version)
    first_v2_answer = next(s.at for s in loop.served if s.version == 2)
    assert first_drift.window_end <= started.occurred_at <= moves[1].occurred_at
    assert moves[1].occurred_at.timestamp() <= first_v2_answer  # promoted, then served
    assert all(s.version == 1 for s in loop.served if s.at < moves[1].occurred_at.timestamp())


def test_clickhouse_holds_every_prediction_label_window_test_and_run(loop: DemoResult) -> None:
    settings, model = loop.settings, loop.settings.serving_model
    served = {v: sum(s.version == v for s in loop.served) for v in {s.version for s in loop.served}}
    stored = dict(
        _rows(
            settings,
            "SELECT toUInt32(model_version), count() FROM predictions FINAL WHERE model_name = {m:String} "
            "GROUP BY model_version",
            model,
        )
    )
    assert stored == served  # every answer of the model server reached the monitor, under its version
    (labels,) = _rows(settings, "SELECT count() FROM labels FINAL WHERE model_name = {m:String}", model)
    assert labels[0] == len(loop.served)

    drifted = _rows(
        settings,
        "SELECT DISTINCT feature FROM drift_tests FINAL WHERE model_name = {m:String} AND model_version = '1' "
        "AND drifted AND test = 'wasserstein_norm'",
        model,
    )
    assert ("sea_level_pressure",) in drifted
    events = _rows(
        settings,
        "SELECT event_type, model_version, drifted_features FROM drift_events FINAL "
        "WHERE model_name = {m:String} AND event_type = 'drift_detected' ORDER BY window_end",
        model,
    )
    # the feature alert names the feature; a performance alert (labels) may come before or after it
    assert any(version == "1" and "sea_level_pressure" in features for _, version, features in events)
    accuracy = _rows(
        settings,
        "SELECT model_version, count() FROM window_metrics FINAL WHERE model_name = {m:String} "
        "AND metric = 'accuracy' GROUP BY model_version ORDER BY model_version",
        model,
    )
    assert accuracy and accuracy[0][0] == "1"
    runs = _rows(
        settings,
        "SELECT status, promoted, model_version FROM training_runs FINAL WHERE model_name = {m:String}",
        model,
    )
    assert ("finished", 1, 2) in [(s, p, int(v)) for s, p, v in runs]


def test_the_report_files_are_written(loop: DemoResult, tmp_path: Path) -> None:
    assert loop.report_path is not None and loop.report_path.name == "report.html"
    page = loop.report_path.read_text()
    for text in (
        "drift detected",
        "accuracy after recovery",
        "oracle accuracy",
        "PROMOTED",
        "Which drift matters",
    ):
        assert text in page
