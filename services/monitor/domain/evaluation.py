"""Judge one closed window of one model version: metrics, drift tests and the window's verdict. Pure.

Data windows (features and outputs) are judged as soon as they close; label windows (performance) later,
once ground truth had time to arrive. Both produce rows for ClickHouse and a verdict for the decider.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from services.monitor.domain import estimation as est
from services.monitor.domain import window_metrics as m
from services.monitor.domain.drift.columns import ColumnDrift, TestResult, column_drift, feature_drift
from services.monitor.domain.drift.decision import WindowVerdict
from services.monitor.domain.drift.detectors import PageHinkley, performance_dropped
from services.monitor.domain.drift.ranking import rank_drift
from shared.drift_thresholds import DriftThresholds
from shared.events import DriftEvidence, DriftKind
from shared.profile import ReferenceProfile

OUTPUT = "__prediction__"
ERROR_RATE = "error_rate"


@dataclass(frozen=True)
class DataWindow:
    """A window's predictions, features split by type (numeric arrays, categorical strings)."""

    start: datetime
    end: datetime
    count: int
    latency_ms: NDArray[np.float64]
    predictions: list[str]
    prediction_num: NDArray[np.float64]
    numeric: dict[str, NDArray[np.float64]] = field(default_factory=dict)
    categorical: dict[str, list[str]] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)
    probabilities: dict[str, NDArray[np.float64]] = field(default_factory=dict)
    """Class → the probability each row logged for it (a class some rows lack has a shorter array)."""


@dataclass(frozen=True)
class LabelWindow:
    """A window's labelled predictions, in event-time order, with how long each label took."""

    start: datetime
    end: datetime
    count: int
    """The window's predictions, labelled or not; 0 when none has a label yet (not counted: the coverage is
    0 whatever the count)."""
    labels: list[str]
    label_num: NDArray[np.float64]
    predictions: list[str]
    prediction_num: NDArray[np.float64]
    positive_proba: NDArray[np.float64] | None
    delay_s: NDArray[np.float64]


def unlabelled_window(start: datetime, end: datetime) -> LabelWindow:
    """The label window of a model that has no label at all: nothing to judge, not counted."""
    empty = np.empty(0, dtype=np.float64)
    return LabelWindow(start, end, 0, [], empty, [], empty, None, empty)


@dataclass(frozen=True)
class WindowResult:
    metrics: list[m.MetricRow]
    tests: list[TestResult]
    verdict: WindowVerdict


def _columns(window: DataWindow) -> dict[str, Any]:
    """Numeric columns stay float arrays (tested vectorised), categorical ones lists."""
    cols: dict[str, Any] = dict(window.numeric)
    cols.update({k: list(v) for k, v in window.categorical.items()})
    return cols


def evaluate_data_window(
    window: DataWindow, profile: ReferenceProfile | None, t: DriftThresholds
) -> WindowResult:
    """Traffic, output and feature metrics; feature and output drift against the version's profile."""
    seconds = max((window.end - window.start).total_seconds(), 1e-9)
    rows = m.traffic_metrics(window.count, seconds, window.latency_ms)
    rows += m.output_metrics(window.predictions, window.prediction_num)
    rows += m.feature_metrics(window.numeric, window.categorical, window.missing, window.count)
    if profile is None:  # nothing to compare against: metrics only
        return WindowResult(rows, [], WindowVerdict(window.start, window.end))

    features = feature_drift(profile, _columns(window), t)
    output: ColumnDrift | None = None
    if profile.prediction is not None:
        outputs: Any = (
            window.prediction_num if profile.prediction.kind == "numeric" else list(window.predictions)
        )
        output = column_drift(OUTPUT, profile.prediction, outputs, t)
        if output is not None:
            output = _decide_single(output, t)
    tested = features + ([output] if output is not None else [])
    tests = [replace(r, drifted=c.drifted) for c in tested for r in c.results]
    ranking = rank_drift(
        [c for c in features if c.drifted], profile.feature_importance, t.min_importance_share
    )
    counted = set(ranking.counted)  # drift in a feature below min_importance_share does not count
    drifted = [c for c in features if c.drifted and c.feature in counted]
    share = len(drifted) / len(features) if features else 0.0
    rows.append(("drifted_feature_share", "", share))
    rows += [("drift_ignored", f.feature, f.importance or 0.0) for f in ranking.features if f.ignored]
    kinds: set[DriftKind] = set()
    if drifted and share > t.drifted_share:
        kinds.add(DriftKind.FEATURE)
    if output is not None and output.drifted:
        kinds.add(DriftKind.OUTPUT)
    flagged = drifted + ([output] if output is not None and output.drifted else [])
    verdict = WindowVerdict(
        window.start,
        window.end,
        frozenset(kinds),
        tuple(c.feature for c in drifted),
        tuple(c.evidence() for c in flagged) if kinds else (),
        severity=share
        if DriftKind.FEATURE in kinds
        else (output.effect_size if output and output.drifted else 0.0),
        ranked_features=ranking.features if kinds else (),
        importance_share_drifted=ranking.importance_share_drifted if kinds else None,
    )
    return WindowResult(rows, tests, verdict)


def _decide_single(c: ColumnDrift, t: DriftThresholds) -> ColumnDrift:
    """The output is one test, not one of many: significance at ``alpha`` itself, plus the effect size."""
    significant = c.p_value <= t.alpha
    return replace(c, significant=significant, drifted=significant and c.effect_size > c.effect_threshold)


def evaluate_label_window(
    window: LabelWindow, profile: ReferenceProfile | None, t: DriftThresholds, errors: PageHinkley
) -> WindowResult:
    """Quality metrics once labels are in; performance drift against the version's validation accuracy.

    Two views: the window's accuracy interval against validation (a drop), and Page-Hinkley over the
    error sequence carried across windows (a rising error rate). Either one makes the window drifted.
    """
    labelled = len(window.labels)
    rows = m.label_metrics(window.count, labelled, window.delay_s)
    if labelled == 0:
        return WindowResult(rows, [], WindowVerdict(window.start, window.end))
    task = m.infer_task(window.labels, window.label_num)
    if task == "regression":
        rows += m.regression_metrics(window.label_num, window.prediction_num)
        return WindowResult(rows, [], WindowVerdict(window.start, window.end))

    rows += m.classification_metrics(window.labels, window.predictions, window.positive_proba)
    wrong = np.asarray(window.labels, dtype=object) != np.asarray(window.predictions, dtype=object)
    alarm = False
    for e in wrong.astype(float):
        errors.update(float(e))
        alarm = alarm or errors.drift_detected
    tests = [
        TestResult(ERROR_RATE, "page_hinkley", errors.statistic, None, errors.threshold, 0, labelled, alarm)
    ]
    evidence: list[DriftEvidence] = []
    reference = profile.metrics.get("accuracy") if profile is not None else None
    dropped = False
    if reference is not None and labelled >= t.min_window_size:
        correct = int(labelled - wrong.sum())
        dropped, accuracy, _ = performance_dropped(
            correct, labelled, reference, t.performance_drop, t.confidence
        )
        tests.append(
            TestResult(
                "accuracy",
                "accuracy_drop",
                accuracy,
                None,
                reference - t.performance_drop,
                0,
                labelled,
                dropped,
            )
        )
        evidence.append(
            DriftEvidence(
                feature="accuracy",
                test="accuracy_drop",
                statistic=accuracy,
                threshold=reference - t.performance_drop,
                effect_size=reference - accuracy,
                reference_size=0,
                current_size=labelled,
                drifted=dropped,
            )
        )
    if alarm:
        evidence.append(
            DriftEvidence(
                feature=ERROR_RATE,
                test="page_hinkley",
                statistic=float(wrong.mean()),
                threshold=errors.threshold,
                reference_size=0,
                current_size=labelled,
                drifted=True,
            )
        )
    drifted = dropped or alarm
    severity = (
        float(reference - (labelled - wrong.sum()) / labelled)
        if reference is not None
        else float(wrong.mean())
    )
    verdict = WindowVerdict(
        window.start,
        window.end,
        frozenset({DriftKind.PERFORMANCE}) if drifted else frozenset(),
        (),
        tuple(evidence) if drifted else (),
        max(severity, 0.0) if drifted else 0.0,
    )
    return WindowResult(rows, tests, verdict)


ESTIMATED_ACCURACY = "estimated_accuracy"


def evaluate_estimate_window(
    window: DataWindow, profile: ReferenceProfile | None, t: DriftThresholds
) -> WindowResult | None:
    """Performance estimated without labels (CBPE or DLE) and whether it dropped; None: nothing to estimate.

    The drop is judged like the labels-based one: even the optimistic end of the estimate's band (at the
    model's ``confidence``) lies ``performance_drop`` below the version's validation accuracy. Regressors
    get estimated MAE and RMSE but no drift verdict: no labels-based threshold exists for them either.
    """
    if profile is None or profile.estimator is None or window.count == 0:
        return None
    estimator = profile.estimator
    z = est.z_of(t.confidence)
    if estimator.task == "regression":
        estimates = est.dle(estimator, window.numeric, window.prediction_num)
    else:
        positive = m.positive_class(estimator.classes)
        estimates = est.cbpe(estimator, window.probabilities, window.predictions, positive)
    if not estimates:
        return None
    rows = [row for e in estimates for row in e.rows(z)]
    accuracy = next((e for e in estimates if e.metric == "accuracy"), None)
    reference = profile.metrics.get("accuracy")
    if accuracy is None or reference is None or window.count < t.min_window_size:
        return WindowResult(rows, [], WindowVerdict(window.start, window.end))
    high = accuracy.value + z * accuracy.std
    dropped = high < reference - t.performance_drop
    threshold = reference - t.performance_drop
    test = TestResult(ESTIMATED_ACCURACY, "cbpe", accuracy.value, None, threshold, estimator.rows,
                      window.count, dropped)  # fmt: skip
    evidence = DriftEvidence(
        feature=ESTIMATED_ACCURACY,
        test="cbpe",
        statistic=accuracy.value,
        threshold=threshold,
        effect_size=reference - accuracy.value,
        reference_size=estimator.rows,
        current_size=window.count,
        drifted=dropped,
    )
    verdict = WindowVerdict(
        window.start,
        window.end,
        frozenset({DriftKind.ESTIMATED_PERFORMANCE}) if dropped else frozenset(),
        (),
        (evidence,) if dropped else (),
        max(reference - accuracy.value, 0.0) if dropped else 0.0,
    )
    return WindowResult(rows, [test], verdict)


def estimated_accuracy_change(
    estimate: WindowResult | None, profile: ReferenceProfile | None
) -> float | None:
    """A window's estimated accuracy minus the version's validation accuracy; None when either is unknown.

    The impact an input drift is estimated to have on the model, put on its ``DriftDetected`` so a person
    sees "the inputs moved, and it costs about 7 points of accuracy" before any label arrives.
    """
    if estimate is None or profile is None or "accuracy" not in profile.metrics:
        return None
    value = next((row[2] for row in estimate.metrics if row[0] == ESTIMATED_ACCURACY and not row[1]), None)
    return None if value is None else round(float(value) - profile.metrics["accuracy"], 6)
