"""Reference profiles summarise training columns compactly and survive a JSON round trip."""

from __future__ import annotations

import numpy as np
import pytest

from shared.profile import (
    OTHER,
    CategoricalProfile,
    NumericProfile,
    ReferenceProfile,
    build_profile,
    categorical_profile,
)


def test_numeric_profile_keeps_a_quantile_sketch_bins_and_missing_rate() -> None:
    values = [float(v) for v in range(10_000)] + [None] * 2_500
    profile = build_profile({"x": values}).features["x"]
    assert isinstance(profile, NumericProfile)
    assert profile.count == 10_000 and profile.missing_rate == pytest.approx(0.2)
    assert len(profile.sketch) == 1000 and profile.sketch[0] == 0 and profile.sketch[-1] == 9999
    assert profile.mean == pytest.approx(4999.5)
    assert len(profile.bin_edges) == 9 and sum(profile.bin_fractions) == pytest.approx(1.0)
    assert profile.bin_fractions == pytest.approx([0.1] * 10, abs=1e-3)


def test_strings_and_bools_are_categorical_and_rare_categories_are_pooled() -> None:
    plan_values = ["a"] * 60 + ["b"] * 30 + [f"r{i}" for i in range(10)]
    profile = build_profile({"plan": plan_values, "flag": [True, False]})
    plan, flag = profile.features["plan"], profile.features["flag"]
    assert isinstance(plan, CategoricalProfile) and plan.frequencies["a"] == pytest.approx(0.6)
    assert isinstance(flag, CategoricalProfile) and set(flag.frequencies) == {"0", "1"}
    pooled = categorical_profile(plan_values, max_categories=2)
    assert pooled.frequencies == pytest.approx({"a": 0.6, "b": 0.3, OTHER: 0.1})


def test_profile_round_trips_through_json_with_outputs_and_metrics() -> None:
    rng = np.random.default_rng(1)
    profile = build_profile(
        {"x": rng.normal(size=500).tolist(), "c": rng.choice(["u", "v"], 500).tolist()},
        predictions=rng.integers(0, 2, 500).tolist(),
        metrics={"accuracy": 0.91},
    )
    assert profile.rows == 500
    again = ReferenceProfile.model_validate_json(profile.model_dump_json())
    assert again == profile and again.metrics == {"accuracy": 0.91}
    assert isinstance(again.prediction, NumericProfile)


def test_all_missing_column_is_profiled_without_error() -> None:
    profile = build_profile({"x": [None, None]}).features["x"]
    assert profile.missing_rate == 1.0 and profile.count == 0
