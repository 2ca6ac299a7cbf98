"""Closes windows as event time advances: reads each from ClickHouse, judges it, stores the results, alerts.

Alerts are events with ids derived from the model, version and window, so a worker that re-judges a window
after a crash announces the same event again, which every consumer deduplicates by ``event_id``. A batch's
results are written together (``flush``), one insert per table rather than one per window: every insert is
a part the server must write and later merge.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from services.monitor.drift.columns import TestResult
from services.monitor.drift.decision import Alert
from services.monitor.evaluation import WindowResult, evaluate_data_window, evaluate_label_window
from services.monitor.profiles import ProfileSource
from services.monitor.progress import VersionProgress, datetime_to_ms, floor_ms, ms_to_datetime
from services.monitor.sink import ClickHouseSink
from services.monitor.window_reader import next_event_time, read_data_window, read_label_window
from shared.events import DriftDetected, DriftRecovered
from shared.settings import Settings

log = logging.getLogger(__name__)
ALERT_NAMESPACE = uuid.UUID("6c1f7c55-2b43-4c1e-9a55-4d5f0f0f4a11")
METRIC_COLUMNS = [
    "model_name",
    "model_version",
    "window_start",
    "window_end",
    "metric",
    "feature",
    "value",
    "computed_at",
]
TEST_COLUMNS = [
    "model_name", "model_version", "window_start", "window_end", "feature", "test", "statistic", "p_value",
    "threshold", "reference_size", "current_size", "drifted", "computed_at",
]  # fmt: skip
DRIFT_EVENT_COLUMNS = [
    "event_id", "event_type", "model_name", "model_version", "occurred_at", "window_start", "window_end",
    "kinds", "severity", "drifted_features", "evidence",
]  # fmt: skip

RESULT_COLUMNS = {
    "window_metrics": METRIC_COLUMNS,
    "drift_tests": TEST_COLUMNS,
    "drift_events": DRIFT_EVENT_COLUMNS,
}
DriftAnnouncement = DriftDetected | DriftRecovered


def alert_event(model: str, version: str, stream: str, alert: Alert) -> DriftAnnouncement:
    """The event for an alert; ``stream`` (data or performance) keeps the two deciders' ids apart."""
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
    )


def drift_event_row(event: DriftAnnouncement) -> list[Any]:
    """A ``drift_events`` row; the evidence is kept as JSON so analysts can unpack it with JSON functions."""
    kinds: list[str] = []
    severity, features, evidence = 0.0, list[str](), "[]"
    if isinstance(event, DriftDetected):
        kinds = [k.value for k in event.kinds]
        severity, features = event.severity, event.drifted_features
        evidence = json.dumps([e.model_dump(mode="json") for e in event.evidence])
    return [
        event.event_id, event.event_type, event.model_name, event.model_version, event.occurred_at,
        event.window_start, event.window_end, kinds, severity, features, evidence,
    ]  # fmt: skip


class WindowJudge:
    """Judges the closed windows of one model version at a time; one per worker (owns a ClickHouse client)."""

    def __init__(
        self,
        settings: Settings,
        sink: ClickHouseSink,
        profiles: ProfileSource,
        on_judged: Callable[[str], None] | None = None,
    ) -> None:
        self.on_judged = on_judged or (lambda stream: None)
        self.settings = settings
        self.sink = sink
        self.profiles = profiles
        self.length_ms = settings.monitor_window_seconds * 1000
        self.lateness_ms = settings.monitor_allowed_lateness_seconds * 1000
        self.label_wait_ms = settings.monitor_label_wait_seconds * 1000
        self.idle_windows = settings.monitor_idle_windows
        self._labelled: set[str] = set()
        """Models seen with labels: their label windows skip asking whether the model has any."""
        self._pending: dict[str, list[list[Any]]] = {table: [] for table in RESULT_COLUMNS}
        """Results of the windows judged since the last ``flush``, per table."""

    def advance(self, model: str, version: str, progress: VersionProgress) -> list[DriftAnnouncement]:
        """Judge every window the watermark closed; returns the alerts to announce, oldest first.

        The results are held until ``flush``, which must run before the progress is checkpointed.
        """
        out: list[DriftAnnouncement] = []
        while (window := progress.next_window(self.length_ms, self.lateness_ms)) is not None:
            start_ms, end_ms = window
            start, end = ms_to_datetime(start_ms), ms_to_datetime(end_ms)
            reference = self.profiles.get(model, version)
            progress.data.thresholds = reference.thresholds
            data = read_data_window(self.sink.client, model, version, start, end)
            result = evaluate_data_window(data, reference.profile, reference.thresholds)
            out += self._record(model, version, "data", result, progress.data.observe(result.verdict))
            progress.judged(end_ms, data.count)
            log.info("%s v%s window %s: %d events, drift %s", model, version, start, data.count,
                     sorted(result.verdict.kinds))  # fmt: skip
            if progress.idle_windows >= self.idle_windows:
                self._skip_or_pause(model, version, progress, start, end)
        while (window := progress.next_label_window(self.length_ms, self.label_wait_ms)) is not None:
            start_ms, end_ms = window
            start, end = ms_to_datetime(start_ms), ms_to_datetime(end_ms)
            reference = self.profiles.get(model, version)
            progress.performance.thresholds = reference.thresholds
            labels = read_label_window(
                self.sink.client, model, version, start, end, labelled=model in self._labelled
            )
            if labels.labels:
                self._labelled.add(model)
            result = evaluate_label_window(
                labels, reference.profile, reference.thresholds, progress.error_detector
            )
            out += self._record(
                model, version, "performance", result, progress.performance.observe(result.verdict)
            )
            progress.next_label_window_ms = end_ms
        return out

    def _skip_or_pause(
        self, model: str, version: str, progress: VersionProgress, start: datetime, end: datetime
    ) -> None:
        """After ``idle_windows`` empty windows: jump to the version's next event, or pause until one comes.

        One query instead of a window at a time, so neither a retired version nor a gap of any length in
        event time costs work per window.
        """
        upcoming = next_event_time(self.sink.client, model, version, end)
        if upcoming is not None:
            progress.skip_to(floor_ms(datetime_to_ms(upcoming), self.length_ms))
            return
        progress.pause()
        self._pending["window_metrics"].append(
            [
                model,
                version,
                start,
                end,
                "judging_paused",
                "",
                float(progress.idle_windows),
                datetime.now(UTC),
            ]
        )
        log.info("%s v%s: no events for %d windows; paused until its next event", model, version,
                 progress.idle_windows)  # fmt: skip

    def discard(self) -> None:
        """Forget the results held since the last flush (their batch is judged again)."""
        self._pending = {table: [] for table in RESULT_COLUMNS}

    def flush(self) -> None:
        """Write the results of every window judged since the last flush: one insert per table."""
        pending = self._pending
        self._pending = {table: [] for table in RESULT_COLUMNS}
        for table, rows in pending.items():
            self.sink.write(table, rows, RESULT_COLUMNS[table])

    def _record(
        self, model: str, version: str, stream: str, result: WindowResult, alert: Alert | None
    ) -> list[DriftAnnouncement]:
        now = datetime.now(UTC)
        self.on_judged(stream)
        v = result.verdict
        self._pending["window_metrics"] += [
            [model, version, v.window_start, v.window_end, *row, now] for row in result.metrics
        ]
        self._pending["drift_tests"] += [
            _test_row(model, version, v.window_start, v.window_end, t, now) for t in result.tests
        ]
        if alert is None:
            return []
        event = alert_event(model, version, stream, alert)
        self._pending["drift_events"].append(drift_event_row(event))
        return [event]


def _test_row(
    model: str, version: str, start: datetime, end: datetime, t: TestResult, now: datetime
) -> list[Any]:
    return [
        model, version, start, end, t.feature, t.test, t.statistic, t.p_value, t.threshold,
        t.reference_size, t.current_size, int(t.drifted), now,
    ]  # fmt: skip
