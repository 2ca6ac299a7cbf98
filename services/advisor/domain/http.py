"""Request rate, error rate and p99 latency of an HTTP service, from two readings of its counters.

Ingest, the registry and the model servers count their requests into a histogram (``shared/http_metrics.py``);
the advisor reads it every tick and reports the rates over the last interval, as Prometheus's ``rate`` and
``histogram_quantile`` would.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class HttpReading:
    """One service's running totals: requests answered, 5xx among them, and cumulative latency buckets."""

    service: str
    at: float
    requests: float
    errors: float
    buckets: tuple[tuple[float, float], ...]  # (upper bound in seconds, requests at most that slow), sorted
    instance: str = ""  # which replica, when a name stands for several


@dataclass(frozen=True)
class HttpRates:
    requests_per_s: float
    errors_per_s: float
    p99_ms: float | None


def quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """The ``q`` quantile from cumulative histogram buckets, interpolated inside its bucket; None: no data.

    A quantile in the open-ended last bucket is the highest finite bound (a lower bound of the truth).

    >>> quantile(0.99, [(0.01, 90.0), (0.1, 99.0), (1.0, 100.0), (math.inf, 100.0)])
    0.1
    >>> round(quantile(0.5, [(0.01, 0.0), (0.1, 100.0), (math.inf, 100.0)]), 6)
    0.055
    >>> quantile(0.99, [(0.01, 0.0), (math.inf, 0.0)]) is None
    True
    """
    total = buckets[-1][1] if buckets else 0.0
    if total <= 0:
        return None
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return lower_bound


def rates(before: HttpReading, after: HttpReading) -> HttpRates | None:
    """Rates between two readings of one service; None when it restarted (its totals went down) or no time passed.

    Of 2,000 requests in 10 s, 1,800 took at most 10 ms and 190 more at most 100 ms: the 1,980th is in
    the second bucket, 18/19 of the way up.

    >>> a = HttpReading("ingest", 0.0, 1000, 0, ((0.01, 900), (0.1, 1000), (math.inf, 1000)))
    >>> b = HttpReading("ingest", 10.0, 3000, 20, ((0.01, 2700), (0.1, 2990), (math.inf, 3000)))
    >>> r = rates(a, b)
    >>> r.requests_per_s, r.errors_per_s, r.p99_ms
    (200.0, 2.0, 95.263)
    """
    span = after.at - before.at
    if span <= 0 or after.requests < before.requests or len(after.buckets) != len(before.buckets):
        return None
    deltas = [
        (bound, count - old) for (bound, count), (_, old) in zip(after.buckets, before.buckets, strict=True)
    ]
    if any(d < 0 for _, d in deltas):
        return None
    p99 = quantile(0.99, deltas)
    return HttpRates(
        requests_per_s=(after.requests - before.requests) / span,
        errors_per_s=max(0.0, after.errors - before.errors) / span,
        p99_ms=None if p99 is None else round(p99 * 1000, 3),
    )


def combined(measured: Sequence[HttpRates]) -> HttpRates:
    """A service's replicas as one: their rates add up, its p99 is the worst replica's (an upper bound).

    >>> combined([HttpRates(100.0, 1.0, 4.0), HttpRates(50.0, 0.0, 9.5), HttpRates(0.0, 0.0, None)])
    HttpRates(requests_per_s=150.0, errors_per_s=1.0, p99_ms=9.5)
    """
    p99s = [m.p99_ms for m in measured if m.p99_ms is not None]
    return HttpRates(
        requests_per_s=sum(m.requests_per_s for m in measured),
        errors_per_s=sum(m.errors_per_s for m in measured),
        p99_ms=max(p99s) if p99s else None,
    )
