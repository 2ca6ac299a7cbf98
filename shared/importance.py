"""How much a model relies on each feature: permutation importance on held-out rows, at a bounded cost.

The trainer measures it on the holdout it already scores, ``driftloop models register ... --data --target``
on the user's data; either way it is stored in the version's reference profile (``feature_importance``), so
the monitor can weigh each drifted feature by how much the model relies on it.

Cost: at most ``MAX_ROWS`` rows (a seeded sample) and ``REPEATS`` shuffles per feature, so a model with F
features is asked ``1 + REPEATS x F`` predictions on at most 2,000 rows, whatever the data's size. Each
prediction is one vectorised call on the whole sample (scikit-learn's ``permutation_importance``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import pandas as pd

MAX_ROWS = 2000
REPEATS = 3
Task = Literal["classification", "regression"]


def _scorer(task: Task) -> Any:
    """Accuracy (classes compared as text: "1" is 1 is True) or minus RMSE; higher is better for both."""

    def accuracy(model: Any, x: pd.DataFrame, y: Any) -> float:
        predicted = np.asarray(model.predict(x)).astype(str)
        return float((predicted == np.asarray(y).astype(str)).mean())

    def minus_rmse(model: Any, x: pd.DataFrame, y: Any) -> float:
        errors = np.asarray(model.predict(x), dtype=float) - np.asarray(y, dtype=float)
        return -float(np.sqrt(np.mean(errors**2)))

    return accuracy if task == "classification" else minus_rmse


class _Predictor:
    """Any object with ``predict``, as scikit-learn's permutation importance wants one (it never fits it)."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def fit(self, x: Any, y: Any) -> _Predictor:  # pragma: no cover - required by the signature check only
        raise NotImplementedError("permutation importance never refits the model")

    def predict(self, x: pd.DataFrame) -> Any:
        return self.model.predict(x)


def permutation_importance(
    model: Any,
    inputs: pd.DataFrame,
    target: pd.Series,
    task: Task,
    *,
    max_rows: int = MAX_ROWS,
    repeats: int = REPEATS,
    seed: int = 0,
) -> dict[str, float]:
    """Mean worsening of the model's score when each feature is shuffled, on at most ``max_rows`` rows.

    Rows without a target are left out. A feature the model ignores scores 0 (or a hair below, by chance);
    an empty result means nothing could be measured (no labelled rows).

    Examples
    --------
    >>> from sklearn.tree import DecisionTreeClassifier
    >>> rng = np.random.default_rng(0)
    >>> x = pd.DataFrame({"used": rng.normal(size=400), "ignored": rng.normal(size=400)})
    >>> y = pd.Series((x["used"] > 0).astype(int))
    >>> model = DecisionTreeClassifier(max_depth=2, random_state=0).fit(x[["used"]].assign(ignored=0.0), y)
    >>> scores = permutation_importance(model, x, y, "classification")
    >>> scores["used"] > 0.4, scores["ignored"]
    (True, 0.0)
    """
    from sklearn.inspection import permutation_importance as sklearn_permutation_importance
    from threadpoolctl import threadpool_limits  # scikit-learn's own dependency

    labelled = target.notna().to_numpy()
    x, y = inputs[labelled], target[labelled]
    if len(x) == 0 or inputs.shape[1] == 0:
        return {}
    if len(x) > max_rows:
        picked = np.sort(np.random.default_rng(seed).choice(len(x), size=max_rows, replace=False))
        x, y = x.iloc[picked], y.iloc[picked]
    # one thread per prediction: on 2,000 rows threads gain little, and on a busy machine OpenMP's waiting
    # threads made a HistGradientBoosting model's importance 3-13x slower (docs/trainer.md)
    with threadpool_limits(limits=1):
        result = sklearn_permutation_importance(
            _Predictor(model), x, y.to_numpy(), scoring=_scorer(task), n_repeats=repeats, random_state=seed
        )
    means = result["importances_mean"]
    return {str(name): float(v) + 0.0 for name, v in zip(x.columns, means, strict=True) if np.isfinite(v)}


def importance_shares(importance: Mapping[str, float]) -> dict[str, float]:
    """Each feature's share of the model's total importance; negative importance (noise) counts as 0.

    Empty when nothing is known or every feature scores 0: no feature can then be said to matter more.

    Examples
    --------
    >>> importance_shares({"a": 0.75, "b": 0.25, "c": -0.01})
    {'a': 0.75, 'b': 0.25, 'c': 0.0}
    >>> importance_shares({"a": 0.0})
    {}
    """
    clipped = {name: max(float(v), 0.0) for name, v in importance.items()}
    total = sum(clipped.values())
    if total <= 0:
        return {}
    return {name: v / total for name, v in clipped.items()}
