"""Fitting a version's performance estimator on held-out rows: calibration for CBPE, loss models for DLE.

Used where a version's holdout is scored: by the trainer after a run, and at registration
(``shared/onboarding.py``). The result is plain JSON in the version's reference profile
(:class:`shared.profile.PerformanceEstimator`), so the monitor applies it with numpy and never unpickles
anything. scikit-learn is imported inside the functions: only fitting needs it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from shared.profile import Calibration, LossModel, LossTree, PerformanceEstimator

PREDICTION_INPUT = "__prediction__"
MIN_ROWS = 50
"""Fewer held-out rows than this fit no estimator: a calibration on 20 rows says more about them than
about the model."""
MAX_POINTS = 200
"""Calibration maps are thinned to at most this many points (isotonic steps on a big holdout run to
thousands; the map stays within 1/MAX_POINTS of the fitted one)."""


def expected_calibration_error(
    confidence: NDArray[np.float64], correct: NDArray[np.float64], bins: int = 10
) -> float:
    """ECE: the share-weighted gap between mean confidence and accuracy over equal-width confidence bins.

    >>> round(expected_calibration_error(np.array([0.9, 0.9, 0.6, 0.6]), np.array([1.0, 1.0, 1.0, 0.0])), 3)
    0.1
    """
    if len(confidence) == 0:
        return 0.0
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    gap = np.bincount(which, weights=confidence - correct, minlength=bins)
    return float(np.abs(gap).sum() / len(confidence))


def _thin(x: NDArray[np.float64], y: NDArray[np.float64]) -> Calibration:
    if len(x) > MAX_POINTS:
        keep = np.unique(np.linspace(0, len(x) - 1, MAX_POINTS).round().astype(int))
        x, y = x[keep], y[keep]
    return Calibration(x=[float(v) for v in x], y=[float(v) for v in y])


def fit_calibration(
    proba: NDArray[np.float64], truth: Sequence[object], classes: Sequence[object]
) -> PerformanceEstimator | None:
    """Isotonic calibration of each class's probability (one-vs-rest) on held-out rows; None if too few.

    ``proba`` is (rows, classes) in the order of ``classes`` (the model's ``classes_``); ``truth`` the labels.
    """
    from sklearn.isotonic import IsotonicRegression

    names = [str(c) for c in classes]
    y = np.asarray([str(t) for t in truth], dtype=object)
    proba = np.asarray(proba, dtype=float)
    if len(y) < MIN_ROWS or proba.ndim != 2 or proba.shape[1] != len(names) or len(names) < 2:
        return None
    predicted = proba.argmax(axis=1)
    correct = (y == np.asarray(names, dtype=object)[predicted]).astype(float)
    ece = expected_calibration_error(proba.max(axis=1), correct)
    maps: dict[str, Calibration] = {}
    for i, name in enumerate(names):
        if len(names) == 2 and i == 0:
            continue  # binary: the second class's map decides, the first is its complement
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
        iso.fit(proba[:, i], (y == name).astype(float))
        maps[name] = _thin(np.asarray(iso.X_thresholds_, float), np.asarray(iso.y_thresholds_, float))
    return PerformanceEstimator(
        task="classification", rows=len(y), classes=names, calibration=maps, calibration_error=ece
    )


def _trees(model: Any) -> list[LossTree]:
    out = []
    for estimator in model.estimators_[:, 0]:
        t = estimator.tree_
        out.append(
            LossTree(
                feature=[int(v) for v in t.feature],
                threshold=[float(v) for v in t.threshold],
                left=[int(v) for v in t.children_left],
                right=[int(v) for v in t.children_right],
                value=[float(v) for v in t.value[:, 0, 0]],
            )
        )
    return out


def _loss_model(
    inputs: list[str], x: NDArray[np.float64], target: NDArray[np.float64], seed: int
) -> LossModel:
    from sklearn.ensemble import GradientBoostingRegressor

    fill = np.nanmedian(x, axis=0)
    fill = np.where(np.isfinite(fill), fill, 0.0)
    filled = np.where(np.isfinite(x), x, fill)
    # leaves of at least 2% of the rows: a leaf of a few extreme rows at the edge of the holdout would
    # otherwise decide every row beyond it, and shifted windows live there
    leaf = max(20, len(target) // 50)
    model = GradientBoostingRegressor(
        n_estimators=60,
        max_depth=3,
        learning_rate=0.1,
        subsample=0.8,
        min_samples_leaf=leaf,
        random_state=seed,
    )
    model.fit(filled, target)
    return LossModel(
        inputs=inputs,
        fill=[float(v) for v in fill],
        base=float(np.asarray(model.init_.constant_).ravel()[0]),
        learning_rate=float(model.learning_rate),
        trees=_trees(model),
    )


def fit_loss_models(
    numeric: Mapping[str, NDArray[np.float64]],
    predictions: NDArray[np.float64],
    truth: NDArray[np.float64],
    seed: int = 0,
) -> PerformanceEstimator | None:
    """DLE: boosted trees of the absolute and the squared error from the numeric features and the output.

    Categorical features are not inputs (the monitor's windows would need the training's encoding); the
    output itself carries much of what the loss depends on.
    """
    predictions = np.asarray(predictions, dtype=float)
    truth = np.asarray(truth, dtype=float)
    ok = np.isfinite(predictions) & np.isfinite(truth)
    if ok.sum() < MIN_ROWS:
        return None
    names = [*numeric, PREDICTION_INPUT]
    x = np.column_stack([*(np.asarray(v, dtype=float) for v in numeric.values()), predictions])[ok]
    error = predictions[ok] - truth[ok]
    return PerformanceEstimator(
        task="regression",
        rows=int(ok.sum()),
        absolute_error=_loss_model(names, x, np.abs(error), seed),
        squared_error=_loss_model(names, x, error**2, seed),
    )


def fit_estimator(
    model: Any, inputs: Any, truth: Any, numeric_features: Sequence[str], *, classification: bool
) -> PerformanceEstimator | None:
    """A fitted model's estimator from held-out ``inputs`` (a DataFrame) and their ``truth``.

    Classifiers need ``predict_proba`` (their class names keyed as the model servers log them, ``str`` of
    each class); regressors get loss models on ``numeric_features``. None: nothing could be fitted (too few
    rows, no probabilities, a model that fails on the rows).
    """
    from shared.answer_type import plain

    try:
        if classification:
            if not hasattr(model, "predict_proba"):
                return None
            classes = [str(plain(c)) for c in model.classes_]
            labels = [str(plain(t)) for t in truth]
            return fit_calibration(np.asarray(model.predict_proba(inputs), dtype=float), labels, classes)
        numeric = {n: np.asarray(inputs[n], dtype=float) for n in numeric_features if n in inputs}
        predictions = np.asarray(model.predict(inputs), dtype=float)
        return fit_loss_models(numeric, predictions, np.asarray(truth, dtype=float))
    except (ValueError, TypeError, AttributeError):  # a model or data the estimator cannot use: no estimate
        return None
