"""From an alert to the event announced on ``drift-events``, with an id that a re-judged window repeats.

Alerts are events with ids derived from the model, version and window, so a worker that re-judges a window
after a crash announces the same event again, which every consumer deduplicates by ``event_id``.
"""

from __future__ import annotations

import uuid

from services.monitor.domain.drift.decision import Alert
from services.monitor.domain.progress import datetime_to_ms
from services.monitor.domain.tables import DriftAnnouncement
from shared.events import DriftDetected, DriftRecovered

ALERT_NAMESPACE = uuid.UUID("6c1f7c55-2b43-4c1e-9a55-4d5f0f0f4a11")


def alert_event(
    model: str, version: str, stream: str, alert: Alert, estimated_accuracy_change: float | None = None
) -> DriftAnnouncement:
    """The event for an alert; ``stream`` (data or performance) keeps the two deciders' ids apart.

    ``estimated_accuracy_change`` is the alerting window's estimated accuracy minus the validation accuracy.
    """
    kind = "recovered" if alert.recovered else "drift"
    end_ms = datetime_to_ms(alert.window_end)
    event_id = uuid.uuid5(ALERT_NAMESPACE, f"{model}\x1f{version}\x1f{stream}\x1f{kind}\x1f{end_ms}")
    if alert.recovered:
        return DriftRecovered(
            event_id=event_id,
            occurred_at=alert.window_end,
            model_name=model,
            model_version=version,
            window_start=alert.window_start,
            window_end=alert.window_end,
        )
    return DriftDetected(
        event_id=event_id,
        occurred_at=alert.window_end,
        model_name=model,
        model_version=version,
        kinds=list(alert.kinds),
        severity=alert.severity,
        window_start=alert.window_start,
        window_end=alert.window_end,
        windows_considered=alert.windows_considered,
        windows_drifted=alert.windows_drifted,
        drifted_features=list(alert.drifted_features),
        evidence=list(alert.evidence),
        ranked_features=list(alert.ranked_features),
        importance_share_drifted=alert.importance_share_drifted,
        estimated_accuracy_change=estimated_accuracy_change,
    )
