"""Defects of issue 21: booleans read one way, true reference sizes, two-sample chi-square, sketch-based KS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from scipy import stats as sps

from services.monitor.domain.drift import stats
from services.monitor.domain.drift.columns import categorical_drift, column_drift, numeric_drift
from services.monitor.domain.evaluation import DataWindow, evaluate_data_window
from shared.drift_thresholds import DriftThresholds
from shared.profile import CategoricalProfile, build_profile, column_profile, numeric_profile

T = DriftThresholds()
START = datetime(2026, 3, 1, tzinfo=UTC)


def _stored_flags(rng: np.random.Generator, n: int, share: float) -> np.ndarray:
    """A boolean column as the window reader returns it: ClickHouse stores true/false as 1.0/0.0."""
    return (rng.random(n) < share).astype(float)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda a: a.tolist(), id="python-bool"),
        pytest.param(lambda a: list(a), id="numpy-bool"),
        pytest.param(lambda a: a.astype(int).tolist(), id="int-0-1"),
        pytest.param(lambda a: a.astype(float).tolist(), id="float-1.0-0.0"),
        pytest.param(lambda a: np.where(a, "true", "false").tolist(), id="words"),
        pytest.param(
            lambda a: [bool(v) if i % 10 else None for i, v in enumerate(a)], id="bool-with-missing"
        ),
    ],
)
def test_a_boolean_feature_reads_the_same_in_profile_and_window_whatever_its_type(make: object) -> None:
    rng = np.random.default_rng(3)
    reference = rng.random(20_000) < 0.3
    profile = build_profile({"flag": make(reference)})  # type: ignore[operator]
    for _ in range(5):
        window = DataWindow(
            START,
            START + timedelta(minutes=1),
            5_000,
            np.ones(5_000),
            [],
            np.empty(0),
            numeric={"flag": _stored_flags(rng, 5_000, 0.3)},
        )
        result = evaluate_data_window(window, profile, T)
        assert not result.verdict.drifted, [(t.test, t.statistic, t.p_value) for t in result.tests]
    moved = DataWindow(
        START,
        START + timedelta(minutes=1),
        5_000,
        np.ones(5_000),
        [],
        np.empty(0),
        numeric={"flag": _stored_flags(rng, 5_000, 0.6)},
    )
    assert evaluate_data_window(moved, profile, T).verdict.drifted_features == ("flag",)


def test_pandas_missing_values_are_missing_in_profiles() -> None:
    import pandas as pd

    flags = column_profile(pd.Series([True, pd.NA, False, True], dtype="boolean"))
    assert isinstance(flags, CategoricalProfile) and flags.frequencies == {"1": 2 / 3, "0": 1 / 3}
    words = column_profile(pd.Series(["a", pd.NA, "b", "a"], dtype="string"))
    assert isinstance(words, CategoricalProfile) and words.count == 3 and words.missing_rate == 0.25
    numbers = column_profile(pd.Series([1, pd.NA, 3], dtype="Int64"))
    assert numbers.kind == "numeric" and numbers.count == 2


def test_a_categorical_boolean_profile_counts_stored_floats_as_its_categories() -> None:
    profile = column_profile([True, False, False, True])
    assert isinstance(profile, CategoricalProfile) and set(profile.frequencies) == {"0", "1"}
    drift = column_drift("flag", profile, np.asarray([1.0, 0.0] * 150), T)  # type: ignore[arg-type]
    assert drift is not None and drift.results[0].current_size == 300 and not drift.drifted
    assert drift.p_value == pytest.approx(1.0)


def test_numeric_reference_size_is_the_true_count_and_ks_uses_it() -> None:
    rng = np.random.default_rng(5)
    reference = rng.normal(0, 1, 100_000)
    profile = numeric_profile(reference)
    assert profile.count == 100_000 and len(profile.sketch) == 1_000
    window = rng.normal(0.05, 1, 20_000)
    drift = numeric_drift("x", profile, window, T)
    assert {r.reference_size for r in drift.results} == {100_000} and drift.reference_size == 100_000
    exact = sps.ks_2samp(reference, window, method="asymp")
    # D against the sketch is within 1/len(sketch) of D against the full reference
    assert drift.results[0].statistic == pytest.approx(exact.statistic, abs=1 / 1_000)
    assert drift.p_value == pytest.approx(stats.ks_p_value(drift.results[0].statistic, 100_000, 20_000))
    assert drift.p_value < 1e-4 < stats.ks_p_value(drift.results[0].statistic, 1_000, 20_000)


def test_chi_square_accounts_for_the_references_own_sampling_error() -> None:
    rng = np.random.default_rng(7)
    cats = ["a", "b", "c", "d"]
    reference = rng.choice(cats, 1_000, p=[0.4, 0.3, 0.2, 0.1]).tolist()
    profile = build_profile({"c": reference}).features["c"]
    assert isinstance(profile, CategoricalProfile)
    window = rng.choice(cats, 200_000, p=[0.4, 0.3, 0.2, 0.1]).tolist()
    drift = categorical_drift("c", profile, window, T)
    ref_counts = [round(profile.frequencies[c] * 1_000) for c in cats]
    win_counts = [window.count(c) for c in cats]
    expected = sps.chi2_contingency([ref_counts, win_counts], correction=False)
    assert drift.results[0].statistic == pytest.approx(expected.statistic)
    assert drift.p_value == pytest.approx(expected.pvalue) and drift.p_value > 1e-3
    # the goodness-of-fit test that took the reference's shares as exact called it significant
    _, one_sample = stats.chi_square(win_counts, [profile.frequencies[c] for c in cats])
    assert one_sample < drift.p_value


@pytest.mark.parametrize("decimals", [None, 1, 0])
@pytest.mark.parametrize("shift", [0.0, 0.3, 3.0])
def test_sketch_comparison_matches_the_merge_of_window_and_sketch(decimals: int | None, shift: float) -> None:
    rng = np.random.default_rng(11)
    reference, window = rng.normal(0, 1, 30_000), rng.normal(shift, 1.3, 50_000)
    if decimals is not None:  # ties between window and sketch
        reference, window = np.round(reference, decimals), np.round(window, decimals)
    profile = numeric_profile(reference)
    sketch = np.asarray(profile.sketch)
    seen = stats.compare_to_sketch(sketch, profile.bin_edges, window)
    d, _, area = stats.ks_and_wasserstein(sketch, window)
    assert seen.ks == pytest.approx(d, abs=1e-12)
    assert seen.bin_fractions == pytest.approx(stats.bin_fractions(window, profile.bin_edges), abs=1e-12)
    # the stated bound: low by at most the window's share times the width of the cells where the CDFs cross
    widths = np.diff(np.unique(np.concatenate([sketch, profile.bin_edges])))
    assert area - float(widths.max()) * 2 / len(sketch) <= seen.wasserstein <= area + 1e-9
