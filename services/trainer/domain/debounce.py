"""Per-model debouncing of training triggers: one run per model at a time, later triggers coalesce.

A trigger is *satisfied* by a run whose data cut-off is later than the trigger: that run already saw the
data the trigger was about. So a burst of drift events yields one run, and a trigger arriving during a
run yields exactly one follow-up run, whatever the number of triggers.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from uuid import UUID


@dataclass(frozen=True)
class Trigger:
    """Why a model should be retrained: a drift event, a person or a schedule."""

    model_name: str
    reason: str
    occurred_at: datetime
    event_id: UUID
    drift_event_id: UUID | None = None
    window_start: datetime | None = None
    needs_labels: bool = False
    """Only an estimate (no labels) said performance dropped: a run needs labels from ``window_start`` on."""


class Debouncer:
    """Decides which triggers start a run.

    Examples
    --------
    >>> from datetime import UTC, datetime, timedelta
    >>> from uuid import uuid4
    >>> t0 = datetime(2026, 1, 1, tzinfo=UTC)
    >>> d = Debouncer()
    >>> burst = [Trigger("churn", "drift", t0 + timedelta(seconds=i), uuid4()) for i in range(3)]
    >>> [t.occurred_at.second for t in d.offer(burst)]
    [0]
    >>> d.started("churn", cutoff=t0 + timedelta(seconds=5))
    >>> d.offer([Trigger("churn", "drift", t0 + timedelta(seconds=4), uuid4())])
    []
    """

    def __init__(self) -> None:
        self._running: set[str] = set()
        self._pending: dict[str, Trigger] = {}
        self._cutoff: dict[str, datetime] = {}

    def offer(self, triggers: list[Trigger]) -> list[Trigger]:
        """The triggers to run now, at most one per model; the rest wait (coalesced) or are satisfied."""
        for trigger in triggers:
            cutoff = self._cutoff.get(trigger.model_name)
            if cutoff is not None and trigger.occurred_at <= cutoff:
                continue  # an earlier or running run already covers this trigger's data
            pending = self._pending.setdefault(trigger.model_name, trigger)
            if pending.needs_labels and not trigger.needs_labels:  # coalesced with one that needs none
                self._pending[trigger.model_name] = replace(pending, needs_labels=False)
        ready = [t for name, t in self._pending.items() if name not in self._running]
        for trigger in ready:
            del self._pending[trigger.model_name]
        return ready

    def started(self, model_name: str, cutoff: datetime) -> None:
        """A run of ``model_name`` began with data up to ``cutoff``."""
        self._running.add(model_name)
        previous = self._cutoff.get(model_name)
        self._cutoff[model_name] = cutoff if previous is None else max(previous, cutoff)
        pending = self._pending.get(model_name)
        if pending is not None and pending.occurred_at <= cutoff:
            del self._pending[model_name]

    def finished(self, model_name: str, succeeded: bool = True) -> list[Trigger]:
        """The run ended; a failed run satisfies nothing, so its trigger may be retried by the next one."""
        self._running.discard(model_name)
        if not succeeded:
            self._cutoff.pop(model_name, None)
        return self.offer([])

    def running(self, model_name: str) -> bool:
        return model_name in self._running
