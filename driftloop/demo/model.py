"""The demo model: its training recipe and drift thresholds, its first version, and the oracle it is judged by.

The first version is built exactly as the trainer builds a retrained one from the same recipe (median
imputation of the numeric features in front of the recipe's estimator), so champion, challenger and oracle
differ only in the rows they learnt from.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from driftloop.demo.dataset import DriftingDataset, StreamPlan
from shared.drift_thresholds import DriftThresholds
from shared.estimator import fit_estimator
from shared.importance import permutation_importance
from shared.profile import ReferenceProfile, build_profile

ESTIMATOR: dict[str, Any] = {"factory": "sklearn.discriminant_analysis:LinearDiscriminantAnalysis"}


def estimator_name(estimator: dict[str, Any] | None = None) -> str:
    """The estimator's class name, for people: ``LinearDiscriminantAnalysis``."""
    return str((estimator or ESTIMATOR)["factory"]).rpartition(":")[2]


def training_recipe(max_rows: int = 1000) -> dict[str, Any]:
    """What the trainer runs on drift: linear discriminant analysis on the ``max_rows`` most recent labelled
    predictions.

    A short, recent window is what a drifted world needs: every row of it is from after the change once the
    monitor has seen enough windows to alert, and LDA learns this data well from a few hundred rows. The
    challenger must beat the champion by five points on the 200 held-out rows: less is within their noise,
    and a later alert's retraining should not replace a good model by a lucky one.
    """
    return {
        "estimator": ESTIMATOR,
        "window": {"policy": "last_n", "max_rows": max_rows, "holdout_share": 0.2},
        "validation": {"min_rows": min(300, max_rows)},
        "promotion": {"min_improvement": 0.05},
    }


def drift_thresholds() -> DriftThresholds:
    """Thresholds for daily weather: effects of at least 0.75 standard deviations, in 3 windows out of 3.

    Weather moves with the seasons, so a smaller effect or a single window would alert on a cold year; the
    real change at row 12,000 moves the sea-level pressure by several standard deviations.
    """
    return DriftThresholds(
        numeric_effect=0.75,
        categorical_effect=0.2,
        min_window_size=100,
        windows_needed=3,
        windows_considered=3,
        cooldown_windows=5,
        performance_drop=0.1,
    )


def build_pipeline(estimator: dict[str, Any] | None = None) -> Any:
    """An unfitted pipeline: median imputation, then the recipe's estimator (seeded like the trainer's)."""
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline

    spec = estimator or ESTIMATOR
    module_name, _, attr = str(spec["factory"]).partition(":")
    factory = getattr(importlib.import_module(module_name), attr)
    params = dict(spec.get("params", {}))
    if "random_state" in inspect.signature(factory).parameters:
        params.setdefault("random_state", 0)
    return Pipeline(
        [
            ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
            ("model", factory(**params)),
        ]
    )


def accuracy(predicted: Sequence[Any], truth: Sequence[Any]) -> float:
    """Share of ``predicted`` equal to ``truth`` (compared as text, as the monitor does); NaN when empty."""
    if not truth:
        return float("nan")
    return sum(str(p) == str(t) for p, t in zip(predicted, truth, strict=True)) / len(truth)


@dataclass(frozen=True)
class FirstVersion:
    """The model production starts with: fitted on the pre-drift rows, with its reference profile."""

    estimator: Any
    validation_accuracy: float
    profile: ReferenceProfile
    fit_rows: range
    validation_rows: range


def train_first_version(data: DriftingDataset, plan: StreamPlan) -> FirstVersion:
    """Fit on the plan's training rows, score on its held-out tail, profile the training columns.

    Examples
    --------
    >>> from driftloop.demo.dataset import rainfall, rainfall_plan
    >>> first = train_first_version(rainfall(), rainfall_plan())
    >>> round(first.validation_accuracy, 2) > 0.7
    True
    """
    fit, held_out = plan.fit_rows, plan.validation_rows
    estimator = build_pipeline().fit(data.X(fit), data.y(fit))
    validation = accuracy(list(estimator.predict(data.X(held_out))), data.y(held_out))
    columns = {f: data.frame[f].iloc[fit.start : fit.stop].tolist() for f in data.features}
    profile = build_profile(
        columns,
        predictions=[str(p) for p in estimator.predict(data.X(fit))],
        metrics={"accuracy": validation},
        # calibrated on the held-out tail, so the monitor estimates accuracy before labels arrive
        estimator=fit_estimator(
            estimator, data.X(held_out), data.y(held_out), list(data.features), classification=True
        ),
    )
    # as the trainer does for every version: what the monitor ranks drifted features by
    importance = permutation_importance(
        estimator, data.X(held_out), pd.Series(data.y(held_out)), "classification"
    )
    return FirstVersion(
        estimator, validation, profile.model_copy(update={"feature_importance": importance}), fit, held_out
    )


def oracle_accuracy(data: DriftingDataset, scored_rows: Sequence[int]) -> float:
    """Accuracy on ``scored_rows`` of the same recipe trained on every other post-drift row of the data.

    The ceiling for the retrained model: it learnt from more rows of the new world than the loop could have
    (every post-drift row outside the scored ones, later ones included), never from the rows it is scored on.
    """
    scored = sorted(set(scored_rows))
    if not scored:
        return float("nan")
    excluded = set(scored)
    train = [r for r in range(data.change_point, len(data)) if r not in excluded]
    estimator = build_pipeline().fit(data.X(train), data.y(train))
    return accuracy(list(estimator.predict(data.X(scored))), data.y(scored))
