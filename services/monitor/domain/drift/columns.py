"""Per-column drift tests against a reference profile: significance and effect size, and the evidence."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from services.monitor.domain.drift import stats
from shared.drift_thresholds import DriftThresholds
from shared.events import DriftEvidence
from shared.profile import OTHER, CategoricalProfile, NumericProfile, ReferenceProfile, category_key


@dataclass(frozen=True)
class TestResult:
    """One statistic on one column in one window: a row of the ``drift_tests`` table."""

    feature: str
    test: str
    statistic: float
    p_value: float | None
    threshold: float | None
    reference_size: int
    current_size: int
    drifted: bool = False


@dataclass(frozen=True)
class ColumnDrift:
    """A column's verdict: significant (after the multiple-testing correction) and large enough."""

    feature: str
    kind: Literal["numeric", "categorical"]
    significance_test: str
    p_value: float
    effect_test: str
    effect_size: float
    effect_threshold: float
    reference_size: int
    current_size: int
    results: list[TestResult] = field(default_factory=list)
    significant: bool = False
    drifted: bool = False

    def evidence(self) -> DriftEvidence:
        return DriftEvidence(
            feature=self.feature,
            test=f"{self.significance_test}+{self.effect_test}",
            statistic=self.results[0].statistic if self.results else 0.0,
            p_value=self.p_value,
            threshold=self.effect_threshold,
            effect_size=self.effect_size if np.isfinite(self.effect_size) else 1e9,
            reference_size=self.reference_size,
            current_size=self.current_size,
            drifted=self.drifted,
        )


def numeric_drift(
    feature: str, profile: NumericProfile, values: ArrayLike, t: DriftThresholds
) -> ColumnDrift:
    """KS for significance, normalised Wasserstein for effect size; PSI reported alongside."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    ref = np.asarray(profile.sketch, dtype=float)  # sorted, as the profile promises
    d, p, distance = stats.ks_and_wasserstein(ref, x)
    w = stats.normalise_distance(distance, profile.std)
    psi = stats.psi(profile.bin_fractions, stats.bin_fractions(x, profile.bin_edges))
    n_ref, n = len(ref), len(x)
    results = [
        TestResult(feature, "ks", d, p, None, n_ref, n),
        TestResult(feature, "wasserstein_norm", w, None, t.numeric_effect, n_ref, n),
        TestResult(feature, "psi", psi, None, None, n_ref, n),
    ]
    return ColumnDrift(
        feature, "numeric", "ks", p, "wasserstein_norm", w, t.numeric_effect, n_ref, n, results
    )


def category_counts(profile: CategoricalProfile, values: Sequence[object]) -> tuple[list[str], np.ndarray]:
    """Counts of ``values`` over the reference's categories plus one bucket for everything unseen."""
    names = [c for c in profile.frequencies if c != OTHER] + [OTHER]
    index = {name: i for i, name in enumerate(names)}
    other = index[OTHER]
    out = np.zeros(len(names))
    counts = Counter(values)  # in C; exact when every value is a string (1, 1.0 and True would merge)
    if not all(type(v) is str or v is None for v in counts):
        counts = Counter(category_key(v) for v in values if v is not None)
    for value, count in counts.items():
        if value is not None:
            out[index.get(str(value), other)] += count
    return names, out


def categorical_drift(
    feature: str, profile: CategoricalProfile, values: Sequence[object], t: DriftThresholds
) -> ColumnDrift:
    """Chi-square for significance, Jensen-Shannon for effect size; PSI over categories alongside."""
    names, observed = category_counts(profile, values)
    expected = np.array([profile.frequencies.get(name, 0.0) for name in names])
    n = int(observed.sum())
    current = observed / n if n else observed
    chi2, p = stats.chi_square(observed, expected)
    js = stats.jensen_shannon(expected, current)
    psi = stats.psi(expected, current)
    n_ref = profile.count
    results = [
        TestResult(feature, "chi2", chi2, p, None, n_ref, n),
        TestResult(feature, "jensen_shannon", js, None, t.categorical_effect, n_ref, n),
        TestResult(feature, "psi", psi, None, None, n_ref, n),
    ]
    return ColumnDrift(
        feature, "categorical", "chi2", p, "jensen_shannon", js, t.categorical_effect, n_ref, n, results
    )


def column_drift(
    feature: str, profile: NumericProfile | CategoricalProfile, values: Sequence[object], t: DriftThresholds
) -> ColumnDrift | None:
    """Test one column, or None when the window holds too few values to judge.

    A float array (how windows hold numeric columns) is tested as it is, without a Python loop over values.
    """
    if isinstance(profile, NumericProfile):
        if isinstance(values, np.ndarray) and values.dtype.kind == "f":
            numbers: ArrayLike = values[np.isfinite(values)]
        else:
            numbers = [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        if len(numbers) < t.min_window_size or not profile.sketch:
            return None
        return numeric_drift(feature, profile, numbers, t)
    present = [v for v in values if v is not None]
    if len(present) < t.min_window_size or not profile.frequencies:
        return None
    return categorical_drift(feature, profile, present, t)


def feature_drift(
    profile: ReferenceProfile, columns: Mapping[str, Sequence[object]], t: DriftThresholds
) -> list[ColumnDrift]:
    """Test every profiled feature present in the window, correcting for testing many at once (BH)."""
    tested = [
        result
        for name, column_profile in profile.features.items()
        if name in columns and (result := column_drift(name, column_profile, columns[name], t)) is not None
    ]
    significant = stats.benjamini_hochberg([c.p_value for c in tested], t.alpha)
    return [
        replace(c, significant=sig, drifted=sig and c.effect_size > c.effect_threshold)
        for c, sig in zip(tested, significant, strict=True)
    ]
