"""Data-quality counts per model and feature, turned into DataQualityCounted events once per interval. No I/O.

Counts are additive: each ingest replica (HTTP and stream validator) emits its own, and the monitor
sums them; a rate is ``count / events``. Without a registered schema only missing values (``None``)
can be counted; with one, the schema check's issues are counted by kind.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.ingest.domain.schemas import FeatureIssueLike
from shared.events import DataQualityCounted, utc_now

KINDS = ("missing", "type_error", "out_of_range", "unseen_category")


@dataclass
class _Tally:
    events: int = 0
    seen: set[str] = field(default_factory=set)
    counts: dict[str, dict[str, int]] = field(
        default_factory=lambda: defaultdict(lambda: dict.fromkeys(KINDS, 0))
    )


class QualityCounter:
    """Accumulates per (model, version); :meth:`drain` returns the interval's events and starts a new one.

    Examples
    --------
    >>> from datetime import UTC
    >>> counter = QualityCounter(started_at=datetime(2026, 1, 1, tzinfo=UTC))
    >>> counter.add("churn", "7", {"age": None, "plan": "pro"}, issues=None)
    >>> [event.counts["age"]["missing"] for event in counter.drain()]
    [1]
    """

    def __init__(self, started_at: datetime | None = None) -> None:
        self._started = started_at or utc_now()
        self._tallies: dict[tuple[str, str], _Tally] = defaultdict(_Tally)

    def add(
        self,
        model_name: str,
        model_version: str,
        features: Mapping[str, Any],
        issues: Sequence[FeatureIssueLike] | None,
        expected: Sequence[str] = (),
    ) -> None:
        """Count one prediction: ``None`` values and absent ``expected`` features as missing, then ``issues``.

        ``issues`` is None when the model has no known schema; their 'missing' kind is already counted here
        (a schema reports only non-nullable missing features, the rate wants every one).
        """
        tally = self._tallies[(model_name, model_version)]
        tally.events += 1
        tally.seen.update(features)  # C speed; rows of zeros are made once, at drain
        if None in features.values():
            for name, value in features.items():
                if value is None:
                    tally.counts[name]["missing"] += 1
        for name in expected:
            if name not in features:
                tally.counts[name]["missing"] += 1
        for issue in issues or ():
            kind = str(issue.kind)
            if kind != "missing":
                counts = tally.counts[issue.feature]
                counts[kind] = counts.get(kind, 0) + 1

    def __len__(self) -> int:
        return len(self._tallies)

    def drain(self, now: datetime | None = None) -> list[DataQualityCounted]:
        """The counts since the last drain, one event per model version; the counter starts afresh."""
        end = now or utc_now()
        events = [
            DataQualityCounted(
                model_name=model_name,
                model_version=model_version,
                interval_start=self._started,
                interval_end=max(end, self._started),
                events=tally.events,
                counts={
                    feature: dict(tally.counts[feature])
                    if feature in tally.counts
                    else dict.fromkeys(KINDS, 0)
                    for feature in sorted(tally.seen | tally.counts.keys())
                },
            )
            for (model_name, model_version), tally in sorted(self._tallies.items())
            if tally.events
        ]
        self._tallies.clear()
        self._started = end
        return events

    def restore(self, events: Sequence[DataQualityCounted]) -> None:
        """Put back counts that could not be published, so a Kafka outage loses no counts."""
        for event in events:
            tally = self._tallies[(event.model_name, event.model_version or "")]
            tally.events += event.events
            for feature, counts in event.counts.items():
                target = tally.counts[feature]
                for kind, value in counts.items():
                    target[kind] = target.get(kind, 0) + value
            self._started = min(self._started, event.interval_start)
