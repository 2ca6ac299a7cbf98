"""Reference profiles: the compact summary of training data that the monitor compares live traffic against.

The trainer builds one per version from its training set and the registry stores it with the version. It
keeps, per feature, a quantile sketch (enough for KS and Wasserstein without shipping the data), PSI bin
edges and fractions, and category frequencies, so any window can be tested without reading the training set.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.events import FiniteFloat

SKETCH_SIZE = 1000
PSI_BINS = 10
OTHER = "__other__"
MAX_CATEGORIES = 200


class NumericProfile(BaseModel):
    """A numeric column: a quantile sketch of its values plus the bins PSI uses."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["numeric"] = "numeric"
    count: int = Field(ge=0, description="Non-missing values seen in the reference data.")
    missing_rate: float = Field(ge=0, le=1)
    mean: float
    std: float = Field(ge=0)
    sketch: list[float] = Field(description="Evenly spaced quantiles of the values, sorted ascending.")
    bin_edges: list[float] = Field(
        description="Inner PSI bin edges (reference deciles); outer bins are open."
    )
    bin_fractions: list[float] = Field(description="Share of reference values in each PSI bin.")


class CategoricalProfile(BaseModel):
    """A categorical (or boolean) column: the share of each category; rare ones pooled as ``__other__``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["categorical"] = "categorical"
    count: int = Field(ge=0)
    missing_rate: float = Field(ge=0, le=1)
    frequencies: dict[str, float] = Field(description="Category → share of non-missing values.")


ColumnProfile = Annotated[NumericProfile | CategoricalProfile, Field(discriminator="kind")]


class Calibration(BaseModel):
    """A monotone map from one class's raw probability to a calibrated one: linear between the points."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    x: list[float] = Field(min_length=1, description="Raw probabilities, ascending.")
    y: list[float] = Field(min_length=1, description="Calibrated probability at each ``x``.")


class LossTree(BaseModel):
    """One regression tree as arrays (scikit-learn's layout): node i tests ``feature[i] <= threshold[i]``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    feature: list[int] = Field(description="Input index tested at each node; -2 at leaves.")
    threshold: list[float]
    left: list[int] = Field(description="Child when the test holds; -1 at leaves.")
    right: list[int]
    value: list[float] = Field(description="What a leaf predicts.")


class LossModel(BaseModel):
    """Direct loss estimation (DLE): small boosted trees predicting a regressor's loss from inputs and output."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    inputs: list[str] = Field(description="Numeric features used, then '__prediction__' for the output.")
    fill: list[float] = Field(description="Value used for a missing input (its median on the holdout).")
    base: float
    learning_rate: float
    trees: list[LossTree]


class PerformanceEstimator(BaseModel):
    """What the monitor needs to estimate a version's performance before labels arrive (CBPE, DLE).

    Fitted by the trainer (or at registration) on held-out rows: for a classifier, a calibration per class
    (isotonic); for a regressor, models of its absolute and squared error.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    task: Literal["classification", "regression"]
    rows: int = Field(ge=0, description="Held-out rows it was fitted on.")
    classes: list[str] = Field(
        default_factory=list, description="Class names as the model's probabilities key them."
    )
    calibration: dict[str, Calibration] = Field(
        default_factory=dict, description="Class → calibration map (one-vs-rest; renormalised when applied)."
    )
    calibration_error: float | None = Field(
        None, description="Expected calibration error (ECE, 10 bins) of the raw probabilities on the rows."
    )
    absolute_error: LossModel | None = None
    squared_error: LossModel | None = None


class ReferenceProfile(BaseModel):
    """Everything the monitor needs to judge one model version's live traffic."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rows: int = Field(ge=0)
    features: dict[str, ColumnProfile]
    prediction: ColumnProfile | None = Field(None, description="The model's outputs on the reference data.")
    metrics: dict[str, float] = Field(
        default_factory=dict,
        description="Validation metrics (e.g. accuracy) that performance drift is judged by.",
    )
    estimator: PerformanceEstimator | None = Field(
        None, description="How to estimate performance without labels (CBPE, DLE); None: not estimated."
    )
    feature_importance: dict[str, FiniteFloat] = Field(
        default_factory=dict,
        description="Permutation importance per feature on held-out rows: how much the model's score "
        "(accuracy; RMSE for regression) worsens when the feature is shuffled. Empty: not measured.",
    )

    @model_validator(mode="after")
    def _importance_of_profiled_features(self) -> ReferenceProfile:
        unknown = sorted(set(self.feature_importance) - set(self.features))
        if unknown:
            raise ValueError(f"feature_importance names features the profile does not have: {unknown}")
        return self


def _as_array(values: Iterable[object]) -> np.ndarray:
    """``values`` as a numpy array without copying arrays and Series (a Series' values are taken as they are)."""
    if isinstance(values, np.ndarray):
        return values
    to_numpy = getattr(values, "to_numpy", None)  # a pandas Series or Arrow array, without importing pandas
    if to_numpy is not None:
        return np.asarray(to_numpy())
    return np.asarray(values if isinstance(values, list | tuple) else list(values), dtype=object)


def _floats(values: Iterable[object]) -> np.ndarray:
    """Numbers as floats, ``None`` as NaN (numpy converts both in C); booleans as 1.0/0.0."""
    raw = _as_array(values)
    if raw.dtype.kind in "fiub":
        return raw.astype(float, copy=False)
    try:
        return np.array(raw.tolist(), dtype=float)
    except TypeError:  # pandas' NA and the like: missing too
        return np.array([v if isinstance(v, int | float) else np.nan for v in raw.tolist()], dtype=float)


def numeric_profile(values: Iterable[float | None], sketch_size: int = SKETCH_SIZE) -> NumericProfile:
    """Profile a numeric column; ``None``/NaN (and infinities) count as missing.

    Vectorised: one sort of the present values gives the sketch (linear-interpolated quantiles, as
    ``np.quantile``), the PSI edges and the PSI bin counts (binary searches of the edges in the sorted values).
    """
    raw = _floats(values)
    present = np.sort(raw[np.isfinite(raw)])
    total = len(raw)
    n = len(present)
    if n == 0:
        return NumericProfile(
            count=0,
            missing_rate=1.0 if total else 0.0,
            mean=0.0,
            std=0.0,
            sketch=[],
            bin_edges=[],
            bin_fractions=[],
        )
    sketch = _quantiles(present, np.linspace(0, 1, min(sketch_size, n)))
    edges = np.unique(_quantiles(present, np.linspace(0, 1, PSI_BINS + 1)[1:-1]))
    below = np.searchsorted(present, edges, side="right")
    fractions = np.diff(np.concatenate([[0], below, [n]])) / n
    return NumericProfile(
        count=n,
        missing_rate=1 - n / total,
        mean=float(present.mean()),
        std=float(present.std()),
        sketch=sketch.tolist(),
        bin_edges=edges.tolist(),
        bin_fractions=fractions.tolist(),
    )


def _quantiles(ordered: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``np.quantile(ordered, q)`` (linear method) of already sorted values, without sorting again."""
    position = q * (len(ordered) - 1)
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, len(ordered) - 1)
    weight = position - low
    return ordered[low] + (ordered[high] - ordered[low]) * weight


def category_key(value: object) -> str:
    """How a value reads as a category, in profiles and windows alike: ``True`` as "1", like the stored rows.

    Python and numpy booleans alike; numbers in a window are matched to these keys by value
    (:func:`category_value`), so 1.0 in a stored row reads as the profile's "1".
    """
    if type(value) is str:
        return value
    return str(int(value)) if isinstance(value, bool | np.bool_) else str(value)


BOOLEAN_WORDS = {"true": 1.0, "false": 0.0}


def category_value(key: str) -> float | None:
    """The number a category key stands for ("1" and "true" for 1.0), or None for a plain category.

    Booleans are stored as 1.0/0.0 whatever the client sent, so a window's numbers are read against a
    categorical profile through this, whether the profile was built from bools, 0/1 or "true"/"false".
    """
    word = BOOLEAN_WORDS.get(key.strip().lower())
    if word is not None:
        return word
    try:
        number = float(key)
    except ValueError:
        return None
    return number if np.isfinite(number) else None


def categorical_profile(values: Iterable[object], max_categories: int = MAX_CATEGORIES) -> CategoricalProfile:
    """Profile a categorical column; the ``max_categories`` most frequent are kept, the rest pooled.

    Counted on the distinct values (a hash count in C); only each distinct value is turned into its key.
    """
    raw = _as_array(values)
    total = len(raw)
    counts = _value_counts(raw)
    n = sum(counts.values())
    if n == 0:
        return CategoricalProfile(count=0, missing_rate=1.0 if total else 0.0, frequencies={})
    names = np.asarray(list(counts), dtype=object)
    amounts = np.fromiter(counts.values(), int, len(counts))
    order = np.lexsort((names.astype(str), -amounts))  # most frequent first, ties by name
    kept = order[:max_categories]
    freqs = {str(names[i]): float(amounts[i] / n) for i in kept}
    pooled = float(amounts[order[max_categories:]].sum() / n)
    if pooled > 0:
        freqs[OTHER] = freqs.get(OTHER, 0.0) + pooled
    return CategoricalProfile(count=n, missing_rate=1 - n / total, frequencies=freqs)


def _value_counts(raw: np.ndarray) -> dict[str, int]:
    """Non-missing values counted by their category key."""
    if raw.dtype.kind in "US":
        distinct, amounts = np.unique(raw, return_counts=True)
        return {str(k): int(c) for k, c in zip(distinct, amounts, strict=True)}
    out: dict[str, int] = {}
    for value, count in Counter(raw.tolist()).items():
        if _missing(value):
            continue
        key = category_key(value)
        out[key] = out.get(key, 0) + count
    return out


def _is_number_type(kind: type) -> bool:
    return issubclass(kind, int | float | np.integer | np.floating) and not issubclass(kind, bool | np.bool_)


def _missing(value: object) -> bool:
    """None, NaN, or pandas' NA (whose comparisons refuse to be true or false)."""
    try:
        return value is None or bool(value != value)
    except TypeError:
        return True


def column_profile(values: Iterable[object]) -> NumericProfile | CategoricalProfile:
    """Numeric when every present value is a number (bools are categories), categorical otherwise.

    Arrays and Series are classified by dtype; a list by the set of its values' types (one pass in C).
    """
    raw = _as_array(values)
    if raw.dtype.kind in "fiu":
        return numeric_profile(raw)
    if raw.dtype.kind != "O":
        return categorical_profile(raw)
    kinds = {k for k in set(map(type, raw.tolist())) if k is not type(None) and k.__name__ != "NAType"}
    if kinds and all(_is_number_type(k) for k in kinds):
        return numeric_profile(raw)
    return categorical_profile(raw)


def build_profile(
    columns: Mapping[str, Iterable[object]],
    predictions: Iterable[object] | None = None,
    metrics: Mapping[str, float] | None = None,
    estimator: PerformanceEstimator | None = None,
) -> ReferenceProfile:
    """A version's reference profile from its training columns, outputs and validation metrics."""
    features = {name: column_profile(values) for name, values in columns.items()}
    rows = max(
        (p.count / (1 - p.missing_rate) if p.missing_rate < 1 else 0 for p in features.values()), default=0
    )
    return ReferenceProfile(
        rows=round(rows),
        features=features,
        prediction=column_profile(predictions) if predictions is not None else None,
        metrics=dict(metrics or {}),
        estimator=estimator,
    )
