"""The statistics behind the drift tests, vectorised with numpy; each checked against scipy in unit tests.

KS, chi-square and Benjamini-Hochberg give significance; Wasserstein (normalised by the reference spread),
PSI and Jensen-Shannon give effect size. Significance alone shrinks to "everything drifts" on big samples,
which is why the decisions in :mod:`services.monitor.domain.drift.columns` need both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats as sps

PSI_EPSILON = 1e-4


def _ecdfs(a: NDArray[np.float64], b: NDArray[np.float64]) -> tuple[NDArray[np.float64], ...]:
    """Both samples' empirical CDFs on their merged distinct values (``a`` and ``b`` sorted, non-empty).

    One merge instead of a sort and two binary searches (a stable sort of two sorted runs is a linear
    merge): each CDF is a running count of its sample's values, read at the last of each run of ties.
    """
    n, m = len(a), len(b)
    values = np.concatenate([a, b])
    order = np.argsort(values, kind="stable")
    grid = values[order]
    count_a = np.cumsum(order < n)
    count_b = np.arange(1, n + m + 1) - count_a
    last = np.append(grid[1:] != grid[:-1], True)
    return grid[last], count_a[last] / n, count_b[last] / m


def _ks(n: int, m: int, cdf_a: NDArray[np.float64], cdf_b: NDArray[np.float64]) -> tuple[float, float]:
    d = float(np.max(np.abs(cdf_a - cdf_b)))
    p = float(np.clip(sps.kstwo.sf(d, np.round(n * m / (n + m))), 0.0, 1.0))
    return d, p


def _area(grid: NDArray[np.float64], cdf_a: NDArray[np.float64], cdf_b: NDArray[np.float64]) -> float:
    return float(np.sum(np.abs(cdf_a[:-1] - cdf_b[:-1]) * np.diff(grid)))


def ks_2samp(reference: ArrayLike, current: ArrayLike) -> tuple[float, float]:
    """Two-sided two-sample Kolmogorov-Smirnov: (D, asymptotic p-value), as ``scipy.stats.ks_2samp(method='asymp')``."""
    a = np.sort(np.asarray(reference, dtype=float))
    b = np.sort(np.asarray(current, dtype=float))
    if len(a) == 0 or len(b) == 0:
        return 0.0, 1.0
    _, cdf_a, cdf_b = _ecdfs(a, b)
    return _ks(len(a), len(b), cdf_a, cdf_b)


def wasserstein(reference: ArrayLike, current: ArrayLike) -> float:
    """1-D earth mover's distance between two empirical distributions (area between their CDFs)."""
    a = np.sort(np.asarray(reference, dtype=float))
    b = np.sort(np.asarray(current, dtype=float))
    if len(a) == 0 or len(b) == 0:
        return 0.0
    return _area(*_ecdfs(a, b))


def ks_and_wasserstein(
    sorted_reference: NDArray[np.float64], current: ArrayLike
) -> tuple[float, float, float]:
    """(KS D, KS p-value, Wasserstein) from one merge of the two samples: what a numeric column's test needs.

    ``sorted_reference`` must already be sorted (a profile's sketch is sorted once, not once per window).
    """
    a = sorted_reference
    b = np.sort(np.asarray(current, dtype=float))
    if len(a) == 0 or len(b) == 0:
        return 0.0, 1.0, 0.0
    grid, cdf_a, cdf_b = _ecdfs(a, b)
    d, p = _ks(len(a), len(b), cdf_a, cdf_b)
    return d, p, _area(grid, cdf_a, cdf_b)


@dataclass(frozen=True)
class SketchComparison:
    """A window against a reference sketch, from the window's counts on the sketch's grid."""

    ks: float
    """KS D between the sketch's ECDF and the window's: exact (no approximation against the sketch)."""
    wasserstein: float
    """Area between the two CDFs: exact except in grid cells where the window's CDF crosses the sketch's
    (constant) one; there it is low by at most the cell's width times the window's share in it."""
    bin_fractions: NDArray[np.float64]
    """The window's share in each PSI bin of the reference, exactly as :func:`bin_fractions`."""


def compare_to_sketch(
    sketch: NDArray[np.float64], inner_edges: Sequence[float], current: NDArray[np.float64]
) -> SketchComparison:
    """KS, Wasserstein and PSI fractions of ``current`` against a sorted reference ``sketch``, from the
    window's counts (and sums) on the sketch's grid of about a thousand points.

    The window is sorted once with numpy's default (SIMD) sort, about 0.5 ms for 100,000 values, and every
    further step looks the grid up in it (a thousand binary searches), so no per-value work is left: the
    old path's stable merge sort of window and sketch together, and binning each window value into the
    grid (a binary search per value, about 9 ms for 100,000 values), were what cost.

    The sketch is read as the sample it is (each point 1/k of the mass, as :func:`ks_and_wasserstein` reads
    it), so KS and PSI match that function exactly; Wasserstein carries the bound stated on
    :class:`SketchComparison`. Both samples must be non-empty and finite.
    """
    k, m = len(sketch), len(current)
    x = np.sort(current)
    edges = np.asarray(inner_edges, dtype=float)
    grid = np.unique(np.concatenate([sketch, edges]))
    cdf_ref = np.searchsorted(sketch, grid, side="right") / k  # edges add no mass
    below = np.searchsorted(x, grid, side="left")  # window values strictly below each grid point
    upto = np.searchsorted(x, grid, side="right")  # ... at or below it
    ref_before = np.concatenate([[0.0], cdf_ref[:-1]])  # the sketch's CDF on the cell below each point
    d = float(max(np.max(np.abs(upto / m - cdf_ref)), np.max(np.abs(below / m - ref_before))))

    # Wasserstein: in each open cell (grid[j], grid[j+1]) the sketch's CDF is a constant a; the integral
    # of the window's CDF there is exact from the cell's count and the sum of its values.
    total = np.concatenate([[0.0], np.cumsum(x)])
    inside_n = below[1:] - upto[:-1]
    inside_sum = total[below[1:]] - total[upto[:-1]]
    left, right = grid[:-1], grid[1:]
    width = right - left
    integral = (upto[:-1] * width + inside_n * right - inside_sum) / m
    area = float(np.sum(np.abs(cdf_ref[:-1] * width - integral)))
    area += float(below[0] * grid[0] - total[below[0]]) / m  # below the grid the sketch's CDF is 0
    area += float(total[-1] - total[upto[-1]] - (m - upto[-1]) * grid[-1]) / m  # above it, 1
    psi_below = np.searchsorted(x, edges, side="left")  # PSI bins are [edge, next edge)
    fractions = np.diff(np.concatenate([[0], psi_below, [m]])) / m
    return SketchComparison(d, area, fractions)


def ks_p_value(d: float, n: int, m: int) -> float:
    """Asymptotic two-sided KS p-value of ``d`` for samples of ``n`` and ``m`` values."""
    if n == 0 or m == 0:
        return 1.0
    return float(np.clip(sps.kstwo.sf(d, np.round(n * m / (n + m))), 0.0, 1.0))


def normalised_wasserstein(reference: ArrayLike, current: ArrayLike, reference_std: float) -> float:
    """Wasserstein in units of the reference's standard deviation, so one threshold fits every feature."""
    return normalise_distance(wasserstein(reference, current), reference_std)


def normalise_distance(distance: float, reference_std: float) -> float:
    """A distance in units of the reference's standard deviation (infinite when a constant one moved)."""
    if reference_std > 0:
        return distance / reference_std
    return 0.0 if distance == 0 else float("inf")


def bin_fractions(values: ArrayLike, inner_edges: Sequence[float]) -> NDArray[np.float64]:
    """Share of ``values`` in each bin delimited by ``inner_edges`` (outer bins open), as PSI needs."""
    x = np.asarray(values, dtype=float)
    counts = np.bincount(
        np.searchsorted(np.asarray(inner_edges), x, side="right"), minlength=len(inner_edges) + 1
    )
    return counts / max(len(x), 1)


def psi(reference_fractions: ArrayLike, current_fractions: ArrayLike, epsilon: float = PSI_EPSILON) -> float:
    """Population stability index: sum((cur - ref) * ln(cur / ref)), empty bins floored at ``epsilon``."""
    r = np.clip(np.asarray(reference_fractions, dtype=float), epsilon, None)
    c = np.clip(np.asarray(current_fractions, dtype=float), epsilon, None)
    return float(np.sum((c - r) * np.log(c / r)))


def jensen_shannon(p: ArrayLike, q: ArrayLike) -> float:
    """Jensen-Shannon distance with base-2 logs (0 identical, 1 disjoint), as scipy's ``jensenshannon(base=2)``.

    Evidently computes it with natural logs (scipy's default), which scales the distance by sqrt(ln 2) =
    0.833: a threshold of 0.1 here is 0.083 there, and evidently's 0.1 is 0.12 here (docs/monitor.md).
    """
    p_ = np.asarray(p, dtype=float)
    q_ = np.asarray(q, dtype=float)
    p_ = p_ / p_.sum() if p_.sum() > 0 else p_
    q_ = q_ / q_.sum() if q_.sum() > 0 else q_
    m = (p_ + q_) / 2

    def kl(x: NDArray[np.float64]) -> float:
        mask = x > 0
        return float(np.sum(x[mask] * np.log2(x[mask] / m[mask])))

    return float(np.sqrt(max((kl(p_) + kl(q_)) / 2, 0.0)))


def chi_square(observed: ArrayLike, expected_fractions: ArrayLike) -> tuple[float, float]:
    """Pearson's goodness of fit of ``observed`` counts to expected shares: (statistic, p-value).

    Expected shares of zero (a category the reference never saw) are floored so an unseen category counts
    as strong evidence instead of dividing by zero.
    """
    obs = np.asarray(observed, dtype=float)
    n = obs.sum()
    if n == 0 or len(obs) < 2:
        return 0.0, 1.0
    shares = np.clip(np.asarray(expected_fractions, dtype=float), PSI_EPSILON, None)
    expected = shares / shares.sum() * n
    statistic = float(np.sum((obs - expected) ** 2 / expected))
    return statistic, float(sps.chi2.sf(statistic, len(obs) - 1))


def chi_square_two_sample(reference_counts: ArrayLike, observed: ArrayLike) -> tuple[float, float]:
    """Pearson's chi-square test of homogeneity of two samples' category counts: (statistic, p-value).

    The reference's counts are a sample too: against its shares taken as exact (:func:`chi_square`), a big
    window finds the reference's own sampling error "significant" (p = 1e-175 on an unchanged column). The
    2 x K contingency table accounts for both sides, as ``scipy.stats.chi2_contingency(correction=False)``;
    categories empty in both samples are left out.
    """
    table = np.vstack([np.asarray(reference_counts, dtype=float), np.asarray(observed, dtype=float)])
    table = table[:, table.sum(axis=0) > 0]
    rows = table.sum(axis=1)
    if table.shape[1] < 2 or np.any(rows == 0):
        return 0.0, 1.0
    expected = np.outer(rows, table.sum(axis=0)) / rows.sum()
    statistic = float(np.sum((table - expected) ** 2 / expected))
    return statistic, float(sps.chi2.sf(statistic, table.shape[1] - 1))


def benjamini_hochberg(p_values: Sequence[float], alpha: float) -> list[bool]:
    """Which hypotheses to reject at false-discovery rate ``alpha`` when testing many features at once."""
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    if m == 0:
        return []
    order = np.argsort(p)
    passed = p[order] <= alpha * np.arange(1, m + 1) / m
    reject = np.zeros(m, dtype=bool)
    if passed.any():
        last = int(np.nonzero(passed)[0].max())
        reject[order[: last + 1]] = True
    return reject.tolist()


def wilson_interval(successes: int, trials: int, confidence: float = 0.99) -> tuple[float, float]:
    """Wilson score interval of a proportion; honest at small samples and near 0 or 1."""
    if trials == 0:
        return 0.0, 1.0
    z = float(sps.norm.ppf(1 - (1 - confidence) / 2))
    phat = successes / trials
    denom = 1 + z * z / trials
    centre = (phat + z * z / (2 * trials)) / denom
    half = z * np.sqrt(phat * (1 - phat) / trials + z * z / (4 * trials * trials)) / denom
    return float(centre - half), float(centre + half)
