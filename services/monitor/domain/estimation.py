"""Performance estimated without labels, per window: CBPE for classifiers, DLE for regressors. Pure, vectorised.

CBPE (confidence-based performance estimation): once a classifier's probabilities are calibrated, row i is
right with probability q_i (the calibrated probability of the class it predicted), so the window's expected
confusion matrix, and every metric computed from it, follows from the probabilities alone. Each estimate
carries a band: the sampling spread of the metric if every row's outcome were drawn from its calibrated
probability (a normal approximation; the delta method for F1, Hanley-McNeil for ROC AUC).

Its blind spot: CBPE assumes P(y | x) did not change. Under covariate shift (inputs move, the relation holds)
it tracks accuracy; under concept shift (the same inputs now mean another class) the probabilities stay as
confident as before and the estimate does not move: only labels show it.

DLE (direct loss estimation): small boosted trees, fitted on the holdout, predict each row's absolute and
squared error from its inputs and the model's output; their means estimate the window's MAE and RMSE.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from numpy.typing import NDArray

from shared.profile import LossModel, PerformanceEstimator

PREDICTION_INPUT = "__prediction__"
PREFIX = "estimated_"


@dataclass(frozen=True)
class Estimate:
    """One estimated metric with its standard deviation (its band is ``value ± z · std``)."""

    metric: str
    value: float
    std: float

    def rows(self, z: float) -> list[tuple[str, str, float]]:
        """``window_metrics`` rows: the estimate and the ends of its band, clipped to [0, 1] for scores."""
        low, high = self.value - z * self.std, self.value + z * self.std
        if self.metric not in ("mae", "rmse"):
            low, high = max(low, 0.0), min(high, 1.0)
        name = PREFIX + self.metric
        return [(name, "", self.value), (f"{name}_low", "", low), (f"{name}_high", "", high)]


def z_of(confidence: float) -> float:
    """The two-sided normal quantile of ``confidence`` (0.95 → 1.96)."""
    return NormalDist().inv_cdf((1 + confidence) / 2)


def calibrated(
    estimator: PerformanceEstimator, probabilities: Mapping[str, NDArray[np.float64]], rows: int
) -> NDArray[np.float64] | None:
    """(rows, classes) calibrated probabilities in ``estimator.classes`` order; None unless every row has all.

    Binary: the second class's map, the first class its complement. Multiclass: each class's map, then rows
    renormalised to sum to one.
    """
    classes = estimator.classes
    if len(classes) < 2 or any(len(probabilities.get(c, ())) != rows for c in classes):
        return None
    raw = np.column_stack([np.asarray(probabilities[c], dtype=float) for c in classes])
    if not np.isfinite(raw).all():
        return None
    raw = np.clip(raw, 0.0, 1.0)  # a logged 1.3 or -0.2 is read as the nearest probability

    def apply(i: int) -> NDArray[np.float64]:
        cal = estimator.calibration.get(classes[i])
        return raw[:, i] if cal is None else np.interp(raw[:, i], cal.x, cal.y)

    if len(classes) == 2:
        p = np.clip(apply(1), 0.0, 1.0)
        return np.column_stack([1 - p, p])
    out = np.column_stack([apply(i) for i in range(len(classes))])
    total = out.sum(axis=1, keepdims=True)
    return np.where(total > 0, out / np.where(total > 0, total, 1.0), 1.0 / len(classes))


def expected_accuracy(correct_proba: NDArray[np.float64]) -> Estimate:
    """Mean probability of being right; std of the share right if each row were an independent Bernoulli.

    >>> e = expected_accuracy(np.array([0.9, 0.8, 0.7, 0.6]))
    >>> round(e.value, 3), round(e.std, 4)
    (0.75, 0.2092)
    """
    n = len(correct_proba)
    q = correct_proba
    return Estimate("accuracy", float(q.mean()), float(np.sqrt((q * (1 - q)).sum()) / n))


def expected_f1(p: NDArray[np.float64], predicted: NDArray[np.bool_]) -> Estimate:
    """F1 of one class from its calibrated probability ``p`` and where it was predicted (delta-method std).

    With TP = Σ p over predicted rows, FN = Σ p over the others and m rows predicted:
    F1 = 2·TP / (TP + FN + m).

    >>> round(expected_f1(np.array([1.0, 1.0, 0.0, 0.0]), np.array([True, False, False, False])).value, 3)
    0.667
    """
    var = p * (1 - p)
    a, b, m = float(p[predicted].sum()), float(p[~predicted].sum()), float(predicted.sum())
    denom = a + b + m
    if denom == 0:
        return Estimate("f1", 0.0, 0.0)
    da, db = 2 * (b + m) / denom**2, -2 * a / denom**2
    std = np.sqrt(da**2 * var[predicted].sum() + db**2 * var[~predicted].sum())
    return Estimate("f1", 2 * a / denom, float(std))


def expected_roc_auc(p: NDArray[np.float64], score: NDArray[np.float64]) -> Estimate | None:
    """ROC AUC with each row counted as ``p`` of a positive and ``1 - p`` of a negative, ranked by ``score``.

    One sort; tied scores form one step of the curve, as scikit-learn's. Std: Hanley-McNeil with the
    expected numbers of positives and negatives. None when either expected count is below one.

    >>> round(expected_roc_auc(np.array([1.0, 1.0, 0.0, 0.0]), np.array([0.9, 0.8, 0.3, 0.1])).value, 3)
    1.0
    """
    positives, negatives = float(p.sum()), float((1 - p).sum())
    if positives < 1 or negatives < 1:
        return None
    order = np.argsort(-score, kind="stable")
    s = score[order]
    last = np.r_[np.nonzero(s[1:] != s[:-1])[0], len(s) - 1]  # the last row of each run of equal scores
    tp = np.r_[0.0, np.cumsum(p[order])[last]] / positives
    fp = np.r_[0.0, np.cumsum(1 - p[order])[last]] / negatives
    auc = float(np.sum((fp[1:] - fp[:-1]) * (tp[1:] + tp[:-1]) / 2))
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    var = (auc * (1 - auc) + (positives - 1) * (q1 - auc**2) + (negatives - 1) * (q2 - auc**2)) / (
        positives * negatives
    )
    return Estimate("roc_auc", auc, float(np.sqrt(max(var, 0.0))))


def _macro(metric: str, parts: Sequence[Estimate]) -> Estimate:
    """The mean of per-class estimates, their errors taken as independent."""
    k = len(parts)
    return Estimate(
        metric, float(np.mean([e.value for e in parts])), float(np.sqrt(sum(e.std**2 for e in parts)) / k)
    )


def cbpe(
    estimator: PerformanceEstimator,
    probabilities: Mapping[str, NDArray[np.float64]],
    predictions: Sequence[str],
    positive: str | None,
) -> list[Estimate]:
    """Estimated accuracy, F1 and ROC AUC of a window (binary on ``positive``, macro one-vs-rest otherwise).

    Empty when the window's probabilities do not cover every class on every row. A row's prediction is the
    class it logged, or the most probable class when the logged ones are not among the classes.
    """
    rows = len(predictions)
    proba = calibrated(estimator, probabilities, rows)
    if proba is None or rows == 0:
        return []
    classes = estimator.classes
    logged = np.asarray(predictions, dtype=object)
    predicted = np.full(rows, -1, dtype=np.intp)
    for i, name in enumerate(classes):  # one comparison over the window per class, not a lookup per row
        predicted[logged == name] = i
    if (predicted < 0).any():
        predicted = proba.argmax(axis=1)
    index = {c: i for i, c in enumerate(classes)}
    out = [expected_accuracy(proba[np.arange(rows), predicted])]
    if positive is not None and positive in index:
        i = index[positive]
        score = np.asarray(probabilities[positive], dtype=float)
        out.append(expected_f1(proba[:, i], predicted == i))
        auc = expected_roc_auc(proba[:, i], score)
        out += [auc] if auc is not None else []
    elif len(classes) > 2:
        out.append(_macro("f1", [expected_f1(proba[:, i], predicted == i) for i in range(len(classes))]))
        aucs = [
            expected_roc_auc(proba[:, i], np.asarray(probabilities[c], dtype=float))
            for i, c in enumerate(classes)
        ]
        if all(a is not None for a in aucs):
            out.append(_macro("roc_auc", [a for a in aucs if a is not None]))
    return out


def predict_loss(
    model: LossModel, numeric: Mapping[str, NDArray[np.float64]], prediction: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Each row's predicted loss: the trees walked level by level for all rows at once.

    A feature absent from some rows of the window (its array is shorter than the window) counts as missing
    everywhere and takes its fill value.
    """
    n = len(prediction)
    columns = []
    for name, fill in zip(model.inputs, model.fill, strict=True):
        values = prediction if name == PREDICTION_INPUT else numeric.get(name)
        column = np.full(n, np.nan) if values is None or len(values) != n else np.asarray(values, dtype=float)
        columns.append(np.where(np.isfinite(column), column, fill))
    x = np.column_stack(columns).astype(np.float32).astype(float) if columns else np.empty((n, 0))
    total = np.full(n, model.base)
    rows = np.arange(n)
    for tree in model.trees:
        feature, threshold = np.asarray(tree.feature), np.asarray(tree.threshold)
        left, right, value = np.asarray(tree.left), np.asarray(tree.right), np.asarray(tree.value)
        node = np.zeros(n, dtype=np.intp)
        while True:
            inner = left[node] != -1
            if not inner.any():
                break
            f = np.where(inner, feature[node], 0)
            go_left = x[rows, f] <= threshold[node]
            node = np.where(inner, np.where(go_left, left[node], right[node]), node)
        total += model.learning_rate * value[node]
    return total


def dle(
    estimator: PerformanceEstimator,
    numeric: Mapping[str, NDArray[np.float64]],
    prediction: NDArray[np.float64],
) -> list[Estimate]:
    """Estimated MAE and RMSE of a window from the loss models (rows with a numeric output)."""
    ok = np.isfinite(prediction)
    if not ok.any():
        return []
    if not ok.all():
        numeric = {k: v[ok] if len(v) == len(prediction) else v for k, v in numeric.items()}
        prediction = prediction[ok]
    n = len(prediction)
    out = []
    if estimator.absolute_error is not None:
        a = np.maximum(predict_loss(estimator.absolute_error, numeric, prediction), 0.0)
        out.append(Estimate("mae", float(a.mean()), float(a.std() / np.sqrt(n))))
    if estimator.squared_error is not None:
        s = np.maximum(predict_loss(estimator.squared_error, numeric, prediction), 0.0)
        mse, std = float(s.mean()), float(s.std() / np.sqrt(n))
        rmse = float(np.sqrt(mse))
        out.append(Estimate("rmse", rmse, std / (2 * rmse) if rmse > 0 else 0.0))
    return out
