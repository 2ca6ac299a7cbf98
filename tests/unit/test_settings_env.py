"""Settings handed to a child process as environment come back identical, structured ones included."""

from __future__ import annotations

import pytest

from shared.drift_thresholds import DriftThresholds
from shared.settings import Settings


def test_as_env_round_trips_every_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    original = Settings(
        registry_tokens={"t": "ada:admin"},
        drift_thresholds=DriftThresholds(alpha=0.05),
        monitor_batch_seconds=0.2,
        registry_open_reads=False,
        topic_prefix="t-1-",
    )
    env = original.as_env()
    assert set(env) == {f"DRIFTLOOP_{name.upper()}" for name in Settings.model_fields}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert Settings() == original
