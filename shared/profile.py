"""Reference profiles: the compact summary of training data that the monitor compares live traffic against.

The trainer builds one per version from its training set and the registry stores it with the version. It
keeps, per feature, a quantile sketch (enough for KS and Wasserstein without shipping the data), PSI bin
edges and fractions, and category frequencies, so any window can be tested without reading the training set.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

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


def numeric_profile(values: Iterable[float | None], sketch_size: int = SKETCH_SIZE) -> NumericProfile:
    """Profile a numeric column; ``None``/NaN count as missing."""
    raw = np.asarray([np.nan if v is None else v for v in values], dtype=float)
    present = raw[np.isfinite(raw)]
    total = len(raw)
    if len(present) == 0:
        return NumericProfile(
            count=0,
            missing_rate=1.0 if total else 0.0,
            mean=0.0,
            std=0.0,
            sketch=[],
            bin_edges=[],
            bin_fractions=[],
        )
    size = min(sketch_size, len(present))
    sketch = np.quantile(present, np.linspace(0, 1, size))
    edges = np.unique(np.quantile(present, np.linspace(0, 1, PSI_BINS + 1)[1:-1]))
    fractions = np.bincount(np.searchsorted(edges, present, side="right"), minlength=len(edges) + 1) / len(
        present
    )
    return NumericProfile(
        count=len(present),
        missing_rate=1 - len(present) / total,
        mean=float(present.mean()),
        std=float(present.std()),
        sketch=sketch.tolist(),
        bin_edges=edges.tolist(),
        bin_fractions=fractions.tolist(),
    )


def category_key(value: object) -> str:
    """How a value reads as a category, in profiles and windows alike: ``True`` as "1", like the stored rows."""
    if type(value) is str:
        return value
    return str(int(value)) if isinstance(value, bool) else str(value)


def categorical_profile(values: Iterable[object], max_categories: int = MAX_CATEGORIES) -> CategoricalProfile:
    """Profile a categorical column; the ``max_categories`` most frequent are kept, the rest pooled."""
    raw = list(values)
    present = [category_key(v) for v in raw if v is not None]
    if not present:
        return CategoricalProfile(count=0, missing_rate=1.0 if raw else 0.0, frequencies={})
    names, counts = np.unique(np.asarray(present, dtype=object), return_counts=True)
    order = np.argsort(-counts, kind="stable")
    kept = order[:max_categories]
    freqs = {str(names[i]): float(counts[i] / len(present)) for i in kept}
    pooled = float(counts[order[max_categories:]].sum() / len(present))
    if pooled > 0:
        freqs[OTHER] = freqs.get(OTHER, 0.0) + pooled
    return CategoricalProfile(count=len(present), missing_rate=1 - len(present) / len(raw), frequencies=freqs)


def column_profile(values: Iterable[object]) -> NumericProfile | CategoricalProfile:
    """Numeric when every present value is a number (bools are categories), categorical otherwise."""
    raw = list(values)
    present = [v for v in raw if v is not None]
    if present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return numeric_profile(raw)  # type: ignore[arg-type]
    return categorical_profile(raw)


def build_profile(
    columns: Mapping[str, Iterable[object]],
    predictions: Iterable[object] | None = None,
    metrics: Mapping[str, float] | None = None,
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
    )
