"""Streaming drift detectors in the style of river's: ``update(x)`` then read ``drift_detected``.

The monitor itself tests whole windows (see :mod:`columns`); these wrap the same statistics for users who
feed values one at a time, and they are what the detector contract tests exercise on synthetic streams.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from services.monitor.domain.drift import stats
from services.monitor.domain.drift.columns import categorical_drift, numeric_drift
from shared.drift_thresholds import DriftThresholds
from shared.profile import CategoricalProfile, NumericProfile

ColumnTest = Literal["default", "ks", "wasserstein", "psi", "chi2", "jensen_shannon"]


@dataclass
class ColumnDetector:
    """Tests each full tumbling window of ``window_size`` values of one column against its reference.

    ``test`` picks the rule: ``default`` is the monitor's own (significant and large enough); the others
    use one statistic alone against ``threshold`` (a p-value level for ks/chi2, a distance otherwise).
    """

    profile: NumericProfile | CategoricalProfile
    test: ColumnTest = "default"
    window_size: int = 500
    threshold: float | None = None
    thresholds: DriftThresholds = field(default_factory=DriftThresholds)
    drift_detected: bool = False
    _window: list[object] = field(default_factory=list)

    def update(self, x: object) -> None:
        self.drift_detected = False
        self._window.append(x)
        if len(self._window) >= self.window_size:
            self.drift_detected = self._judge([v for v in self._window if v is not None])
            self._window = []

    def _judge(self, values: list[object]) -> bool:
        t = self.thresholds
        if isinstance(self.profile, NumericProfile):
            col = numeric_drift("x", self.profile, np.asarray(values, dtype=float), t)
        else:
            col = categorical_drift("x", self.profile, values, t)
        by_test = {r.test: r for r in col.results}
        match self.test:
            case "default":
                return col.p_value < t.alpha and col.effect_size > col.effect_threshold
            case "ks" | "chi2":
                p = by_test[self.test].p_value
                return p is not None and p < (self.threshold or t.alpha)
            case "wasserstein":
                return by_test["wasserstein_norm"].statistic > (self.threshold or t.numeric_effect)
            case "psi":
                return by_test["psi"].statistic > (self.threshold or 0.2)
            case "jensen_shannon":
                return by_test["jensen_shannon"].statistic > (self.threshold or t.categorical_effect)
        raise ValueError(f"unknown test {self.test!r}")


@dataclass
class PageHinkley:
    """Page-Hinkley test for an increase in a stream's mean (e.g. the error rate of labelled predictions).

    Fires when the cumulative deviation above the running mean exceeds ``threshold``; ``delta`` is the
    tolerated change, so noise around a stable mean never accumulates.
    """

    min_instances: int = 30
    delta: float = 0.005
    threshold: float = 50.0
    drift_detected: bool = False
    _n: int = 0
    _mean: float = 0.0
    _sum: float = 0.0
    _min: float = 0.0

    @property
    def statistic(self) -> float:
        """The cumulative deviation compared with ``threshold``."""
        return self._sum - self._min

    def update(self, x: float) -> None:
        if self.drift_detected:  # start afresh after an alarm, as river does
            self._n, self._mean, self._sum, self._min = 0, 0.0, 0.0, 0.0
        self._n += 1
        self._mean += (x - self._mean) / self._n
        self._sum += x - self._mean - self.delta
        self._min = min(self._min, self._sum)
        self.drift_detected = self._n >= self.min_instances and self._sum - self._min > self.threshold


def performance_dropped(
    correct: int, total: int, reference: float, drop: float, confidence: float
) -> tuple[bool, float, float]:
    """True when even the optimistic end of the window's accuracy interval is ``drop`` below validation.

    Returns (dropped, accuracy, interval upper bound); judging by the interval keeps small windows quiet.
    """
    if total == 0:
        return False, float("nan"), 1.0
    _, upper = stats.wilson_interval(correct, total, confidence)
    return upper < reference - drop, correct / total, upper


@dataclass
class AccuracyDropDetector:
    """Windowed performance drift: each ``window_size`` labelled outcomes are judged by ``performance_dropped``."""

    reference_accuracy: float
    window_size: int = 500
    thresholds: DriftThresholds = field(default_factory=DriftThresholds)
    drift_detected: bool = False
    _correct: int = 0
    _total: int = 0

    def update(self, correct: bool) -> None:
        self.drift_detected = False
        self._correct += int(correct)
        self._total += 1
        if self._total >= self.window_size:
            t = self.thresholds
            self.drift_detected, _, _ = performance_dropped(
                self._correct, self._total, self.reference_accuracy, t.performance_drop, t.confidence
            )
            self._correct = self._total = 0
