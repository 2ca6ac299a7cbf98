"""The drift statistics agree with reference implementations (scipy) and hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps
from scipy.spatial.distance import jensenshannon

from services.monitor.domain.drift import stats

RNG = np.random.default_rng(42)


@pytest.mark.parametrize(
    ("n", "m", "shift"), [(50, 80, 0.0), (1000, 700, 0.1), (400, 5000, 1.0), (30, 30, 3.0)]
)
def test_ks_matches_scipy_asymptotic(n: int, m: int, shift: float) -> None:
    a, b = RNG.normal(0, 1, n), RNG.normal(shift, 1, m)
    d, p = stats.ks_2samp(a, b)
    ref = sps.ks_2samp(a, b, method="asymp")
    assert d == pytest.approx(ref.statistic, abs=1e-12)
    assert p == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-300)


def test_ks_and_wasserstein_handle_ties_like_scipy() -> None:
    a, b = RNG.integers(0, 5, 300).astype(float), RNG.integers(0, 6, 400).astype(float)
    ks = sps.ks_2samp(a, b, method="asymp")
    assert stats.ks_2samp(a, b) == (pytest.approx(ks.statistic), pytest.approx(ks.pvalue, rel=1e-9))
    assert stats.wasserstein(a, b) == pytest.approx(sps.wasserstein_distance(a, b), rel=1e-9)
    d, p, w = stats.ks_and_wasserstein(np.sort(a), b)
    assert (d, p, w) == (
        pytest.approx(ks.statistic),
        pytest.approx(ks.pvalue, rel=1e-9),
        pytest.approx(sps.wasserstein_distance(a, b), rel=1e-9),
    )


@pytest.mark.parametrize("shift", [0.0, 0.5, 2.0])
def test_wasserstein_matches_scipy(shift: float) -> None:
    a, b = RNG.normal(0, 2, 300), RNG.normal(shift, 1, 450)
    assert stats.wasserstein(a, b) == pytest.approx(sps.wasserstein_distance(a, b), rel=1e-9)


@pytest.mark.parametrize(("n", "m", "shift"), [(1000, 10_000, 0.0), (200, 3000, 0.4), (50, 40, 2.0)])
def test_ks_and_wasserstein_in_one_pass_match_scipy(n: int, m: int, shift: float) -> None:
    reference, current = np.sort(RNG.normal(0, 1, n)), RNG.normal(shift, 1.5, m)
    d, p, w = stats.ks_and_wasserstein(reference, current)
    ks = sps.ks_2samp(reference, current, method="asymp")
    assert d == pytest.approx(ks.statistic, abs=1e-12)
    assert p == pytest.approx(ks.pvalue, rel=1e-9, abs=1e-300)
    assert w == pytest.approx(sps.wasserstein_distance(reference, current), rel=1e-9)
    assert stats.ks_and_wasserstein(reference, []) == (0.0, 1.0, 0.0)


def test_wasserstein_hand_computed_and_normalised() -> None:
    # every unit of mass moves by 1: distance 1; in units of a reference std of 2 that is 0.5
    assert stats.wasserstein([0, 1, 2], [1, 2, 3]) == pytest.approx(1.0)
    assert stats.normalised_wasserstein([0, 1, 2], [1, 2, 3], reference_std=2.0) == pytest.approx(0.5)
    assert stats.normalised_wasserstein([1, 1], [1, 1], reference_std=0.0) == 0.0
    assert math.isinf(stats.normalised_wasserstein([1, 1], [2, 2], reference_std=0.0))


def test_psi_hand_computed() -> None:
    ref, cur = [0.5, 0.5], [0.25, 0.75]
    expected = (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.75 - 0.5) * math.log(0.75 / 0.5)
    assert stats.psi(ref, cur) == pytest.approx(expected)
    assert stats.psi(ref, ref) == 0.0
    # an empty bin is floored, not a division by zero
    assert stats.psi([0.5, 0.5, 0.0], [0.4, 0.4, 0.2]) > 0.5


def test_bin_fractions_outer_bins_are_open() -> None:
    fractions = stats.bin_fractions([-100, 0.5, 1.5, 1.5, 100], [1.0, 2.0])
    assert fractions.tolist() == [0.4, 0.4, 0.2]


@pytest.mark.parametrize(("p", "q"), [([0.5, 0.5], [0.5, 0.5]), ([0.1, 0.9], [0.6, 0.4]), ([1, 0], [0, 1])])
def test_jensen_shannon_matches_scipy(p: list[float], q: list[float]) -> None:
    assert stats.jensen_shannon(p, q) == pytest.approx(jensenshannon(p, q, base=2), abs=1e-12)


def test_jensen_shannon_hand_computed_bounds() -> None:
    assert stats.jensen_shannon([1, 0], [0, 1]) == pytest.approx(1.0)
    assert stats.jensen_shannon([3, 1], [3, 1]) == pytest.approx(0.0)


def test_chi_square_matches_scipy() -> None:
    observed = np.array([30, 50, 20])
    shares = np.array([0.3, 0.4, 0.3])
    stat, p = stats.chi_square(observed, shares)
    ref = sps.chisquare(observed, shares * observed.sum())
    assert stat == pytest.approx(ref.statistic)
    assert p == pytest.approx(ref.pvalue)


def test_chi_square_unseen_category_is_strong_evidence() -> None:
    _, p = stats.chi_square([90, 0, 10], [0.5, 0.5, 0.0])
    assert p < 1e-10


def test_benjamini_hochberg_matches_scipy() -> None:
    p = RNG.uniform(0, 0.05, 40).tolist() + RNG.uniform(0, 1, 60).tolist()
    adjusted = sps.false_discovery_control(p, method="bh")
    assert stats.benjamini_hochberg(p, 0.05) == (adjusted <= 0.05).tolist()
    assert stats.benjamini_hochberg([], 0.05) == []


def test_wilson_interval_hand_computed() -> None:
    low, high = stats.wilson_interval(50, 100, confidence=0.95)
    assert (low, high) == pytest.approx((0.4038, 0.5962), abs=1e-4)
    assert stats.wilson_interval(0, 0) == (0.0, 1.0)
