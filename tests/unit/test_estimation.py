"""Performance estimated without labels (CBPE, DLE): the math against hand-computable and simulated cases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.ensemble import GradientBoostingRegressor

from services.monitor.domain import estimation as est
from services.monitor.domain.evaluation import DataWindow, evaluate_estimate_window
from services.monitor.domain.progress import VersionProgress
from shared.drift_thresholds import DriftThresholds
from shared.estimator import _loss_model, expected_calibration_error, fit_calibration, fit_loss_models
from shared.events import DriftKind
from shared.profile import PerformanceEstimator, ReferenceProfile

T0 = datetime(2026, 1, 1, tzinfo=UTC)
BINARY = PerformanceEstimator(task="classification", rows=1000, classes=["0", "1"])
"""No calibration maps: the model's probabilities are taken as calibrated."""


def calibrated_stream(n: int, seed: int, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Positive-class probabilities, labels drawn from them (calibrated by construction), argmax predictions."""
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1.0, n)
    p = 1 / (1 + np.exp(-2.5 * x))
    y = (rng.random(n) < p).astype(int)
    return p, y, ["1" if v >= 0.5 else "0" for v in p]


def test_calibrated_probabilities_estimate_accuracy_as_mean_max_probability() -> None:
    p = np.array([0.9, 0.2, 0.6, 0.45])
    found = est.cbpe(BINARY, {"0": 1 - p, "1": p}, ["1", "0", "1", "0"], "1")
    assert found[0].metric == "accuracy"
    assert found[0].value == pytest.approx(np.maximum(p, 1 - p).mean())


def test_band_shrinks_with_window_size() -> None:
    stds = []
    for n in (100, 1_000, 10_000):
        p, _, pred = calibrated_stream(n, seed=1)
        stds.append({e.metric: e.std for e in est.cbpe(BINARY, {"0": 1 - p, "1": p}, pred, "1")})
    for metric in ("accuracy", "f1", "roc_auc"):
        assert stds[0][metric] > stds[1][metric] > stds[2][metric]
        assert stds[1][metric] / stds[2][metric] == pytest.approx(np.sqrt(10), rel=0.2)


@pytest.mark.parametrize("shift", [0.0, 0.8])
def test_estimates_match_realized_metrics_of_a_calibrated_model(shift: float) -> None:
    """Covariate shift (inputs move, P(y|x) holds): the estimates follow the realized metrics within their band."""
    p, y, pred = calibrated_stream(20_000, seed=7, shift=shift)
    found = {e.metric: e for e in est.cbpe(BINARY, {"0": 1 - p, "1": p}, pred, "1")}
    y_pred = np.array(pred).astype(int)
    realized = {
        "accuracy": skm.accuracy_score(y, y_pred),
        "f1": skm.f1_score(y, y_pred),
        "roc_auc": skm.roc_auc_score(y, p),
    }
    for metric, value in realized.items():
        assert abs(found[metric].value - value) < 3 * found[metric].std + 0.002, metric


def test_roc_auc_of_separated_and_of_tied_scores() -> None:
    perfect = est.expected_roc_auc(np.array([1.0, 1.0, 0.0, 0.0]), np.array([0.9, 0.8, 0.3, 0.1]))
    assert perfect is not None and perfect.value == pytest.approx(1.0)
    tied = est.expected_roc_auc(np.array([1.0, 0.0]), np.array([0.5, 0.5]))
    assert tied is not None and tied.value == pytest.approx(0.5)  # one tie: half credit, as scikit-learn
    assert est.expected_roc_auc(np.array([0.2, 0.3]), np.array([0.2, 0.3])) is None  # < 1 expected positive


def test_f1_by_hand() -> None:
    # TP = 1 (row 0), FN = 1 (row 1), FP = 0, one row predicted positive: F1 = 2 / (2 + 0 + 1)
    f1 = est.expected_f1(np.array([1.0, 1.0, 0.0, 0.0]), np.array([True, False, False, False]))
    assert f1.value == pytest.approx(2 / 3)


def test_multiclass_accuracy_is_mean_probability_of_the_predicted_class() -> None:
    three = PerformanceEstimator(task="classification", rows=100, classes=["a", "b", "c"])
    rows = {"a": [0.7, 0.1, 0.2], "b": [0.2, 0.8, 0.3], "c": [0.1, 0.1, 0.5]}
    proba = {c: np.tile(v, 10) for c, v in rows.items()}  # ten copies: every class expects a positive
    found = {e.metric: e for e in est.cbpe(three, proba, ["a", "b", "c"] * 10, None)}
    assert found["accuracy"].value == pytest.approx((0.7 + 0.8 + 0.5) / 3)
    assert set(found) == {"accuracy", "f1", "roc_auc"}


def test_window_without_every_class_on_every_row_is_not_estimated() -> None:
    assert est.cbpe(BINARY, {"1": np.array([0.9, 0.1])}, ["1", "0"], "1") == []


def test_calibration_repairs_an_overconfident_model() -> None:
    """A model that says 0.95 but is right 70% of the time: raw CBPE would say 0.95, calibrated says 0.7."""
    rng = np.random.default_rng(3)
    n = 4_000
    pred_pos = rng.random(n) < 0.5
    p_raw = np.where(pred_pos, 0.95, 0.05)
    right = rng.random(n) < 0.7
    y = np.where(right, pred_pos, ~pred_pos).astype(int)
    estimator = fit_calibration(np.column_stack([1 - p_raw, p_raw]), y, [0, 1])
    assert estimator is not None
    assert estimator.calibration_error == pytest.approx(0.25, abs=0.02)
    found = est.cbpe(estimator, {"0": 1 - p_raw, "1": p_raw}, ["1" if v else "0" for v in pred_pos], "1")
    assert found[0].value == pytest.approx(right.mean(), abs=0.005)


def test_calibration_error_by_hand() -> None:
    # bin 0.9: confidence 0.9, both right (gap 0.1); bin 0.6: confidence 0.6, half right (gap 0.1)
    assert expected_calibration_error(np.array([0.9, 0.9, 0.6, 0.6]), np.array([1.0, 1.0, 1.0, 0.0])) == (
        pytest.approx(0.1)
    )


def test_too_small_a_holdout_fits_no_estimator() -> None:
    assert fit_calibration(np.full((10, 2), 0.5), ["0"] * 10, ["0", "1"]) is None


def test_loss_trees_walked_in_numpy_match_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 3))
    target = np.abs(x[:, 0]) + rng.normal(0, 0.1, 500)
    model = _loss_model(["a", "b", "__prediction__"], x, target, seed=0)
    reference = GradientBoostingRegressor(
        n_estimators=60, max_depth=3, learning_rate=0.1, subsample=0.8, min_samples_leaf=20, random_state=0
    ).fit(x, target)
    walked = est.predict_loss(model, {"a": x[:, 0], "b": x[:, 1]}, x[:, 2])
    assert walked == pytest.approx(reference.predict(x), abs=1e-6)


def test_dle_estimates_mae_of_a_regressor_whose_error_grows_with_a_feature() -> None:
    rng = np.random.default_rng(5)

    def stream(n: int, low: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x = rng.uniform(low, 2, n)
        truth = 3 * x + rng.normal(0, 0.2 + 0.5 * x, n)
        return x, 3 * x, truth

    x, pred, truth = stream(3_000, 0.0)
    estimator = fit_loss_models({"x": x}, pred, truth)
    assert estimator is not None
    # inputs move to where errors are larger (within the holdout's range: trees do not extrapolate)
    x, pred, truth = stream(5_000, 1.0)
    found = {e.metric: e.value for e in est.dle(estimator, {"x": x}, pred)}
    realized_mae = np.abs(pred - truth).mean()
    assert found["mae"] == pytest.approx(realized_mae, rel=0.1)
    assert found["rmse"] == pytest.approx(np.sqrt(((pred - truth) ** 2).mean()), rel=0.15)


def window(p: np.ndarray, pred: list[str]) -> DataWindow:
    return DataWindow(
        T0, T0 + timedelta(minutes=1), len(p), np.full(len(p), np.nan), pred, np.full(len(p), np.nan),
        probabilities={"0": 1 - p, "1": p},
    )  # fmt: skip


def profile(accuracy: float) -> ReferenceProfile:
    return ReferenceProfile(rows=1000, features={}, metrics={"accuracy": accuracy}, estimator=BINARY)


def test_an_estimated_drop_is_estimated_performance_drift_without_any_label() -> None:
    t = DriftThresholds()
    confident = np.where(np.arange(2_000) % 2 == 0, 0.97, 0.03)
    unsure = np.where(np.arange(2_000) % 2 == 0, 0.6, 0.4)
    steady = evaluate_estimate_window(window(confident, ["1", "0"] * 1000), profile(0.97), t)
    assert steady is not None and not steady.verdict.drifted
    dropped = evaluate_estimate_window(window(unsure, ["1", "0"] * 1000), profile(0.97), t)
    assert dropped is not None and dropped.verdict.kinds == {DriftKind.ESTIMATED_PERFORMANCE}
    evidence = dropped.verdict.evidence[0]
    assert (evidence.feature, evidence.test) == ("estimated_accuracy", "cbpe")
    assert evidence.statistic == pytest.approx(0.6)
    names = {row[0] for row in dropped.metrics}
    assert {
        "estimated_accuracy",
        "estimated_accuracy_low",
        "estimated_accuracy_high",
        "estimated_f1",
    } <= names


def test_without_an_estimator_nothing_is_estimated() -> None:
    p = np.full(300, 0.8)
    bare = ReferenceProfile(rows=1, features={}, metrics={"accuracy": 0.9})
    assert evaluate_estimate_window(window(p, ["1"] * 300), bare, DriftThresholds()) is None


def test_estimate_alert_state_survives_a_checkpoint_and_old_checkpoints_load() -> None:
    t = DriftThresholds()
    progress = VersionProgress.starting_at(0, 60_000, t)
    progress.estimate.drifting = True
    restored = VersionProgress.from_json(progress.to_json(), t)
    assert restored.estimate.drifting
    old = progress.to_json()
    del old["estimate"]
    assert not VersionProgress.from_json(old, t).estimate.drifting


def test_a_model_registered_with_its_data_gets_an_estimator() -> None:
    """``driftloop models register --data --target`` (onboarding) fits the calibration on the rows given."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from shared.onboarding import onboard

    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"a": rng.normal(size=400), "b": rng.normal(size=400)})
    frame["y"] = (frame["a"] + rng.normal(0, 0.5, 400) > 0).astype(int)
    model = LogisticRegression().fit(frame[["a", "b"]], frame["y"])
    estimator = onboard(model, frame, "y").reference_profile.estimator
    assert estimator is not None and estimator.classes == ["0", "1"] and estimator.rows == 400


@pytest.mark.parametrize(
    ("p1", "predictions"),
    [
        (np.array([1.3, -0.2, 1e300, -1e300]), ["1", "0", "1", "0"]),  # out of [0, 1]: read as 1 and 0
        (np.array([0.9, 0.1, 0.8, 0.3]), ["yes", "no", "yes", "no"]),  # logged classes unknown: argmax
        (np.array([0.9, 0.1, 0.8, 0.3]), ["1", "1", "1", "1"]),  # one class predicted throughout
    ],
)
def test_odd_windows_still_give_estimates_within_bounds(p1: np.ndarray, predictions: list[str]) -> None:
    found = est.cbpe(BINARY, {"0": 1 - np.clip(p1, 0, 1), "1": p1}, predictions, "1")
    for e in found:
        assert 0.0 <= e.value <= 1.0 and e.std >= 0.0 and np.isfinite(e.std), e


def test_nan_probabilities_are_not_estimated() -> None:
    p = np.array([0.9, np.nan])
    assert est.cbpe(BINARY, {"0": 1 - p, "1": p}, ["1", "0"], "1") == []
