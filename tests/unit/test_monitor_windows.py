"""Window evaluation without I/O: metrics, drift verdicts, performance drift, and progress that survives JSON."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import numpy as np
import pytest
from sklearn import metrics as skm

from services.monitor.domain import window_metrics as m
from services.monitor.domain.announcements import alert_event
from services.monitor.domain.drift.detectors import PageHinkley
from services.monitor.domain.evaluation import (
    DataWindow,
    LabelWindow,
    evaluate_data_window,
    evaluate_label_window,
)
from services.monitor.domain.progress import VersionProgress, floor_ms
from shared.drift_thresholds import DriftThresholds
from shared.events import DriftDetected, DriftKind
from shared.profile import ReferenceProfile, build_profile

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
END = START + timedelta(minutes=1)
T = DriftThresholds()


def _window(
    rng: np.random.Generator, n: int, age_mean: float = 40, plans: tuple[float, float] = (0.7, 0.3)
) -> DataWindow:
    preds = rng.choice(["0", "1"], n, p=[0.6, 0.4]).tolist()
    return DataWindow(
        start=START,
        end=END,
        count=n,
        latency_ms=rng.uniform(1, 3, n),
        predictions=preds,
        prediction_num=np.asarray(preds, dtype=float),
        numeric={"age": rng.normal(age_mean, 10, n), "income": rng.normal(5e4, 1e4, n)},
        categorical={"plan": rng.choice(["free", "pro"], n, p=list(plans)).tolist()},
        missing={"income": 3},
    )


def _profile(rng: np.random.Generator) -> ReferenceProfile:
    n = 20_000
    preds = rng.choice(["0", "1"], n, p=[0.6, 0.4]).tolist()
    return build_profile(
        {
            "age": rng.normal(40, 10, n).tolist(),
            "income": rng.normal(5e4, 1e4, n).tolist(),
            "plan": rng.choice(["free", "pro"], n, p=[0.7, 0.3]).tolist(),
        },
        predictions=preds,
        metrics={"accuracy": 0.9},
    )


def test_traffic_and_feature_metrics() -> None:
    rows = {
        (metric, f): v for metric, f, v in m.traffic_metrics(120, 60.0, np.array([1.0, 2.0, np.nan, 3.0]))
    }
    assert rows[("count", "")] == 120 and rows[("events_per_s", "")] == 2.0
    assert rows[("latency_p50_ms", "")] == 2.0
    fm = {
        (metric, f): v
        for metric, f, v in m.feature_metrics(
            {"a": np.array([1.0, 3.0])}, {"c": ["x", "y", "x"]}, {"a": 1}, 4
        )
    }
    assert (
        fm[("feature_mean", "a")] == 2.0
        and fm[("missing_rate", "a")] == 0.25
        and fm[("feature_distinct", "c")] == 2
    )


def test_classification_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(3)
    y = rng.choice(["0", "1"], 500).tolist()
    proba = np.clip(np.where(np.asarray(y) == "1", 0.7, 0.3) + rng.normal(0, 0.2, 500), 0, 1)
    pred = np.where(proba > 0.5, "1", "0").tolist()
    rows = {metric: v for metric, _, v in m.classification_metrics(y, pred, proba)}
    yb = (np.asarray(y) == "1").astype(int)
    assert rows["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert rows["f1"] == pytest.approx(skm.f1_score(y, pred, pos_label="1"))
    assert rows["roc_auc"] == pytest.approx(skm.roc_auc_score(yb, proba))
    assert rows["log_loss"] == pytest.approx(skm.log_loss(yb, np.clip(proba, 1e-15, 1 - 1e-15)))


def test_regression_metrics() -> None:
    rows = {
        metric: v
        for metric, _, v in m.regression_metrics(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 5.0]))
    }
    assert rows["mae"] == pytest.approx(2 / 3) and rows["rmse"] == pytest.approx(np.sqrt(4 / 3))


def test_stationary_window_has_no_drift_and_a_shifted_one_names_its_features() -> None:
    rng = np.random.default_rng(11)
    profile = _profile(rng)
    calm = evaluate_data_window(_window(rng, 5000), profile, T)
    assert not calm.verdict.drifted
    tested = {(t.feature, t.test) for t in calm.tests}
    assert {("age", "ks"), ("age", "psi"), ("plan", "chi2"), ("__prediction__", "chi2")} <= tested

    shifted = evaluate_data_window(_window(rng, 5000, age_mean=48, plans=(0.3, 0.7)), profile, T)
    assert shifted.verdict.kinds == {DriftKind.FEATURE}
    assert sorted(shifted.verdict.drifted_features) == ["age", "plan"]
    assert {t.feature for t in shifted.tests if t.drifted} == {"age", "plan"}
    share = {metric: v for metric, f, v in shifted.metrics}["drifted_feature_share"]
    assert share == pytest.approx(2 / 3)


def test_window_without_profile_gets_metrics_only() -> None:
    result = evaluate_data_window(_window(np.random.default_rng(1), 300), None, T)
    assert result.tests == [] and not result.verdict.drifted
    assert any(metric == "latency_p99_ms" for metric, _, _ in result.metrics)


def _labels(rng: np.random.Generator, n: int, accuracy: float) -> LabelWindow:
    labels = rng.choice(["0", "1"], n).tolist()
    right = rng.random(n) < accuracy
    preds = [y if ok else ("1" if y == "0" else "0") for y, ok in zip(labels, right, strict=True)]
    return LabelWindow(
        START,
        END,
        n,
        labels,
        np.asarray(labels, dtype=float),
        preds,
        np.asarray(preds, dtype=float),
        None,
        rng.uniform(10, 600, n),
    )


def test_performance_drift_when_accuracy_falls_below_validation() -> None:
    rng = np.random.default_rng(2)
    profile = _profile(rng)
    good = evaluate_label_window(_labels(rng, 2000, 0.9), profile, T, PageHinkley())
    assert not good.verdict.drifted
    bad = evaluate_label_window(_labels(rng, 2000, 0.7), profile, T, PageHinkley())
    assert bad.verdict.kinds == {DriftKind.PERFORMANCE}
    assert {e.test for e in bad.verdict.evidence} >= {"accuracy_drop"}
    rows = {metric: v for metric, _, v in bad.metrics}
    assert rows["accuracy"] == pytest.approx(0.7, abs=0.03) and rows["label_coverage"] == 1.0
    assert 10 <= rows["label_delay_p50_s"] <= 600


def test_progress_closes_windows_after_lateness_and_survives_json() -> None:
    length, lateness = 60_000, 10_000
    first = 1_700_000_012_345
    p = VersionProgress.starting_at(first, length, T)
    assert p.next_window_ms == floor_ms(first, length)
    p.observe(p.next_window_ms + length + lateness - 1)
    assert p.next_window(length, lateness) is None
    p.observe(p.next_window_ms + 2 * length + lateness)
    closed = []
    while (window := p.next_window(length, lateness)) is not None:
        closed.append(window)
        p.judged(window[1], events=5)
    start = closed[0][0]
    assert closed == [(start, start + length), (start + length, start + 2 * length)]
    labelled = []
    while (window := p.next_label_window(length, 0)) is not None:
        labelled.append(window)
        p.next_label_window_ms = window[1]
    assert labelled == closed
    p.error_detector.update(1.0)
    again = VersionProgress.from_json(p.to_json(), T)
    assert again.to_json() == p.to_json()


def test_a_version_without_events_pauses_and_its_next_event_wakes_it_one_step_later() -> None:
    length = 60_000
    p = VersionProgress.starting_at(0, length, T)
    p.observe(3 * length)
    p.judged(length, events=10)
    p.judged(2 * length, events=0)
    assert p.idle_windows == 1
    p.pause()
    p.observe(10**15)  # a century later: nothing to list, nothing to judge
    assert p.paused and p.next_window(length, 0) is None
    p.wake(10**15 - 5 * length + 1, length)
    assert p.next_window(length, 0) == (
        floor_ms(10**15 - 5 * length, length),
        floor_ms(10**15 - 4 * length, length),
    )
    assert p.idle_windows == 0
    # the performance windows skip the same span: one label window before it, then the woken one
    labelled = []
    while (window := p.next_label_window(length, 0)) is not None:
        labelled.append(window)
        p.next_label_window_ms = window[1]
    assert labelled == [(0, length), (length, 2 * length)]
    p.judged(p.next_window_ms + length, events=3)
    assert p.next_label_window(length, 0) == (
        floor_ms(10**15 - 5 * length, length),
        floor_ms(10**15 - 4 * length, length),
    )
    again = VersionProgress.from_json(p.to_json(), T)
    assert again.to_json() == p.to_json()


def test_alert_ids_are_stable_so_a_replay_is_deduplicated() -> None:
    from services.monitor.domain.drift.decision import Alert

    alert = Alert(
        False,
        START,
        END,
        (DriftKind.FEATURE,),
        ("age",),
        severity=0.5,
        windows_considered=3,
        windows_drifted=2,
    )
    a, b = alert_event("churn", "3", "data", alert), alert_event("churn", "3", "data", alert)
    assert isinstance(a, DriftDetected) and a.event_id == b.event_id
    assert alert_event("churn", "3", "performance", alert).event_id != a.event_id


def test_event_time_ranges_give_each_version_its_earliest_and_latest_event() -> None:
    from services.monitor.domain.batches import event_time_ranges
    from shared.wire import PredictionWire

    def head(model: str, version: str, minute: int) -> PredictionWire:
        return PredictionWire(
            event_id=uuid4(),
            occurred_at=START + timedelta(minutes=minute),
            model_name=model,
            model_version=version,
            prediction_id="p",
            features={},
            prediction=1,
        )

    ranges = event_time_ranges([head("a", "1", 5), head("a", "1", 2), head("a", "2", 7), head("b", "1", 1)])
    ms = lambda minute: int((START + timedelta(minutes=minute)).timestamp() * 1000)  # noqa: E731
    assert ranges == {"a": {"1": (ms(2), ms(5)), "2": (ms(7), ms(7))}, "b": {"1": (ms(1), ms(1))}}


def test_each_model_checkpoints_the_newest_offset_of_its_records() -> None:
    from types import SimpleNamespace

    from services.monitor.domain.batches import latest_offsets
    from shared.wire import PredictionWire

    heads = [
        PredictionWire(model_name=model, model_version="1", prediction_id="p", features={}, prediction=1)
        for model in ("a", "b", "a", "b", "a")
    ]
    records = [SimpleNamespace(offset=offset) for offset in (7, 3, 9, 4, 8)]
    assert latest_offsets(heads, records) == {"a": 9, "b": 4}  # type: ignore[arg-type]


def test_category_counts_read_values_as_the_stored_rows_do() -> None:
    from services.monitor.domain.drift.columns import category_counts
    from shared.profile import categorical_profile

    profile = categorical_profile(["a", "b", "1", "1.0"])
    names, counts = category_counts(profile, ["a", "a", "b", "zzz", None])
    assert dict(zip(names, counts.tolist(), strict=True)) == {
        "a": 2,
        "b": 1,
        "1": 0,
        "1.0": 0,
        "__other__": 1,
    }
    # non-strings: True reads "1" as ClickHouse stores it; 1 and 1.0 stay distinct categories
    names, counts = category_counts(profile, [True, 1, 1.0, "a"])
    assert dict(zip(names, counts.tolist(), strict=True))["1"] == 2
    assert dict(zip(names, counts.tolist(), strict=True))["1.0"] == 1


def test_map_entries_from_arrow_group_by_key_in_row_order() -> None:
    import pyarrow as pa

    from services.monitor.adapters.clickhouse.window_reader import _by_key

    maps = pa.array(
        [{"x": 1.0, "y": 10.0}, {"y": 20.0, "x": 2.0}, {"x": 3.0}, {}],
        type=pa.map_(pa.string(), pa.float64()),
    )
    grouped = _by_key(maps.keys, maps.items)
    assert {k: v.tolist() for k, v in grouped.items()} == {"x": [1.0, 2.0, 3.0], "y": [10.0, 20.0]}
    none = pa.array([{}, {}], type=pa.map_(pa.string(), pa.string()))  # a model without categorical features
    assert _by_key(none.keys, none.items) == {}
