"""A robust straight line through recent readings: one outlier (a batch landing, a GC pause) cannot tilt it."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Trend:
    """``value(t) = level + slope * (t - at)``: a line anchored at the newest reading's time ``at``."""

    at: float
    level: float
    slope: float

    def value(self, t: float) -> float:
        return self.level + self.slope * (t - self.at)


def theil_sen(points: Sequence[tuple[float, float]]) -> Trend:
    """The Theil-Sen line through ``(t, y)`` points: the median of the pairwise slopes.

    Up to ~29% of the points may be wild without moving it, which a least-squares fit cannot say.

    Examples
    --------
    >>> line = theil_sen([(0, 0), (1, 10), (2, 20), (3, 1000), (4, 40)])
    >>> line.slope, line.level
    (10.0, 40.0)
    """
    if len(points) < 2:
        raise ValueError("a trend needs at least two readings")
    ordered = sorted(points)
    slopes = [
        (y2 - y1) / (t2 - t1) for i, (t1, y1) in enumerate(ordered) for t2, y2 in ordered[i + 1 :] if t2 > t1
    ]
    if not slopes:
        raise ValueError("a trend needs readings at two different times")
    slope = statistics.median(slopes)
    at = ordered[-1][0]
    level = statistics.median(y - slope * (t - at) for t, y in ordered)
    return Trend(at=at, level=level, slope=slope)
