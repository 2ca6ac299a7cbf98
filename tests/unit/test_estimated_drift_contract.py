"""Estimated-performance drift end to end in the domain: the monitor announces it before labels exist, the
trainer stores the estimator with each version and does not retrain on an estimate without labels."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import uuid4

import numpy as np
import pytest

from services.monitor.domain.announcements import alert_event
from services.monitor.domain.drift.decision import DriftDecider
from services.monitor.domain.estimation import cbpe
from services.monitor.domain.evaluation import DataWindow, evaluate_estimate_window
from services.trainer.domain.debounce import Trigger
from services.trainer.domain.triggers import classify
from services.trainer.service import run_training
from shared.codec import encode
from shared.drift_thresholds import DriftThresholds
from shared.events import DriftDetected, DriftKind
from shared.profile import PerformanceEstimator, ReferenceProfile
from tests.unit.test_trainer_pipeline import NOW, FakeRegistry, ports, query_rows


def trained_profile(tmp_path: Any) -> ReferenceProfile:
    registry = FakeRegistry()
    outcome = run_training(
        Trigger("churn", "manual", NOW, uuid4()), ports(registry, query_rows(1000), tmp_path)
    )
    assert outcome.status == "finished"
    _, meta = registry.versions[1]
    assert 0 <= meta["metrics"]["calibration_error"] <= 1
    return ReferenceProfile.model_validate(meta["reference_profile"])


def test_a_trained_classifier_carries_its_calibration_to_the_monitor(tmp_path: Any) -> None:
    profile = trained_profile(tmp_path)
    estimator = profile.estimator
    assert estimator is not None and estimator.task == "classification"
    assert estimator.classes == ["0", "1"] and set(estimator.calibration) == {"1"}
    assert estimator.rows == 200  # the holdout's rows


def test_a_trained_regressor_carries_loss_models(tmp_path: Any) -> None:
    registry = FakeRegistry(task_type="regression")
    run_training(Trigger("churn", "manual", NOW, uuid4()), ports(registry, query_rows(600), tmp_path))
    estimator = ReferenceProfile.model_validate(registry.versions[1][1]["reference_profile"]).estimator
    assert (
        estimator is not None and estimator.absolute_error is not None and estimator.squared_error is not None
    )
    assert estimator.absolute_error.inputs[-1] == "__prediction__"


def unsure_window(start: Any, n: int = 1_000) -> DataWindow:
    p = np.where(np.arange(n) % 2 == 0, 0.55, 0.45)  # a model that has lost its confidence
    return DataWindow(
        start, start + timedelta(minutes=1), n, np.full(n, np.nan), ["1", "0"] * (n // 2), np.full(n, np.nan),
        probabilities={"0": 1 - p, "1": p},
    )  # fmt: skip


def test_an_estimated_drop_is_announced_as_estimated_performance_with_hysteresis(tmp_path: Any) -> None:
    profile = trained_profile(tmp_path)
    t = DriftThresholds()
    decider = DriftDecider(t)
    alerts = []
    for i in range(t.windows_needed):
        result = evaluate_estimate_window(unsure_window(NOW + timedelta(minutes=i)), profile, t)
        assert result is not None
        alerts.append(decider.observe(result.verdict))
    assert alerts[:-1] == [None] * (t.windows_needed - 1)  # K of M windows, as every drift kind
    alert = alerts[-1]
    assert alert is not None and alert.kinds == (DriftKind.ESTIMATED_PERFORMANCE,)
    assert alert.evidence[0].test == "cbpe"
    event = alert_event("churn", "1", "estimate", alert)
    assert isinstance(event, DriftDetected) and event.kinds == [DriftKind.ESTIMATED_PERFORMANCE]


def estimated_drift(window_start: Any) -> DriftDetected:
    return DriftDetected(
        model_name="churn", model_version="1", occurred_at=window_start + timedelta(minutes=2),
        kinds=[DriftKind.ESTIMATED_PERFORMANCE], severity=0.3, window_start=window_start,
        window_end=window_start + timedelta(minutes=2), windows_considered=3, windows_drifted=2,
    )  # fmt: skip


def test_the_trainer_does_not_retrain_on_an_estimate_without_labels_and_says_so(tmp_path: Any) -> None:
    registry = FakeRegistry()
    labelled_until = NOW  # query_rows' labelled rows all lie before NOW
    event = estimated_drift(labelled_until + timedelta(seconds=1))
    trigger = classify(encode(event), "drift-events", NOW + timedelta(minutes=5))
    assert isinstance(trigger, Trigger) and trigger.needs_labels
    outcome = run_training(trigger, ports(registry, query_rows(1000), tmp_path))
    assert outcome.status == "rejected" and registry.versions == {}
    assert outcome.report is not None and outcome.report.problems[0].startswith("no labels yet")


def test_the_trainer_retrains_on_an_estimate_once_labels_for_it_arrived(tmp_path: Any) -> None:
    registry = FakeRegistry()
    event = estimated_drift(NOW - timedelta(minutes=100))  # the last 100 rows are labelled since then
    trigger = classify(encode(event), "drift-events", NOW)
    assert isinstance(trigger, Trigger) and trigger.needs_labels
    assert run_training(trigger, ports(registry, query_rows(1000), tmp_path)).status == "finished"


@pytest.mark.parametrize(
    "kinds", [[DriftKind.FEATURE, DriftKind.ESTIMATED_PERFORMANCE], [DriftKind.PERFORMANCE]]
)
def test_other_drift_kinds_retrain_as_before(kinds: list[DriftKind]) -> None:
    event = estimated_drift(NOW).model_copy(update={"kinds": kinds})
    trigger = classify(encode(event), "drift-events", NOW + timedelta(minutes=5))
    assert isinstance(trigger, Trigger) and not trigger.needs_labels


def test_cbpe_is_blind_to_concept_shift() -> None:
    """The same inputs now mean the other class: probabilities, and so the estimate, do not move."""
    profile_p = np.where(np.arange(2_000) % 2 == 0, 0.95, 0.05)
    estimator = PerformanceEstimator(task="classification", rows=1000, classes=["0", "1"])
    predictions = ["1", "0"] * 1000
    before = cbpe(estimator, {"0": 1 - profile_p, "1": profile_p}, predictions, "1")[0].value
    after = cbpe(estimator, {"0": 1 - profile_p, "1": profile_p}, predictions, "1")[0].value  # labels flipped
    assert before == after == pytest.approx(0.95)


def test_an_estimate_coalesced_with_a_labels_based_drift_retrains_without_waiting() -> None:
    from services.trainer.domain.debounce import Debouncer

    estimate = classify(encode(estimated_drift(NOW)), "drift-events", NOW + timedelta(minutes=5))
    labelled = classify(
        encode(estimated_drift(NOW).model_copy(update={"kinds": [DriftKind.PERFORMANCE]})),
        "drift-events",
        NOW + timedelta(minutes=5),
    )
    assert isinstance(estimate, Trigger) and isinstance(labelled, Trigger)
    (run,) = Debouncer().offer([estimate, labelled])
    assert run.event_id == estimate.event_id and not run.needs_labels
