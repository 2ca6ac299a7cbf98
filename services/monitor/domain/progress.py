"""Where each model version's evaluation stands: event-time watermark, next windows, alert state.

Checkpointed per model in ClickHouse (``checkpoints.py``), so a restarted or rebalanced worker resumes from the
last evaluated window instead of starting over or evaluating twice.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from services.monitor.domain.drift.decision import DriftDecider, WindowVerdict
from services.monitor.domain.drift.detectors import PageHinkley
from shared.drift_thresholds import DriftThresholds
from shared.events import DriftEvidence, DriftKind, RankedFeature


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
    """One model version: the latest event time seen and the next windows still to evaluate.

    A version whose windows stay empty (it was retired, or its traffic stopped) is *paused*: its windows are
    no longer read and judged, so a model's work per window does not grow with every version it ever had,
    and a jump in event time is one step, not a window at a time. Its next event wakes it up at that event's
    window. The windows skipped are recorded as ``label_gaps`` so the performance windows skip them too.
    """

    max_event_ms: int
    next_window_ms: int
    next_label_window_ms: int
    data: DriftDecider = field(default_factory=DriftDecider)
    performance: DriftDecider = field(default_factory=DriftDecider)
    error_detector: PageHinkley = field(default_factory=PageHinkley)
    idle_windows: int = 0
    """Empty data windows judged in a row."""
    paused_at_ms: int | None = None
    """End of the last window judged before the version was paused (None: judged as time moves)."""
    label_gaps: list[tuple[int, int]] = field(default_factory=list)
    """Spans of windows skipped without data, oldest first: [from, to) in ms."""
    estimate: DriftDecider = field(default_factory=DriftDecider)
    """Alert state of the performance estimated without labels (CBPE), judged with the data windows."""

    @classmethod
    def starting_at(cls, first_event_ms: int, length_ms: int, thresholds: DriftThresholds) -> VersionProgress:
        start = floor_ms(first_event_ms, length_ms)
        return cls(
            first_event_ms, start, start, DriftDecider(thresholds), DriftDecider(thresholds), PageHinkley()
        )

    def observe(self, event_ms: int) -> None:
        self.max_event_ms = max(self.max_event_ms, event_ms)

    @property
    def paused(self) -> bool:
        return self.paused_at_ms is not None

    def next_window(self, length_ms: int, lateness_ms: int) -> tuple[int, int] | None:
        """The oldest window whose end plus the allowed lateness the watermark has passed (None: none, or paused)."""
        start = self.next_window_ms
        if self.paused or start + length_ms + lateness_ms > self.max_event_ms:
            return None
        return start, start + length_ms

    def judged(self, end_ms: int, events: int) -> None:
        """A data window ending at ``end_ms`` was judged with ``events`` events."""
        self.next_window_ms = end_ms
        self.idle_windows = 0 if events else self.idle_windows + 1

    def skip_to(self, start_ms: int) -> None:
        """Jump over windows known to be empty, to the window starting at ``start_ms``."""
        if start_ms > self.next_window_ms:
            self.label_gaps.append((self.next_window_ms, start_ms))
            self.next_window_ms = start_ms
        self.idle_windows = 0

    def pause(self) -> None:
        self.paused_at_ms = self.next_window_ms

    def wake(self, first_event_ms: int, length_ms: int) -> None:
        """Events arrived for a paused version: judge again from the window of the earliest one."""
        self.paused_at_ms = None
        self.skip_to(floor_ms(first_event_ms, length_ms))

    def next_label_window(self, length_ms: int, label_wait_ms: int) -> tuple[int, int] | None:
        """The oldest window whose labels had ``label_wait_ms`` to arrive and whose data is closed.

        Windows skipped for having no data are skipped here too.
        """
        start = self.next_label_window_ms
        while self.label_gaps and self.label_gaps[0][0] <= start:
            gap_from, gap_to = self.label_gaps.pop(0)
            if gap_from <= start < gap_to:
                start = self.next_label_window_ms = gap_to
        if start < self.next_window_ms and start + length_ms + label_wait_ms <= self.max_event_ms:
            return start, start + length_ms
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "max_event_ms": self.max_event_ms,
            "next_window_ms": self.next_window_ms,
            "next_label_window_ms": self.next_label_window_ms,
            "data": _decider_json(self.data),
            "performance": _decider_json(self.performance),
            "error_detector": self.error_detector.to_state(),
            "idle_windows": self.idle_windows,
            "paused_at_ms": self.paused_at_ms,
            "label_gaps": [list(g) for g in self.label_gaps],
            "estimate": _decider_json(self.estimate),
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any], thresholds: DriftThresholds) -> VersionProgress:
        return cls(
            raw["max_event_ms"],
            raw["next_window_ms"],
            raw["next_label_window_ms"],
            _decider_from(raw["data"], thresholds),
            _decider_from(raw["performance"], thresholds),
            PageHinkley.from_state(raw["error_detector"]),
            raw.get("idle_windows", 0),
            raw.get("paused_at_ms"),
            [(int(a), int(b)) for a, b in raw.get("label_gaps", [])],
            _decider_from(raw["estimate"], thresholds) if "estimate" in raw else DriftDecider(thresholds),
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
                "ranked_features": [f.model_dump(mode="json") for f in v.ranked_features],
                "importance_share_drifted": v.importance_share_drifted,
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
            tuple(RankedFeature.model_validate(f) for f in v.get("ranked_features", [])),
            v.get("importance_share_drifted"),
        )
        for v in raw["history"]
    )
    return DriftDecider(thresholds, raw["drifting"], raw["cooldown_left"], history)
