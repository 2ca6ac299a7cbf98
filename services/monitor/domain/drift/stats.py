"""The statistics behind the drift tests, vectorised with numpy; each checked against scipy in unit tests.

KS, chi-square and Benjamini-Hochberg give significance; Wasserstein (normalised by the reference spread),
PSI and Jensen-Shannon give effect size. Significance alone shrinks to "everything drifts" on big samples,
which is why the decisions in :mod:`services.monitor.domain.drift.columns` need both.
"""

from __future__ import annotations

from collections.abc import Sequence

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
    """Jensen-Shannon distance with base-2 logs (0 identical, 1 disjoint), as scipy's ``jensenshannon``."""
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
