"""Fitting and scoring: train a recipe on a snapshot's training rows, score any model on its held-out rows.

Everything here is deterministic for a given snapshot and recipe (the estimator is seeded), which is what
"re-running a version's recipe on its snapshot reproduces the same model" rests on.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from services.trainer.domain.dataset import SPLIT, coerce_features
from services.trainer.domain.gate import Scorecard
from services.trainer.domain.recipe import TrainingRecipe, build_estimator
from shared.answer_type import OutputType, as_output_type, output_type_of
from shared.estimator import fit_estimator
from shared.feature_schema import FeatureSchema
from shared.profile import PerformanceEstimator

_DTYPE: dict[OutputType, Any] = {"bool": bool, "int": "int64", "float": float, "str": object}


def typed_labels(text: pd.Series, output_type: OutputType | None) -> pd.Series:
    """Class labels read back as text (ClickHouse's ``label`` is a String) in the type the model answers with.

    Labels that do not all convert stay text: a model is never trained on half-converted classes.

    Examples
    --------
    >>> typed_labels(pd.Series(["0", "1"]), "int").tolist(), typed_labels(pd.Series(["0", "x"]), "int").tolist()
    ([0, 1], ['0', 'x'])
    """
    text = text.astype(str)
    if output_type is None or output_type == "str":
        return text
    try:
        values = [as_output_type(v, output_type) for v in text]
        return pd.Series(values, index=text.index, dtype=_DTYPE[output_type])
    except (ValueError, OverflowError):  # OverflowError: a whole number past int64
        return text


def infer_output_type(frame: pd.DataFrame) -> OutputType | None:
    """``int`` when every label arrived as a whole JSON number (``label_num`` set and integral), else None."""
    if "label_num" not in frame or frame.empty:
        return None
    numbers = pd.to_numeric(frame["label_num"], errors="coerce")
    if numbers.isna().any() or not all(float(v).is_integer() for v in numbers):
        return None
    return "int" if all(str(v).lstrip("-").isdigit() for v in frame["label"].astype(str)) else None


def labels_of(
    frame: pd.DataFrame, recipe: TrainingRecipe, output_type: OutputType | None = None
) -> pd.Series:
    """The target column: classes in ``output_type`` (text when None), or numbers for regression."""
    if recipe.task == "classification":
        return typed_labels(frame[recipe.label_column], output_type)
    return pd.to_numeric(frame[recipe.label_column], errors="coerce").astype(float)


def inputs_of(frame: pd.DataFrame, recipe: TrainingRecipe, schema: FeatureSchema) -> pd.DataFrame:
    features = recipe.feature_names(schema)
    return coerce_features(frame, schema, features)[features]


def fit(
    snapshot_frame: pd.DataFrame,
    recipe: TrainingRecipe,
    schema: FeatureSchema,
    output_type: OutputType | None = None,
) -> Any:
    """A fitted pipeline trained on the snapshot's ``train`` rows, answering classes of ``output_type``."""
    train = snapshot_frame[snapshot_frame[SPLIT] == "train"]
    model = build_estimator(recipe, schema)
    model.fit(inputs_of(train, recipe, schema), labels_of(train, recipe, output_type))
    return model


def score(model: Any, holdout: pd.DataFrame, recipe: TrainingRecipe, schema: FeatureSchema) -> Scorecard:
    """Every metric of the recipe's task on ``holdout``, and the mean prediction latency in ms."""
    from sklearn import metrics as m

    x = inputs_of(holdout, recipe, schema)
    # labels in the type this model answers with, then both as text: "1" is 1 is True, whatever the model
    y = labels_of(holdout, recipe, output_type_of(model))
    if recipe.task == "classification":
        y = y.astype(str)
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


def fit_version_estimator(
    model: Any, holdout: pd.DataFrame, recipe: TrainingRecipe, schema: FeatureSchema
) -> PerformanceEstimator | None:
    """How the monitor will estimate this model's performance before labels arrive, fitted on ``holdout``:
    a calibration of its probabilities (CBPE), or models of its loss (DLE) on the numeric features."""
    features = recipe.feature_names(schema)
    numeric = [
        n for n in features if (spec := schema.spec(n)) is None or spec.type not in ("categorical", "text")
    ]
    truth = labels_of(holdout, recipe, output_type_of(model))
    return fit_estimator(
        model,
        inputs_of(holdout, recipe, schema),
        truth,
        numeric,
        classification=recipe.task == "classification",
    )
