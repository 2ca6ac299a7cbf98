"""Streaming drift detectors in the style of river's: ``update(x)`` then read ``drift_detected``.

Parameters are checked when a detector is built (``ValueError``), its state is private, and it is saved
and restored only through ``to_state()`` / ``from_state()``. The monitor itself tests whole windows (see
:mod:`columns`); these wrap the same statistics for users who feed values one at a time, and Page-Hinkley
follows a model version's error rate across windows (checkpointed with its progress).
"""

from __future__ import annotations

import math
from typing import Any, Literal, get_args

import numpy as np
from pydantic import TypeAdapter

from services.monitor.domain.drift import stats
from services.monitor.domain.drift.columns import categorical_drift, numeric_drift
from services.monitor.errors import DetectorParameterError
from shared.drift_thresholds import DriftThresholds
from shared.profile import CategoricalProfile, NumericProfile

ColumnTest = Literal["default", "ks", "wasserstein", "psi", "chi2", "jensen_shannon"]
NUMERIC_TESTS = frozenset({"default", "ks", "wasserstein", "psi"})
CATEGORICAL_TESTS = frozenset({"default", "chi2", "jensen_shannon", "psi"})
_PROFILE: TypeAdapter[NumericProfile | CategoricalProfile] = TypeAdapter(NumericProfile | CategoricalProfile)


def _positive(name: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise DetectorParameterError(f"{name} must be a positive number, not {value!r}")


class ColumnDetector:
    """Tests each full tumbling window of ``window_size`` values of one column against its reference.

    ``test`` picks the rule: ``default`` is the monitor's own (significant and large enough); the others
    use one statistic alone against ``threshold`` (a p-value level for ks/chi2, a distance otherwise).
    ks and wasserstein need a numeric profile, chi2 and jensen_shannon a categorical one.

    >>> import numpy as np
    >>> from shared.profile import numeric_profile
    >>> rng = np.random.default_rng(42)
    >>> detector = ColumnDetector(numeric_profile(rng.normal(0, 1, 5_000).tolist()), window_size=200)
    >>> stream = np.concatenate([rng.normal(0, 1, 1_000), rng.normal(1, 1, 1_000)])  # changes at 1,000
    >>> for i, x in enumerate(stream):
    ...     detector.update(x)
    ...     if detector.drift_detected:
    ...         print(f"drift detected at index {i}")
    ...         break
    drift detected at index 1199
    >>> ColumnDetector(numeric_profile([1.0, 2.0]), test="chi2")
    Traceback (most recent call last):
    ...
    services.monitor.errors.DetectorParameterError: test 'chi2' needs a categorical profile; a numeric profile takes one of default, ks, psi, wasserstein
    """

    def __init__(
        self,
        profile: NumericProfile | CategoricalProfile,
        test: ColumnTest = "default",
        window_size: int = 500,
        threshold: float | None = None,
        thresholds: DriftThresholds | None = None,
    ) -> None:
        if test not in get_args(ColumnTest):
            raise DetectorParameterError(f"unknown test {test!r}; one of {', '.join(get_args(ColumnTest))}")
        numeric = isinstance(profile, NumericProfile)
        allowed = NUMERIC_TESTS if numeric else CATEGORICAL_TESTS
        if test not in allowed:
            raise DetectorParameterError(
                f"test {test!r} needs a {'categorical' if numeric else 'numeric'} profile; "
                f"a {profile.kind} profile takes one of {', '.join(sorted(allowed))}"
            )
        if window_size < 1:
            raise DetectorParameterError(f"window_size must be at least 1, not {window_size}")
        if threshold is not None:
            _positive("threshold", threshold)
        self.profile = profile
        self.test = test
        self.window_size = window_size
        self.threshold = threshold
        self.thresholds = thresholds or DriftThresholds()
        self._window: list[object] = []
        self._drift_detected = False

    @property
    def drift_detected(self) -> bool:
        """Whether the window the last value completed drifted."""
        return self._drift_detected

    def update(self, x: object) -> None:
        self._drift_detected = False
        self._window.append(x)
        if len(self._window) >= self.window_size:
            self._drift_detected = self._judge([v for v in self._window if v is not None])
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
        raise AssertionError(self.test)  # refused in __init__

    def to_state(self) -> dict[str, Any]:
        """Parameters and state as JSON-ready values, for ``from_state``."""
        return {
            "profile": self.profile.model_dump(mode="json"),
            "test": self.test,
            "window_size": self.window_size,
            "threshold": self.threshold,
            "thresholds": self.thresholds.model_dump(mode="json"),
            "window": list(self._window),
            "drift_detected": self._drift_detected,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ColumnDetector:
        detector = cls(
            _PROFILE.validate_python(state["profile"]),
            state["test"],
            state["window_size"],
            state["threshold"],
            DriftThresholds.model_validate(state["thresholds"]),
        )
        detector._window = list(state["window"])
        detector._drift_detected = bool(state["drift_detected"])
        return detector


class PageHinkley:
    """Page-Hinkley test for an increase in a stream's mean (e.g. the error rate of labelled predictions).

    Fires when the cumulative deviation above the running mean exceeds ``threshold``; ``delta`` is the
    tolerated change, so noise around a stable mean never accumulates. After an alarm it starts afresh.

    >>> import numpy as np
    >>> rng = np.random.default_rng(7)
    >>> errors = np.concatenate([rng.random(1_000) < 0.1, rng.random(1_000) < 0.4])  # rises at 1,000
    >>> detector = PageHinkley()
    >>> for i, error in enumerate(errors.astype(float)):
    ...     detector.update(error)
    ...     if detector.drift_detected:
    ...         print(f"drift detected at index {i}")
    ...         break
    drift detected at index 1144
    >>> PageHinkley(threshold=0)
    Traceback (most recent call last):
    ...
    services.monitor.errors.DetectorParameterError: threshold must be a positive number, not 0
    """

    def __init__(self, min_instances: int = 30, delta: float = 0.005, threshold: float = 50.0) -> None:
        if min_instances < 1:
            raise DetectorParameterError(f"min_instances must be at least 1, not {min_instances}")
        if not (math.isfinite(delta) and delta >= 0):
            raise DetectorParameterError(f"delta must be a number of at least 0, not {delta!r}")
        _positive("threshold", threshold)
        self.min_instances = min_instances
        self.delta = delta
        self.threshold = threshold
        self._drift_detected = False
        self._n = 0
        self._mean = 0.0
        self._sum = 0.0
        self._min = 0.0

    @property
    def drift_detected(self) -> bool:
        """Whether the last value raised the alarm."""
        return self._drift_detected

    @property
    def statistic(self) -> float:
        """The cumulative deviation compared with ``threshold``."""
        return self._sum - self._min

    def update(self, x: float) -> None:
        if self._drift_detected:  # start afresh after an alarm, as river does
            self._n, self._mean, self._sum, self._min = 0, 0.0, 0.0, 0.0
        self._n += 1
        self._mean += (x - self._mean) / self._n
        self._sum += x - self._mean - self.delta
        self._min = min(self._min, self._sum)
        self._drift_detected = self._n >= self.min_instances and self._sum - self._min > self.threshold

    def to_state(self) -> dict[str, Any]:
        """Parameters and state as JSON-ready values: the format of the monitor's progress checkpoints."""
        return {
            "min_instances": self.min_instances,
            "delta": self.delta,
            "threshold": self.threshold,
            "drift_detected": self._drift_detected,
            "_n": self._n,
            "_mean": self._mean,
            "_sum": self._sum,
            "_min": self._min,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> PageHinkley:
        """A detector from ``to_state()``'s dict (also what checkpoints written before it held)."""
        detector = cls(state["min_instances"], state["delta"], state["threshold"])
        detector._drift_detected = bool(state["drift_detected"])
        detector._n = int(state["_n"])
        detector._mean, detector._sum, detector._min = (
            float(state["_mean"]),
            float(state["_sum"]),
            float(state["_min"]),
        )
        return detector


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


class AccuracyDropDetector:
    """Windowed performance drift: each ``window_size`` labelled outcomes are judged by ``performance_dropped``.

    >>> import numpy as np
    >>> rng = np.random.default_rng(3)
    >>> correct = np.concatenate([rng.random(1_000) < 0.9, rng.random(1_000) < 0.7])  # falls at 1,000
    >>> detector = AccuracyDropDetector(reference_accuracy=0.9, window_size=200)
    >>> for i, outcome in enumerate(correct):
    ...     detector.update(bool(outcome))
    ...     if detector.drift_detected:
    ...         print(f"drift detected at index {i}")
    ...         break
    drift detected at index 1199
    >>> AccuracyDropDetector(reference_accuracy=90)
    Traceback (most recent call last):
    ...
    services.monitor.errors.DetectorParameterError: reference_accuracy must be between 0 and 1, not 90
    """

    def __init__(
        self, reference_accuracy: float, window_size: int = 500, thresholds: DriftThresholds | None = None
    ) -> None:
        if not 0 <= reference_accuracy <= 1:
            raise DetectorParameterError(
                f"reference_accuracy must be between 0 and 1, not {reference_accuracy}"
            )
        if window_size < 1:
            raise DetectorParameterError(f"window_size must be at least 1, not {window_size}")
        self.reference_accuracy = reference_accuracy
        self.window_size = window_size
        self.thresholds = thresholds or DriftThresholds()
        self._drift_detected = False
        self._correct = 0
        self._total = 0

    @property
    def drift_detected(self) -> bool:
        """Whether the window the last outcome completed showed a drop."""
        return self._drift_detected

    def update(self, correct: bool) -> None:
        self._drift_detected = False
        self._correct += int(correct)
        self._total += 1
        if self._total >= self.window_size:
            t = self.thresholds
            self._drift_detected, _, _ = performance_dropped(
                self._correct, self._total, self.reference_accuracy, t.performance_drop, t.confidence
            )
            self._correct = self._total = 0

    def to_state(self) -> dict[str, Any]:
        """Parameters and state as JSON-ready values, for ``from_state``."""
        return {
            "reference_accuracy": self.reference_accuracy,
            "window_size": self.window_size,
            "thresholds": self.thresholds.model_dump(mode="json"),
            "drift_detected": self._drift_detected,
            "correct": self._correct,
            "total": self._total,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> AccuracyDropDetector:
        detector = cls(
            state["reference_accuracy"],
            state["window_size"],
            DriftThresholds.model_validate(state["thresholds"]),
        )
        detector._drift_detected = bool(state["drift_detected"])
        detector._correct, detector._total = int(state["correct"]), int(state["total"])
        return detector
