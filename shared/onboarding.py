"""What registering a model infers from its training data: schema, reference profile, output type, recipe.

Pure: takes a fitted model and a DataFrame, returns an :class:`Onboarding` (or raises :class:`OnboardingError`
naming the fix). ``shared/onboard_registry.py`` sends the result to the registry; the CLI's
``driftloop models register NAME MODEL --data FILE --target COLUMN`` and Python callers both go through it.

Names come from the model's ``feature_names_in_`` where it has them (scikit-learn keeps them when fitted on a
DataFrame), else from the data's columns minus the target. Types come from the data. No ranges or category
lists are inferred: a shifted input must reach the monitor as drift, not be refused as out of range.
"""

from __future__ import annotations

import importlib
import math
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

from shared.answer_type import OutputType
from shared.estimator import fit_estimator
from shared.feature_schema import FeatureSchema, FeatureSpec, FeatureType
from shared.importance import permutation_importance
from shared.profile import ReferenceProfile, build_profile, category_key

TaskType = Literal["binary_classification", "multiclass_classification", "regression"]
"""The model tag holding the type of its predictions (``int``, ``float``, ``str`` or ``bool``)."""
SAMPLE_ROWS = 200
"""Rows the model must answer on before it is registered."""
BLIND_HINT = "pass --data TRAIN_FILE --target COLUMN (Python: register_model(..., data=frame, target=...))"


class OnboardingError(ValueError):
    """The model or its data cannot be registered as given; the message says what to fix."""


@dataclass(frozen=True)
class Onboarding:
    """Everything the registry needs to watch and retrain a model, inferred from it and its training data."""

    feature_schema: FeatureSchema
    reference_profile: ReferenceProfile
    output_type: OutputType
    task_type: TaskType
    training_recipe: dict[str, Any]
    metrics: dict[str, float] = field(default_factory=dict)


def feature_type(column: pd.Series) -> FeatureType:
    """The schema type of one training column, from its dtype.

    Examples
    --------
    >>> import pandas as pd
    >>> [feature_type(pd.Series(v)) for v in ([1, 2], [1.5, None], [True, False], ["a", "b"])]
    ['integer', 'numeric', 'boolean', 'categorical']
    """
    dtype = column.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(dtype):
        return "integer"
    if pd.api.types.is_numeric_dtype(dtype):
        return "numeric"
    return "categorical"


def feature_names(model: Any, frame: pd.DataFrame, target: str) -> list[str]:
    """The model's input names: its ``feature_names_in_``, else every column of ``frame`` but ``target``."""
    if target not in frame.columns:
        raise OnboardingError(
            f"the data has no target column {target!r}; its columns are {list(frame.columns)}"
        )
    known = getattr(model, "feature_names_in_", None)
    if known is None:
        names = [str(c) for c in frame.columns if c != target]
    else:
        names = [str(n) for n in known]
        missing = [n for n in names if n not in frame.columns]
        if missing:
            raise OnboardingError(f"the model was fitted on {missing}, which the data does not have")
        if target in names:
            raise OnboardingError(
                f"the target {target!r} is one of the model's features; pick another column"
            )
    if not names:
        raise OnboardingError(f"the data has no column besides the target {target!r}: nothing to monitor")
    return names


def infer_schema(frame: pd.DataFrame, names: Sequence[str]) -> FeatureSchema:
    """One spec per name, typed from the data; nullable only where the data has missing values."""
    return FeatureSchema(
        features=[
            FeatureSpec(name=n, type=feature_type(frame[n]), nullable=bool(frame[n].isna().any()))
            for n in names
        ]
    )


def output_type(predictions: Sequence[Any] | Any) -> OutputType:
    """The Python type a served prediction has: what ``model.predict`` returns, as JSON carries it.

    Examples
    --------
    >>> import numpy as np
    >>> [output_type(np.array(v)) for v in ([0, 1], [0.5], ["yes"], [True])]
    ['int', 'float', 'str', 'bool']
    """
    values = pd.Series(list(predictions))
    if pd.api.types.is_bool_dtype(values.dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(values.dtype):
        return "int"
    if pd.api.types.is_numeric_dtype(values.dtype):
        return "float"
    return "str"


def final_estimator(model: Any) -> Any:
    """The estimator at the end of a pipeline (or the model itself)."""
    steps = getattr(model, "steps", None)
    return final_estimator(steps[-1][1]) if steps else model


def factory_path(estimator: Any) -> str:
    """``module:Class`` of ``estimator``, by its public module where it has one (``sklearn.linear_model``).

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> factory_path(LogisticRegression())
    'sklearn.linear_model:LogisticRegression'
    """
    cls = type(estimator)
    parts = cls.__module__.split(".")
    public = ".".join(parts[: next((i for i, p in enumerate(parts) if p.startswith("_")), len(parts))])
    if public and public != cls.__module__:
        try:
            if getattr(importlib.import_module(public), cls.__qualname__, None) is cls:
                return f"{public}:{cls.__qualname__}"
        except ImportError:
            pass
    return f"{cls.__module__}:{cls.__qualname__}"


def _json_scalar(value: object) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, bool | int | str)


def default_recipe(model: Any, task: Literal["classification", "regression"]) -> dict[str, Any]:
    """A training recipe that retrains the same estimator family with the same plain parameters.

    Only parameters set away from the class's defaults are kept; those that are objects (a nested estimator,
    a callable) are left out, so the trainer builds them from its defaults; ``random_state`` is the recipe's.
    The trainer adds its own imputation and one-hot encoding in front (``preprocess``). A model without
    ``get_params`` (not scikit-learn's) gets the trainer's default estimator for its task.

    Examples
    --------
    >>> from sklearn.ensemble import RandomForestClassifier
    >>> recipe = default_recipe(RandomForestClassifier(n_estimators=50), "classification")
    >>> recipe["estimator"]["factory"], recipe["estimator"]["params"]["n_estimators"]
    ('sklearn.ensemble:RandomForestClassifier', 50)
    """
    estimator = final_estimator(model)
    if not callable(getattr(estimator, "get_params", None)):
        return {"task": task}  # not scikit-learn's: the trainer cannot rebuild it, so it uses its default
    spec: dict[str, Any] = {"factory": factory_path(estimator), "params": _changed_params(estimator)}
    steps = [
        {"factory": factory_path(step), "params": _changed_params(step)}
        for step in pipeline_transformers(model)
        if _rebuildable(step)
    ]
    if steps:
        spec["steps"] = steps
    return {"task": task, "estimator": spec}


def pipeline_transformers(model: Any) -> list[Any]:
    """The transformers a pipeline runs before its final estimator, nested pipelines flattened.

    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sklearn.linear_model import LogisticRegression
    >>> [type(s).__name__ for s in pipeline_transformers(make_pipeline(StandardScaler(), LogisticRegression()))]
    ['StandardScaler']
    """
    steps = getattr(model, "steps", None)
    if not steps:
        return []
    found: list[Any] = []
    for _, step in steps[:-1]:
        if step is None or step == "passthrough":
            continue
        nested = getattr(step, "steps", None)
        found += [*pipeline_transformers(step), final_estimator(step)] if nested else [step]
    return found + pipeline_transformers(steps[-1][1])


def _rebuildable(step: Any) -> bool:
    """A step the trainer can build again from its class and plain parameters (a column transformer, with
    its nested column lists and estimators, is not: the trainer's own imputation and encoding stand in)."""
    if not callable(getattr(step, "get_params", None)):
        return False
    if not all(_json_scalar(v) for v in _params(step).values()):
        return False
    try:
        type(step)()
    except Exception:  # needs arguments the recipe could not give it
        return False
    return True


def _changed_params(estimator: Any) -> dict[str, Any]:
    """Plain parameters set away from the class's defaults (``random_state`` is the recipe's)."""
    params = _params(estimator)
    try:
        defaults = _params(type(estimator)())
    except Exception:  # a class without defaults for every argument: keep every plain parameter
        defaults = {}
    return {
        k: v
        for k, v in params.items()
        if _json_scalar(v)
        and k != "random_state"
        and not (_json_scalar(defaults.get(k, ...)) and defaults[k] == v)
    }


def _params(estimator: Any) -> dict[str, Any]:
    get_params = getattr(estimator, "get_params", None)
    return dict(get_params(deep=False)) if callable(get_params) else {}


def _is_classifier(model: Any, predictions: pd.Series) -> bool:
    """scikit-learn's answer (its estimator tags) where it has one; else float outputs mean a regression."""
    try:
        from sklearn.base import is_classifier, is_regressor

        if is_classifier(model):
            return True
        if is_regressor(model):
            return False
    except Exception:  # not a scikit-learn estimator: judge by what it returns
        pass
    return not pd.api.types.is_float_dtype(predictions.dtype)


def check_answers(model: Any, frame: pd.DataFrame, sample_rows: int = SAMPLE_ROWS) -> None:
    """Raise :class:`OnboardingError` with the model's own error when it fails on the first rows of data."""
    sample = frame.head(sample_rows)
    answers = _predict(model, sample)
    if len(answers) != len(sample):
        raise OnboardingError(f"the model answered {len(answers)} predictions for {len(sample)} rows")


def _predict(model: Any, inputs: pd.DataFrame) -> pd.Series:
    try:
        return pd.Series(list(model.predict(inputs)))
    except Exception as exc:  # any failure of the user's model is the message to show
        raise OnboardingError(
            f"the model fails on its own data ({type(exc).__name__}: {exc}); check --data and --target"
        ) from exc


def onboard(
    model: Any, frame: pd.DataFrame, target: str, metrics: Mapping[str, float] | None = None
) -> Onboarding:
    """Infer schema, reference profile, output type, task and default recipe of ``model`` from ``frame``.

    ``metrics`` overrides the ones measured here (accuracy or rmse on ``frame``): measured on training rows
    they are optimistic, and the monitor alerts when live accuracy falls this far below the reference.

    Examples
    --------
    >>> import pandas as pd
    >>> from sklearn.tree import DecisionTreeClassifier
    >>> frame = pd.DataFrame({"age": [20, 30, 40, 50], "plan": [1.0, 2.0, 1.5, 3.0], "churned": [0, 0, 1, 1]})
    >>> model = DecisionTreeClassifier(random_state=0).fit(frame[["age", "plan"]], frame["churned"])
    >>> result = onboard(model, frame, "churned")
    >>> [(f.name, f.type) for f in result.feature_schema.features], result.output_type, result.task_type
    ([('age', 'integer'), ('plan', 'numeric')], 'int', 'binary_classification')
    """
    if frame.empty:
        raise OnboardingError(f"the training data has no rows; {BLIND_HINT}")
    names = feature_names(model, frame, target)
    inputs = frame[names]
    check_answers(model, inputs)
    predictions = _predict(model, inputs)
    labelled = frame[target].notna().to_numpy()  # rows without a label are profiled, not scored
    truth, scored = frame[target][labelled], predictions[labelled]
    measured: dict[str, float] = {}
    if _is_classifier(model, predictions):
        task: Literal["classification", "regression"] = "classification"
        task_type: TaskType = "binary_classification" if truth.nunique() <= 2 else "multiclass_classification"
        if len(truth):
            measured["accuracy"] = float(
                (scored.astype(str).to_numpy() == truth.astype(str).to_numpy()).mean()
            )
        # classes are categories for the monitor, keyed as its windows key them (True as "1")
        outputs: list[object] = [category_key(_plain(p)) for p in predictions]
    else:
        task, task_type = "regression", "regression"
        errors = scored.astype(float).to_numpy() - truth.astype(float).to_numpy()
        if len(truth) and all(math.isfinite(e) for e in errors):
            measured["rmse"] = float(math.sqrt((errors**2).mean()))
        outputs = [float(p) for p in predictions]
    schema = infer_schema(frame, names)
    numeric = [f.name for f in schema.features if f.type not in ("categorical", "text")]
    # fitted on the rows given: held-out rows make it honest, training rows make it optimistic (docs/monitor.md)
    estimator = fit_estimator(
        model, inputs[labelled], truth, numeric, classification=task == "classification"
    )
    chosen = {**measured, **dict(metrics or {})}
    columns = {n: [None if pd.isna(v) else _plain(v) for v in inputs[n]] for n in names}
    profile = build_profile(columns, predictions=outputs, metrics=chosen, estimator=estimator)
    importance = _importance(model, inputs, frame[target], task)
    return Onboarding(
        feature_schema=schema,
        reference_profile=profile.model_copy(update={"feature_importance": importance}),
        output_type=output_type(predictions),
        task_type=task_type,
        training_recipe=default_recipe(model, task),
        metrics=chosen,
    )


def _importance(
    model: Any, inputs: pd.DataFrame, target: pd.Series, task: Literal["classification", "regression"]
) -> dict[str, float]:
    """Permutation importance on (at most 2,000 of) the given rows; the model's failure is the message."""
    try:
        return permutation_importance(model, inputs, target, task)
    except Exception as exc:  # any failure of the user's model on shuffled rows is the message to show
        raise OnboardingError(
            f"measuring feature importance failed ({type(exc).__name__}: {exc}); check --data and --target"
        ) from exc


def _plain(value: Any) -> object:
    """A numpy scalar as the Python value the profile (and JSON) expects."""
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def blind_spots(schema: FeatureSchema | None, has_profile: bool, fix: str = BLIND_HINT) -> list[str]:
    """Why the loop would be blind with this registration, each ending with ``fix`` (none when it is empty:
    the caller names the fix once); empty when the loop can see.

    Examples
    --------
    >>> blind_spots(FeatureSchema(), has_profile=False)[0].split(":")[0]
    'empty feature schema'
    >>> blind_spots(FeatureSchema(), has_profile=True, fix="")
    ['empty feature schema: no input is checked, by the model server or the ingest']
    """
    suffix = f"; {fix}" if fix else ""
    problems = []
    if schema is None or not schema.features:
        problems.append(
            "empty feature schema: no input is checked, by the model server or the ingest" + suffix
        )
    if not has_profile:
        problems.append("no reference profile: the monitor computes metrics but no drift tests" + suffix)
    return problems


def register_fix(name: str, artifact: str) -> str:
    """The command that registers ``artifact`` as ``name`` so the loop can see it, for a CLI warning.

    >>> register_fix("churn", "model.joblib")
    'fix: driftloop models register churn model.joblib --data TRAIN_FILE --target COLUMN'
    """
    return f"fix: driftloop models register {shlex.join([name, artifact])} --data TRAIN_FILE --target COLUMN"
