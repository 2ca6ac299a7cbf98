"""Fitting and scoring: train a recipe on a snapshot's training rows, score any model on its held-out rows.

Everything here is deterministic for a given snapshot and recipe (the estimator is seeded), which is what
"re-running a version's recipe on its snapshot reproduces the same model" rests on.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from services.trainer.dataset import SPLIT, coerce_features
from services.trainer.gate import Scorecard
from services.trainer.recipe import TrainingRecipe, build_estimator
from shared.feature_schema import FeatureSchema


def labels_of(frame: pd.DataFrame, recipe: TrainingRecipe) -> pd.Series:
    """The target column: class names as text, or numbers for regression."""
    if recipe.task == "classification":
        return frame[recipe.label_column].astype(str)
    return pd.to_numeric(frame[recipe.label_column], errors="coerce").astype(float)


def inputs_of(frame: pd.DataFrame, recipe: TrainingRecipe, schema: FeatureSchema) -> pd.DataFrame:
    features = recipe.feature_names(schema)
    return coerce_features(frame, schema, features)[features]


def fit(snapshot_frame: pd.DataFrame, recipe: TrainingRecipe, schema: FeatureSchema) -> Any:
    """A fitted pipeline trained on the snapshot's ``train`` rows."""
    train = snapshot_frame[snapshot_frame[SPLIT] == "train"]
    model = build_estimator(recipe, schema)
    model.fit(inputs_of(train, recipe, schema), labels_of(train, recipe))
    return model


def score(model: Any, holdout: pd.DataFrame, recipe: TrainingRecipe, schema: FeatureSchema) -> Scorecard:
    """Every metric of the recipe's task on ``holdout``, and the mean prediction latency in ms."""
    from sklearn import metrics as m

    x = inputs_of(holdout, recipe, schema)
    y = labels_of(holdout, recipe)
    started = time.perf_counter()
    predicted = model.predict(x)
    latency_ms = (time.perf_counter() - started) * 1000 / max(1, len(x))
    results: dict[str, float] = {}
    if recipe.task == "classification":
        predicted = np.asarray(predicted).astype(str)
        results["accuracy"] = float(m.accuracy_score(y, predicted))
        results["balanced_accuracy"] = float(m.balanced_accuracy_score(y, predicted))
        results["f1_macro"] = float(m.f1_score(y, predicted, average="macro", zero_division=0))
        if hasattr(model, "predict_proba"):
            proba = model.predict_proba(x)
            classes = [str(c) for c in model.classes_]
            if set(y) <= set(classes):
                results["log_loss"] = float(m.log_loss(y, proba, labels=classes))
                if len(classes) == 2 and y.nunique() == 2:
                    results["roc_auc"] = float(m.roc_auc_score(y == classes[1], proba[:, 1]))
    else:
        results["rmse"] = float(np.sqrt(m.mean_squared_error(y, predicted)))
        results["mae"] = float(m.mean_absolute_error(y, predicted))
        results["r2"] = float(m.r2_score(y, predicted))
    return Scorecard(metrics=results, latency_ms=latency_ms)


def predict(model: Any, frame: pd.DataFrame, recipe: TrainingRecipe, schema: FeatureSchema) -> list[Any]:
    """The model's outputs on ``frame``, as plain Python values (for profiles and comparisons)."""
    out = model.predict(inputs_of(frame, recipe, schema))
    return [str(v) for v in out] if recipe.task == "classification" else [float(v) for v in out]
