"""Detector contract: on seeded streams with a known change point, each detector fires after it, never before."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pytest
from scipy import stats as sps

from services.monitor.domain.drift.columns import feature_drift
from services.monitor.domain.drift.detectors import AccuracyDropDetector, ColumnDetector, PageHinkley
from shared.drift_thresholds import DriftThresholds
from shared.profile import build_profile, categorical_profile, numeric_profile

CHANGE = 6_000
LENGTH = 12_000


def _first_alarm(detector: Any, stream: Iterable[Any]) -> int | None:
    for i, x in enumerate(stream):
        detector.update(x)
        if detector.drift_detected:
            return i
    return None


def numeric_stream(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    reference = rng.normal(10, 2, 20_000)
    stream = np.concatenate([rng.normal(10, 2, CHANGE), rng.normal(11.5, 2.5, LENGTH - CHANGE)])
    return reference, stream


def categorical_stream(seed: int) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    cats = ["a", "b", "c", "d"]
    reference = rng.choice(cats, 20_000, p=[0.4, 0.3, 0.2, 0.1]).tolist()
    before = rng.choice(cats, CHANGE, p=[0.4, 0.3, 0.2, 0.1]).tolist()
    after = rng.choice(cats, LENGTH - CHANGE, p=[0.15, 0.25, 0.3, 0.3]).tolist()
    return reference, before + after


NUMERIC: dict[str, Callable[[Any], Any]] = {
    # 1,000 values a window: at 500 the single-window rule (no K-of-M) meets a stationary window with
    # p = 0.003 and W = 0.13 on seed 3 once KS counts the reference's 20,000 values, not its 1,000-point sketch
    "default": lambda p: ColumnDetector(p, window_size=1_000),
    "ks": lambda p: ColumnDetector(p, test="ks", threshold=1e-4),
    "wasserstein": lambda p: ColumnDetector(p, test="wasserstein", threshold=0.25),
    "psi": lambda p: ColumnDetector(p, test="psi"),
}
CATEGORICAL: dict[str, Callable[[Any], Any]] = {
    "default": lambda p: ColumnDetector(p),
    "chi2": lambda p: ColumnDetector(p, test="chi2", threshold=1e-4),
    "jensen_shannon": lambda p: ColumnDetector(p, test="jensen_shannon"),
    "psi": lambda p: ColumnDetector(p, test="psi"),
}


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("name", sorted(NUMERIC))
def test_numeric_detector_fires_after_the_change_only(name: str, seed: int) -> None:
    reference, stream = numeric_stream(seed)
    alarm = _first_alarm(NUMERIC[name](numeric_profile(reference.tolist())), stream)
    assert alarm is not None and CHANGE <= alarm < CHANGE + 1_500, alarm


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("name", sorted(CATEGORICAL))
def test_categorical_detector_fires_after_the_change_only(name: str, seed: int) -> None:
    reference, stream = categorical_stream(seed)
    alarm = _first_alarm(CATEGORICAL[name](categorical_profile(reference)), stream)
    assert alarm is not None and CHANGE <= alarm < CHANGE + 1_500, alarm


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_page_hinkley_fires_when_the_error_rate_rises(seed: int) -> None:
    rng = np.random.default_rng(seed)
    errors = np.concatenate([rng.random(CHANGE) < 0.1, rng.random(LENGTH - CHANGE) < 0.35]).astype(float)
    alarm = _first_alarm(PageHinkley(), errors)
    assert alarm is not None and CHANGE <= alarm < CHANGE + 1_500, alarm


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_accuracy_drop_detector_fires_when_accuracy_falls(seed: int) -> None:
    rng = np.random.default_rng(seed)
    correct = np.concatenate([rng.random(CHANGE) < 0.9, rng.random(LENGTH - CHANGE) < 0.7])
    alarm = _first_alarm(AccuracyDropDetector(reference_accuracy=0.9), correct)
    assert alarm is not None and CHANGE <= alarm < CHANGE + 1_500, alarm


def test_large_stationary_sample_is_not_drift_but_a_real_shift_is() -> None:
    """Sample-size aware: 200k values from the reference distribution never drift; a big shift does."""
    rng = np.random.default_rng(0)
    reference = {f"f{i}": rng.normal(0, 1, 20_000).tolist() for i in range(20)}
    reference["plan"] = rng.choice(["free", "pro"], 20_000, p=[0.7, 0.3]).tolist()
    profile = build_profile(reference)
    window = {f"f{i}": rng.normal(0, 1, 200_000).tolist() for i in range(20)}
    window["plan"] = rng.choice(["free", "pro"], 200_000, p=[0.7, 0.3]).tolist()
    assert not [c.feature for c in feature_drift(profile, window, DriftThresholds()) if c.drifted]

    window["f3"] = rng.normal(0.8, 1, 200_000).tolist()
    window["plan"] = rng.choice(["free", "pro"], 200_000, p=[0.3, 0.7]).tolist()
    drifted = [c for c in feature_drift(profile, window, DriftThresholds()) if c.drifted]
    assert sorted(c.feature for c in drifted) == ["f3", "plan"]
    evidence = drifted[0].evidence()
    assert evidence.drifted and evidence.p_value is not None and evidence.p_value < 0.01
    assert evidence.current_size == 200_000


def test_tiny_shift_on_a_huge_sample_is_not_drift() -> None:
    """A p-value alone cries wolf on big samples (scipy's KS here); the effect-size gate does not."""
    rng = np.random.default_rng(5)
    reference, current = rng.normal(0, 1, 50_000), rng.normal(0.03, 1, 500_000)
    assert sps.ks_2samp(reference, current).pvalue < 1e-4
    result = feature_drift(
        build_profile({"x": reference.tolist()}), {"x": current.tolist()}, DriftThresholds()
    )[0]
    assert not result.drifted and result.effect_size < 0.1


def test_small_windows_are_not_judged() -> None:
    profile = build_profile({"x": list(range(1000))})
    assert feature_drift(profile, {"x": [5000.0] * 50}, DriftThresholds()) == []


@pytest.mark.parametrize(
    "build",
    [
        lambda: ColumnDetector(numeric_profile([1.0, 2.0]), test="bogus"),  # type: ignore[arg-type]
        lambda: ColumnDetector(categorical_profile(["a", "b"]), test="ks"),
        lambda: ColumnDetector(numeric_profile([1.0, 2.0]), window_size=0),
        lambda: ColumnDetector(numeric_profile([1.0, 2.0]), test="psi", threshold=-1),
        lambda: PageHinkley(min_instances=0),
        lambda: PageHinkley(delta=float("nan")),
        lambda: AccuracyDropDetector(reference_accuracy=1.5),
        lambda: AccuracyDropDetector(reference_accuracy=0.9, window_size=0),
    ],
)
def test_a_bad_parameter_fails_when_the_detector_is_built_not_after_500_updates(
    build: Callable[[], Any],
) -> None:
    with pytest.raises(ValueError):
        build()


def test_drift_detected_is_read_only() -> None:
    detector = PageHinkley()
    with pytest.raises(AttributeError):
        detector.drift_detected = True  # type: ignore[misc]


DETECTORS: dict[
    str, tuple[Callable[[], Any], Callable[[Any], Any], Callable[[np.random.Generator, int], Any]]
] = {
    "column": (
        lambda: ColumnDetector(categorical_profile(["a", "b", "b", "c"] * 50), window_size=100),
        ColumnDetector.from_state,
        lambda rng, n: rng.choice(["a", "b", "c"], n, p=[0.2, 0.2, 0.6]).tolist(),
    ),
    "page_hinkley": (
        lambda: PageHinkley(),
        PageHinkley.from_state,
        lambda rng, n: (rng.random(n) < np.where(np.arange(n) < n // 2, 0.1, 0.5)).astype(float).tolist(),
    ),
    "accuracy": (
        lambda: AccuracyDropDetector(0.9, window_size=100),
        AccuracyDropDetector.from_state,
        lambda rng, n: (rng.random(n) < 0.6).tolist(),
    ),
}


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_a_detector_restored_from_its_state_goes_on_exactly_as_the_original(name: str) -> None:
    build, restore, stream = DETECTORS[name]
    values = stream(np.random.default_rng(4), 1_000)
    original = build()
    for x in values[:450]:
        original.update(x)
    copy = restore(json.loads(json.dumps(original.to_state())))
    alarms = []
    for x in values[450:]:
        original.update(x)
        copy.update(x)
        assert copy.drift_detected == original.drift_detected
        alarms.append(original.drift_detected)
    assert any(alarms) and copy.to_state() == original.to_state()


def test_page_hinkley_reads_the_checkpoints_written_before_it_had_to_state() -> None:
    """Progress checkpoints held the detector's dataclass fields; they are still its state format."""
    old = {"min_instances": 30, "delta": 0.005, "threshold": 50.0, "drift_detected": False,
           "_n": 120, "_mean": 0.1, "_sum": 3.5, "_min": -1.0}  # fmt: skip
    detector = PageHinkley.from_state(old)
    assert detector.statistic == 4.5 and not detector.drift_detected
    assert detector.to_state() == old
