"""Where each model version's evaluation stands: event-time watermark, next windows, alert state.

Checkpointed per model in ClickHouse (``checkpoints.py``), so a restarted or rebalanced worker resumes from the
last evaluated window instead of starting over or evaluating twice.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from services.monitor.drift.decision import DriftDecider, WindowVerdict
from services.monitor.drift.detectors import PageHinkley
from shared.drift_thresholds import DriftThresholds
from shared.events import DriftEvidence, DriftKind


def floor_ms(ts_ms: int, length_ms: int) -> int:
    """Start of the tumbling window holding ``ts_ms`` (windows aligned to the epoch)."""
    return ts_ms - ts_ms % length_ms


def ms_to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def datetime_to_ms(moment: datetime) -> int:
    """Milliseconds since the epoch, the unit progress and window bounds are kept in."""
    return int(moment.timestamp() * 1000)


@dataclass
class VersionProgress:
    """One model version: the latest event time seen and the next windows still to evaluate."""

    max_event_ms: int
    next_window_ms: int
    next_label_window_ms: int
    data: DriftDecider = field(default_factory=DriftDecider)
    performance: DriftDecider = field(default_factory=DriftDecider)
    error_detector: PageHinkley = field(default_factory=PageHinkley)

    @classmethod
    def starting_at(cls, first_event_ms: int, length_ms: int, thresholds: DriftThresholds) -> VersionProgress:
        start = floor_ms(first_event_ms, length_ms)
        return cls(
            first_event_ms, start, start, DriftDecider(thresholds), DriftDecider(thresholds), PageHinkley()
        )

    def observe(self, event_ms: int) -> None:
        self.max_event_ms = max(self.max_event_ms, event_ms)

    def windows_to_close(self, length_ms: int, lateness_ms: int) -> list[tuple[int, int]]:
        """Windows whose end plus the allowed lateness the watermark has passed, oldest first."""
        out = []
        start = self.next_window_ms
        while start + length_ms + lateness_ms <= self.max_event_ms:
            out.append((start, start + length_ms))
            start += length_ms
        return out

    def label_windows_to_close(self, length_ms: int, label_wait_ms: int) -> list[tuple[int, int]]:
        """Windows old enough that their labels had ``label_wait_ms`` to arrive, and whose data is closed."""
        out = []
        start = self.next_label_window_ms
        while start < self.next_window_ms and start + length_ms + label_wait_ms <= self.max_event_ms:
            out.append((start, start + length_ms))
            start += length_ms
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "max_event_ms": self.max_event_ms,
            "next_window_ms": self.next_window_ms,
            "next_label_window_ms": self.next_label_window_ms,
            "data": _decider_json(self.data),
            "performance": _decider_json(self.performance),
            "error_detector": asdict(self.error_detector),
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any], thresholds: DriftThresholds) -> VersionProgress:
        return cls(
            raw["max_event_ms"],
            raw["next_window_ms"],
            raw["next_label_window_ms"],
            _decider_from(raw["data"], thresholds),
            _decider_from(raw["performance"], thresholds),
            PageHinkley(**raw["error_detector"]),
        )


def _decider_json(d: DriftDecider) -> dict[str, Any]:
    return {
        "drifting": d.drifting,
        "cooldown_left": d.cooldown_left,
        "history": [
            {
                "window_start": v.window_start.isoformat(),
                "window_end": v.window_end.isoformat(),
                "kinds": sorted(v.kinds),
                "drifted_features": list(v.drifted_features),
                "evidence": [e.model_dump(mode="json") for e in v.evidence],
                "severity": v.severity,
            }
            for v in d.history
        ],
    }


def _decider_from(raw: dict[str, Any], thresholds: DriftThresholds) -> DriftDecider:
    history = deque(
        WindowVerdict(
            datetime.fromisoformat(v["window_start"]),
            datetime.fromisoformat(v["window_end"]),
            frozenset(DriftKind(k) for k in v["kinds"]),
            tuple(v["drifted_features"]),
            tuple(DriftEvidence.model_validate(e) for e in v["evidence"]),
            v["severity"],
        )
        for v in raw["history"]
    )
    return DriftDecider(thresholds, raw["drifting"], raw["cooldown_left"], history)
