"""Which events start a training run, and the trigger each one becomes; anything else is ignored."""

from __future__ import annotations

from services.trainer.debounce import Trigger
from shared.events import DriftDetected, Event, RetrainModel


def trigger_of(event: Event) -> Trigger | None:
    """A ``DriftDetected`` or ``RetrainModel`` as a trigger; the trainer's own run events are not triggers."""
    if isinstance(event, DriftDetected):
        return Trigger(
            model_name=event.model_name,
            reason="drift",
            occurred_at=event.occurred_at,
            event_id=event.event_id,
            drift_event_id=event.event_id,
            window_start=event.window_start,
        )
    if isinstance(event, RetrainModel):
        return Trigger(
            model_name=event.model_name,
            reason=event.reason,
            occurred_at=event.occurred_at,
            event_id=event.event_id,
            drift_event_id=event.drift_event_id,
        )
    return None
