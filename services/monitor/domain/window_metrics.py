"""Per-window metrics, pure and vectorised: traffic, latency, outputs, features, and quality once labelled.

Each function returns ``(metric, feature, value)`` triples, the long format of the ``window_metrics`` table
(``feature`` is empty for model-level metrics, or names the feature or class a metric is about).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from sklearn import metrics as skm

MetricRow = tuple[str, str, float]
Task = Literal["classification", "regression"]
POSITIVE_NAMES = ("1", "true", "True", "yes", "positive")


def traffic_metrics(count: int, window_seconds: float, latency_ms: NDArray[np.float64]) -> list[MetricRow]:
    """Volume and latency percentiles (NaN latencies, from apps that don't time calls, are ignored)."""
    rows: list[MetricRow] = [("count", "", float(count)), ("events_per_s", "", count / window_seconds)]
    lat = latency_ms[np.isfinite(latency_ms)]
    if len(lat):
        p50, p95, p99 = np.percentile(lat, [50, 95, 99])
        rows += [("latency_p50_ms", "", p50), ("latency_p95_ms", "", p95), ("latency_p99_ms", "", p99)]
    return [(m, f, float(v)) for m, f, v in rows]


def output_metrics(predictions: Sequence[str], prediction_num: NDArray[np.float64]) -> list[MetricRow]:
    """The distribution of outputs: share per class, or mean and spread of a numeric output."""
    if len(predictions) == 0:
        return []
    numeric = prediction_num[np.isfinite(prediction_num)]
    counts = Counter(predictions)  # a hash count in C; sorting 100,000 strings as objects took 27 ms
    if len(counts) <= 50:
        rows = [("prediction_share", str(c), float(n / len(predictions))) for c, n in sorted(counts.items())]
    else:
        rows = []
    if len(numeric) == len(predictions):
        rows += [("prediction_mean", "", float(numeric.mean())), ("prediction_std", "", float(numeric.std()))]
    return rows


def feature_metrics(
    numeric: Mapping[str, NDArray[np.float64]],
    categorical: Mapping[str, Sequence[str]],
    missing: Mapping[str, int],
    count: int,
) -> list[MetricRow]:
    """Mean, spread and missing rate of every feature seen in the window."""
    rows: list[MetricRow] = []
    for name, values in numeric.items():
        if len(values):
            rows += [("feature_mean", name, float(values.mean())), ("feature_std", name, float(values.std()))]
    for name, cats in categorical.items():
        rows.append(("feature_distinct", name, float(len(set(cats)))))
    if count:
        names = set(numeric) | set(categorical) | set(missing)
        rows += [("missing_rate", name, missing.get(name, 0) / count) for name in sorted(names)]
    return rows


def infer_task(labels: Sequence[str], label_num: NDArray[np.float64]) -> Task:
    """Regression when every label is a number with many distinct values; classification otherwise."""
    if len(label_num) and np.isfinite(label_num).all() and len(np.unique(label_num)) > 20:
        return "regression"
    return "classification"


def positive_class(classes: Sequence[str]) -> str | None:
    """The class ROC AUC and log-loss score for in a binary problem ('1', 'true', ... else the last)."""
    if len(classes) != 2:
        return None
    for name in POSITIVE_NAMES:
        if name in classes:
            return name
    return sorted(classes)[-1]


def classification_metrics(
    y_true: Sequence[str], y_pred: Sequence[str], positive_proba: NDArray[np.float64] | None = None
) -> list[MetricRow]:
    """Accuracy, precision, recall, F1 (binary on the positive class, macro otherwise), ROC AUC, log-loss."""
    if len(y_true) == 0:
        return []
    true = np.asarray(y_true, dtype=object).astype(str)
    pred = np.asarray(y_pred, dtype=object).astype(str)
    classes = sorted(set(true) | set(pred))
    pos = positive_class(classes)
    kwargs = {"average": "binary", "pos_label": pos} if pos is not None else {"average": "macro"}
    rows: list[MetricRow] = [
        ("accuracy", "", float(skm.accuracy_score(true, pred))),
        ("precision", "", float(skm.precision_score(true, pred, zero_division=0, **kwargs))),
        ("recall", "", float(skm.recall_score(true, pred, zero_division=0, **kwargs))),
        ("f1", "", float(skm.f1_score(true, pred, zero_division=0, **kwargs))),
        ("error_rate", "", float(np.mean(true != pred))),
    ]
    if pos is not None and positive_proba is not None:
        ok = np.isfinite(positive_proba)
        y = (true[ok] == pos).astype(int)
        if ok.any() and 0 < y.sum() < len(y):
            p = np.clip(positive_proba[ok], 1e-15, 1 - 1e-15)
            rows.append(("roc_auc", "", float(skm.roc_auc_score(y, p))))
            rows.append(("log_loss", "", float(skm.log_loss(y, p, labels=[0, 1]))))
    return rows


def regression_metrics(y_true: NDArray[np.float64], y_pred: NDArray[np.float64]) -> list[MetricRow]:
    """MAE, RMSE and R2 on the labelled rows with numeric outputs."""
    ok = np.isfinite(y_true) & np.isfinite(y_pred)
    if not ok.any():
        return []
    t, p = y_true[ok], y_pred[ok]
    rows: list[MetricRow] = [
        ("mae", "", float(skm.mean_absolute_error(t, p))),
        ("rmse", "", float(np.sqrt(skm.mean_squared_error(t, p)))),
    ]
    if len(t) > 1:
        rows.append(("r2", "", float(skm.r2_score(t, p))))
    return rows


def label_metrics(count: int, labelled: int, delay_s: NDArray[np.float64]) -> list[MetricRow]:
    """How much of the window has ground truth yet, and how late it came."""
    rows: list[MetricRow] = [
        ("labelled", "", float(labelled)),
        ("label_coverage", "", labelled / count if count else 0.0),
    ]
    delay = delay_s[np.isfinite(delay_s)]
    if len(delay):
        p50, p95 = np.percentile(delay, [50, 95])
        rows += [("label_delay_p50_s", "", float(p50)), ("label_delay_p95_s", "", float(p95))]
    return rows
