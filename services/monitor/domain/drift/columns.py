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
from shared.profile import (
    OTHER,
    CategoricalProfile,
    NumericProfile,
    ReferenceProfile,
    category_key,
    category_value,
)


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
    """KS for significance, normalised Wasserstein for effect size; PSI reported alongside.

    All three come from the window's counts on the reference sketch's grid (:func:`stats.compare_to_sketch`).
    The reference's size is its true count (``profile.count``), not the sketch's: KS's p-value takes it as
    the reference's n. D is measured against the sketch, whose CDF is within 1/len(sketch) of the
    reference's, so D is within that (0.001 for the default sketch) of D against the full reference.
    """
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    ref = np.asarray(profile.sketch, dtype=float)  # sorted, as the profile promises
    n_ref, n = _reference_size(profile), len(x)
    if len(ref) == 0 or n == 0:
        d, p, distance, fractions = 0.0, 1.0, 0.0, np.asarray(profile.bin_fractions)
    else:
        seen = stats.compare_to_sketch(ref, profile.bin_edges, x)
        d, distance, fractions = seen.ks, seen.wasserstein, seen.bin_fractions
        p = stats.ks_p_value(d, n_ref, n)
    w = stats.normalise_distance(distance, profile.std)
    psi = stats.psi(profile.bin_fractions, fractions)
    results = [
        TestResult(feature, "ks", d, p, None, n_ref, n),
        TestResult(feature, "wasserstein_norm", w, None, t.numeric_effect, n_ref, n),
        TestResult(feature, "psi", psi, None, None, n_ref, n),
    ]
    return ColumnDrift(
        feature, "numeric", "ks", p, "wasserstein_norm", w, t.numeric_effect, n_ref, n, results
    )


def _reference_size(profile: NumericProfile) -> int:
    """The reference's count of values; a profile claiming fewer than its sketch holds is read as the sketch."""
    return max(profile.count, len(profile.sketch))


def category_counts(profile: CategoricalProfile, values: Sequence[object]) -> tuple[list[str], np.ndarray]:
    """Counts of ``values`` over the reference's categories plus one bucket for everything unseen.

    Numbers are matched to categories by value: a boolean is stored as 1.0/0.0 whatever the client sent,
    and reads as the profile's "1" (or "true") whether the profile was built from bools, ints or words.
    """
    names = [c for c in profile.frequencies if c != OTHER] + [OTHER]
    index = {name: i for i, name in enumerate(names)}
    other = index[OTHER]
    out = np.zeros(len(names))
    if isinstance(values, np.ndarray) and values.dtype.kind in "fiub":
        numbers = values.astype(float, copy=False)
        distinct, amounts = np.unique(numbers[np.isfinite(numbers)], return_counts=True)
        counts: Counter[object] = Counter(dict(zip(distinct.tolist(), amounts.tolist(), strict=True)))
    else:
        counts = Counter(values)  # in C; exact when every value is a string (1, 1.0 and True would merge)
    if all(type(v) is str or v is None for v in counts):
        for value, count in counts.items():
            if value is not None:
                out[index.get(str(value), other)] += count
        return names, out
    by_value = {v: name for name in reversed(names) if (v := category_value(name)) is not None}
    keyed: Counter[str] = Counter()
    for value, count in counts.items():
        if type(value) is str:
            keyed[value] += count
    # distinct floats of an array; otherwise every non-string value, since a Counter merged 1, 1.0 and True
    pairs = counts.items() if isinstance(values, np.ndarray) else ((v, 1) for v in values)
    for value, count in pairs:
        if value is None or type(value) is str or value != value:
            continue
        key = category_key(value)
        if key not in index and isinstance(value, int | float | np.number):
            key = by_value.get(float(value), key)
        keyed[key] += count
    for key, count in keyed.items():
        out[index.get(key, other)] += count
    return names, out


def categorical_drift(
    feature: str, profile: CategoricalProfile, values: Sequence[object], t: DriftThresholds
) -> ColumnDrift:
    """Chi-square for significance, Jensen-Shannon for effect size; PSI over categories alongside.

    Chi-square compares the window's counts with the reference's (a two-sample test of homogeneity) when
    the profile knows its count, so the reference's own sampling error is accounted for; a profile without
    a count falls back to goodness of fit to its shares.
    """
    return _categorical_from_counts(feature, profile, *category_counts(profile, values), t)


def _categorical_from_counts(
    feature: str, profile: CategoricalProfile, names: list[str], observed: np.ndarray, t: DriftThresholds
) -> ColumnDrift:
    expected = np.array([profile.frequencies.get(name, 0.0) for name in names])
    n = int(observed.sum())
    current = observed / n if n else observed
    n_ref = profile.count
    if n_ref > 0:
        chi2, p = stats.chi_square_two_sample(np.round(expected * n_ref), observed)
    else:
        chi2, p = stats.chi_square(observed, expected)
    js = stats.jensen_shannon(expected, current)
    psi = stats.psi(expected, current)
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
    if not profile.frequencies:
        return None
    names, observed = category_counts(profile, values)  # missing values are not counted
    if observed.sum() < t.min_window_size:
        return None
    return _categorical_from_counts(feature, profile, names, observed, t)


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
