"""Hysteresis: an alert needs K of the last M windows, a cooldown stops storms, recovery is announced."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from services.monitor.domain.drift.decision import Alert, DriftDecider, WindowVerdict
from shared.drift_thresholds import DriftThresholds
from shared.events import DriftKind

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def verdict(i: int, *features: str, kinds: set[DriftKind] | None = None) -> WindowVerdict:
    start = T0 + timedelta(minutes=i)
    kinds = kinds if kinds is not None else ({DriftKind.FEATURE} if features else set())
    return WindowVerdict(start, start + timedelta(minutes=1), frozenset(kinds), tuple(features), severity=0.5)


def run(decider: DriftDecider, pattern: str) -> list[tuple[int, Alert]]:
    """Feed one window per character ('x' drifted on feature f, '.' clean); return (index, alert) pairs."""
    out = []
    for i, c in enumerate(pattern):
        alert = decider.observe(verdict(i, "f") if c == "x" else verdict(i))
        if alert is not None:
            out.append((i, alert))
    return out


def test_single_drifting_window_is_noise() -> None:
    assert run(DriftDecider(), "..x...x...x..") == []


def test_two_of_three_windows_raise_one_alert_with_the_windows_counted() -> None:
    alerts = run(DriftDecider(), "...x.x")
    assert [i for i, _ in alerts] == [5]
    alert = alerts[0][1]
    assert not alert.recovered and alert.kinds == (DriftKind.FEATURE,) and alert.drifted_features == ("f",)
    assert (alert.windows_drifted, alert.windows_considered) == (2, 3)
    assert alert.window_start == T0 + timedelta(minutes=3)


def test_persistent_drift_alerts_once_then_recovers_then_may_alert_again_after_cooldown() -> None:
    decider = DriftDecider(DriftThresholds(cooldown_windows=4))
    alerts = run(decider, "xxxxxxxx...xx")
    assert [(i, a.recovered) for i, a in alerts] == [(1, False), (10, True), (12, False)]


def test_cooldown_blocks_a_second_alert_right_after_recovery() -> None:
    decider = DriftDecider(DriftThresholds(cooldown_windows=10))
    alerts = run(decider, "xx...xxxxx")
    assert [(i, a.recovered) for i, a in alerts] == [(1, False), (4, True)]


def test_kinds_and_features_are_merged_over_the_drifting_windows() -> None:
    decider = DriftDecider()
    decider.observe(verdict(0, "age"))
    alert = decider.observe(verdict(1, "plan", kinds={DriftKind.FEATURE, DriftKind.OUTPUT}))
    assert alert is not None
    assert alert.kinds == (DriftKind.FEATURE, DriftKind.OUTPUT) and alert.drifted_features == ("age", "plan")


def test_k_cannot_exceed_m() -> None:
    with pytest.raises(ValidationError, match="windows_needed"):
        DriftThresholds(windows_needed=4, windows_considered=3)
