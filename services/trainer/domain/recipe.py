"""A model's training recipe: what to train on, how to build the estimator, how to judge and promote it.

The registry stores the recipe as a plain JSON object with the model (``training_recipe``); this module is
the trainer's reading of it. Every field has a default, so an empty recipe plus a feature schema is enough
to retrain a scikit-learn classifier.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.trainer.errors import RecipeError
from shared.feature_schema import FeatureSchema

Task = Literal["classification", "regression"]
CLASSIFICATION_METRICS = ("accuracy", "balanced_accuracy", "f1_macro", "log_loss", "roc_auc")
REGRESSION_METRICS = ("rmse", "mae", "r2")
LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae"})
DEFAULT_CLASSIFIER = "sklearn.ensemble:HistGradientBoostingClassifier"
DEFAULT_REGRESSOR = "sklearn.ensemble:HistGradientBoostingRegressor"


class EstimatorSpec(BaseModel):
    """The estimator, named by import path (``module:attribute``) and built with ``params``.

    With ``preprocess`` (the default) it is wrapped in a pipeline that one-hot encodes categorical and
    boolean features and imputes numeric ones; set it to false when the factory returns a full pipeline.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    factory: str | None = Field(None, description="e.g. 'sklearn.linear_model:LogisticRegression'.")
    params: dict[str, Any] = Field(default_factory=dict)
    preprocess: bool = True


class DataWindow(BaseModel):
    """Which labelled predictions to train on.

    ``last_n``: the most recent ``max_rows`` labelled predictions within ``lookback_days``.
    ``since_drift``: every labelled prediction since the drift window's start, plus older ones making up
    ``older_share`` of the set (so the model does not forget what still holds).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    policy: Literal["last_n", "since_drift"] = "last_n"
    # bounded, so no recipe makes one run's query, memory or dates run away (3650 days: ten years)
    max_rows: int = Field(50_000, ge=10, le=5_000_000)
    lookback_days: float = Field(30.0, gt=0, le=3650)
    older_share: float = Field(0.3, ge=0, lt=1)
    holdout_share: float = Field(
        0.2, gt=0, lt=1, description="Most recent share held out to score challenger and champion."
    )


class ValidationPolicy(BaseModel):
    """Limits the training data must meet before anything is trained."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_rows: int = Field(200, ge=1)
    max_missing_rate: float = Field(0.5, ge=0, le=1)
    max_type_error_rate: float = Field(0.0, ge=0, le=1, description="Share of values of the wrong type.")
    max_out_of_range_rate: float = Field(0.01, ge=0, le=1)
    min_class_share: float = Field(0.01, ge=0, lt=1, description="Least share of the rarest class.")


class PromotionPolicy(BaseModel):
    """When a challenger replaces the champion: better by a margin, nothing else much worse, fast enough."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_improvement: float = Field(0.0, ge=0, description="Least gain in the primary metric (>0 needed).")
    max_regression: float = Field(0.02, ge=0, description="Largest loss allowed in any other metric.")
    latency_budget_ms: float | None = Field(None, gt=0, description="Mean ms per prediction allowed.")
    min_score: float | None = Field(None, description="Primary-metric floor when there is no champion.")


class TrainingRecipe(BaseModel):
    """Everything the trainer needs to retrain one model, with defaults for every field."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    features: list[str] | None = Field(None, description="Features to train on; None is the whole schema.")
    label: Literal["label", "label_num"] | None = Field(
        None, description="'label' (the class as text) or 'label_num' (the number); None: by task."
    )
    task: Task = "classification"
    estimator: EstimatorSpec = Field(default_factory=EstimatorSpec)
    random_state: int = 0
    window: DataWindow = Field(default_factory=DataWindow)
    validation: ValidationPolicy = Field(default_factory=ValidationPolicy)
    metric: str | None = Field(None, description="Primary metric; accuracy (classification) or rmse.")
    promotion: PromotionPolicy = Field(default_factory=PromotionPolicy)

    @model_validator(mode="after")
    def _metric_fits_task(self) -> TrainingRecipe:
        if self.metric is not None and self.metric not in self.metrics:
            raise ValueError(
                f"metric {self.metric!r} does not fit task {self.task!r}; use one of {self.metrics}"
            )
        return self

    @property
    def label_column(self) -> str:
        return self.label or ("label" if self.task == "classification" else "label_num")

    @property
    def metrics(self) -> tuple[str, ...]:
        """Every metric computed for this task; the gate checks all of them."""
        return CLASSIFICATION_METRICS if self.task == "classification" else REGRESSION_METRICS

    @property
    def primary_metric(self) -> str:
        return self.metric or ("accuracy" if self.task == "classification" else "rmse")

    @property
    def factory(self) -> str:
        default = DEFAULT_CLASSIFIER if self.task == "classification" else DEFAULT_REGRESSOR
        return self.estimator.factory or default

    def feature_names(self, schema: FeatureSchema) -> list[str]:
        """The features trained on, in schema order; a recipe naming an unknown feature is an error."""
        if self.features is None:
            return schema.names
        unknown = [f for f in self.features if schema.spec(f) is None]
        if unknown:
            raise RecipeError(f"recipe features {unknown} are not in the model's feature schema")
        return list(self.features)


def parse_recipe(raw: dict[str, Any] | None, task_type: str | None = None) -> TrainingRecipe:
    """The recipe stored in the registry (``{}`` when none was given), validated.

    Without a ``task`` of its own, the task follows the registered model's ``task_type``.

    Examples
    --------
    >>> parse_recipe({}).primary_metric
    'accuracy'
    >>> parse_recipe({}, task_type="regression").factory
    'sklearn.ensemble:HistGradientBoostingRegressor'
    """
    raw = dict(raw or {})
    if "task" not in raw and task_type == "regression":
        raw["task"] = "regression"
    try:
        return TrainingRecipe.model_validate(raw)
    except ValueError as exc:
        raise RecipeError(f"the model's training_recipe is invalid: {exc}") from exc


def import_factory(path: str) -> Any:
    """The callable at ``module:attribute``; a clear error when it does not exist."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise RecipeError(f"estimator factory {path!r} must look like 'package.module:Name'")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise RecipeError(f"cannot import estimator factory {path!r}: {exc}") from exc
    if not callable(target):
        raise RecipeError(f"estimator factory {path!r} is not callable")
    return target


def preload_estimator_modules() -> None:
    """Import the scikit-learn modules every run uses (pipeline, preprocessing, metrics) ahead of the first run.

    On a busy machine their first import takes seconds; a worker does it at start-up, so that time is not
    part of the first run after a start (drift to promotion).
    """
    import sklearn.compose
    import sklearn.impute
    import sklearn.metrics
    import sklearn.pipeline
    import sklearn.preprocessing  # noqa: F401


def build_estimator(recipe: TrainingRecipe, schema: FeatureSchema) -> Any:
    """A fresh, unfitted scikit-learn estimator for ``recipe``, seeded so that retraining is reproducible."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    factory = import_factory(recipe.factory)
    params = dict(recipe.estimator.params)
    if "random_state" not in params and _accepts(factory, "random_state"):
        params["random_state"] = recipe.random_state
    estimator = factory(**params)
    if not recipe.estimator.preprocess:
        return estimator
    names = recipe.feature_names(schema)
    categorical = [n for n in names if _is_categorical(schema, n)]
    numeric = [n for n in names if n not in categorical]
    transformers: list[tuple[str, Any, list[str]]] = []
    if numeric:
        transformers.append(("numeric", SimpleImputer(strategy="median", keep_empty_features=True), numeric))
    if categorical:
        encoder = Pipeline(
            [
                ("impute", SimpleImputer(strategy="constant", fill_value="__missing__")),
                ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
            ]
        )
        transformers.append(("categorical", encoder, categorical))
    return Pipeline([("features", ColumnTransformer(transformers)), ("model", estimator)])


def _is_categorical(schema: FeatureSchema, name: str) -> bool:
    spec = schema.spec(name)
    return spec is not None and spec.type in ("categorical", "text")


def _accepts(factory: Any, name: str) -> bool:
    try:
        return name in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
