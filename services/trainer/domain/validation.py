"""Training-data validation: the checks a window must pass before anything is trained on it.

A run whose data fails stops here with a report naming each problem (e.g. a numeric feature that suddenly
carries text), so a bad upstream change never becomes a bad production model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from services.trainer.domain.debounce import Trigger
from services.trainer.domain.recipe import TrainingRecipe
from shared.feature_schema import FeatureSchema, FeatureSpec


@dataclass(frozen=True)
class ValidationReport:
    """What was checked and what was wrong; ``ok`` when nothing was."""

    rows: int
    problems: list[str] = field(default_factory=list)
    missing_rates: dict[str, float] = field(default_factory=dict)
    class_shares: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


def validate_training_data(
    frame: pd.DataFrame, schema: FeatureSchema, recipe: TrainingRecipe, label_column: str = "label"
) -> ValidationReport:
    """Check ``frame`` (one column per feature plus the label) against the schema and the recipe's limits.

    Examples
    --------
    >>> from shared.feature_schema import FeatureSpec
    >>> schema = FeatureSchema(features=[FeatureSpec(name="tenure", type="numeric")])
    >>> recipe = TrainingRecipe.model_validate({"validation": {"min_rows": 2}})
    >>> frame = pd.DataFrame({"tenure": [1.0, "twelve", 3.0], "label": ["0", "1", "0"]})
    >>> validate_training_data(frame, schema, recipe).problems[0]
    "feature 'tenure' (numeric): 1 of 3 values (33.3%) have the wrong type (expected a number), e.g. 'twelve'"
    """
    policy = recipe.validation
    rows = len(frame)
    problems: list[str] = []
    if rows < policy.min_rows:
        problems.append(
            f"only {rows} labelled rows in the window; the recipe needs at least {policy.min_rows}"
        )
    missing_rates: dict[str, float] = {}
    for name in recipe.feature_names(schema):
        spec = schema.spec(name)
        assert spec is not None  # feature_names checked it
        if name not in frame.columns:
            problems.append(f"feature {name!r} is absent from every row of the window")
            missing_rates[name] = 1.0
            continue
        column_problems, missing_rate = _check_column(frame[name], spec, recipe)
        problems.extend(column_problems)
        missing_rates[name] = missing_rate
    class_shares: dict[str, float] = {}
    if label_column not in frame.columns or frame[label_column].isna().all():
        problems.append(f"no labels in column {label_column!r}")
    elif recipe.task == "classification":
        shares = frame[label_column].dropna().astype(str).value_counts(normalize=True)
        class_shares = {str(k): round(float(v), 6) for k, v in shares.items()}
        if len(shares) < 2:
            problems.append(f"the label has a single class ({list(class_shares)}); a classifier needs two")
        elif shares.min() < policy.min_class_share:
            problems.append(
                f"class {shares.idxmin()!r} is only {shares.min():.2%} of the labels; "
                f"the recipe needs at least {policy.min_class_share:.2%} per class"
            )
    return ValidationReport(
        rows=rows, problems=problems, missing_rates=missing_rates, class_shares=class_shares
    )


def _check_column(values: pd.Series, spec: FeatureSpec, recipe: TrainingRecipe) -> tuple[list[str], float]:
    policy = recipe.validation
    rows = len(values)
    if rows == 0:
        return [], 0.0
    present = values[values.notna()]
    missing_rate = 1 - len(present) / rows
    problems: list[str] = []
    if missing_rate > policy.max_missing_rate:
        problems.append(
            f"feature {spec.name!r}: {missing_rate:.1%} of values are missing "
            f"(the recipe allows {policy.max_missing_rate:.1%})"
        )
    if spec.type in ("numeric", "integer", "boolean"):
        wrong = present[~present.map(_is_number)]
        expected = "a number"
    else:
        wrong = present[~present.map(lambda v: isinstance(v, str))]
        expected = "a string"
    if len(wrong) / rows > policy.max_type_error_rate:
        problems.append(
            f"feature {spec.name!r} ({spec.type}): {len(wrong)} of {rows} values ({len(wrong) / rows:.1%}) "
            f"have the wrong type (expected {expected}), e.g. {wrong.iloc[0]!r}"
        )
    if spec.type in ("numeric", "integer") and (spec.min is not None or spec.max is not None):
        numbers = pd.to_numeric(present[present.map(_is_number)], errors="coerce")
        low = spec.min if spec.min is not None else -math.inf
        high = spec.max if spec.max is not None else math.inf
        outside = numbers[(numbers < low) | (numbers > high)]
        if len(outside) / rows > policy.max_out_of_range_rate:
            problems.append(
                f"feature {spec.name!r}: {len(outside)} of {rows} values ({len(outside) / rows:.1%}) are "
                f"outside [{spec.min}, {spec.max}], e.g. {outside.iloc[0]!r}"
            )
    if spec.type == "categorical" and spec.categories is not None:
        unseen = present[present.map(lambda v: isinstance(v, str) and v not in spec.categories)]
        if len(unseen) / rows > policy.max_out_of_range_rate:
            problems.append(
                f"feature {spec.name!r}: {len(unseen)} of {rows} values are not among its "
                f"{len(spec.categories)} categories, e.g. {unseen.iloc[0]!r}"
            )
    return problems, missing_rate


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(float(value))


def labels_missing(trigger: Trigger, frame: pd.DataFrame) -> ValidationReport | None:
    """Why a run on an estimated-performance drift must wait: no labelled row since the drift began.

    The estimate says the model got worse before labels exist; retraining then would learn the old
    relation again from older labels. None: the trigger needs no labels, or labels are there.
    """
    if not trigger.needs_labels or trigger.window_start is None:
        return None
    since = pd.Timestamp(trigger.window_start)
    if len(frame) and (pd.to_datetime(frame["occurred_at"], utc=True) >= since).any():
        return None
    return ValidationReport(
        rows=len(frame),
        problems=[
            f"no labels yet: the estimated-performance drift (window from {trigger.window_start.isoformat()}) "
            "has no labelled predictions since it began, so nothing was retrained; the model is retrained "
            "when labels for those windows arrive and the labels-based performance check confirms the drop"
        ],
    )
