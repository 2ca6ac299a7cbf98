"""What the loop says about itself: its events on Kafka and the monitor's windows in ClickHouse.

Both observers only read, as any operator could: :class:`TopicWatcher` follows ``drift-events``,
``training-runs`` and ``model-events`` from their beginning (no consumer group, so it takes nothing from
the services), :class:`WindowPoller` polls the monitor's ``window_metrics`` and ``drift_tests`` tables.
Each runs in its own thread and hands what it sees to a callback.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from shared.codec import decode_any
from shared.events import Event
from shared.kafka.follower import Batch, TopicFollower
from shared.settings import Settings
from shared.topics import topic_names

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Seen:
    """An event read from a topic, and when the demo read it (wall-clock seconds)."""

    topic: str
    event: Event
    at: float


class TopicWatcher:
    """Reads the loop's control topics from the beginning and calls ``on_event`` for the model's events."""

    def __init__(self, settings: Settings, model_name: str, on_event: Callable[[Seen], None]) -> None:
        topics = topic_names(settings.topic_prefix)
        self.topics = (topics.drift_events, topics.training_runs, topics.model_events)
        self.model_name = model_name
        self.on_event = on_event
        self.seen: list[Seen] = []
        self.follower = TopicFollower(
            settings,
            self.topics,
            start="earliest",
            on_batch=self._on_batch,
            name="demo topic watcher",
            thread_name="demo-topics",
            metadata_max_age_ms=2000,
            poll_ms=200,
        )
        self.ready = self.follower.positioned

    def start(self) -> None:
        self.follower.start()

    def stop(self, timeout: float = 10.0) -> None:
        self.follower.stop(timeout)

    async def _on_batch(self, batch: Batch) -> None:
        for tp, records in batch.items():
            for record in records:
                with contextlib.suppress(ValidationError, ValueError):
                    event = decode_any(record.value or b"")
                    if event.model_name == self.model_name:
                        seen = Seen(tp.topic, event, time.time())
                        self.seen.append(seen)
                        self.on_event(seen)


@dataclass(frozen=True)
class WindowSeen:
    """One judged window of the monitor: its traffic, its drift tests, and its accuracy once labelled."""

    version: str
    start: datetime
    end: datetime
    count: int
    drifted_features: tuple[str, ...] = ()
    largest_effect: tuple[str, float] | None = None
    accuracy: float | None = None
    output_drifted: bool = False
    performance_drifted: bool = False


WINDOWS_SQL = """
SELECT model_version, window_start, window_end,
       maxIf(value, metric = 'count') AS count,
       maxIf(value, metric = 'accuracy') AS accuracy,
       countIf(metric = 'accuracy') AS labelled
FROM window_metrics FINAL
WHERE model_name = {model:String} AND metric IN ('count', 'accuracy')
GROUP BY model_version, window_start, window_end
ORDER BY window_start, model_version
"""

TESTS_SQL = """
SELECT model_version, window_start, window_end, feature, test, statistic, p_value, threshold, drifted
FROM drift_tests FINAL
WHERE model_name = {model:String}
ORDER BY window_start, model_version, feature, test
"""


@dataclass(frozen=True)
class DriftStatistic:
    """One test of one feature in one window (a ``drift_tests`` row)."""

    version: str
    start: datetime
    end: datetime
    feature: str
    test: str
    statistic: float
    p_value: float | None
    threshold: float
    drifted: bool


def read_windows(client: Any, model_name: str) -> list[tuple[str, datetime, datetime, int, float | None]]:
    """(version, start, end, predictions, accuracy or None) per judged window, oldest first."""
    rows = client.query(WINDOWS_SQL, parameters={"model": model_name}).result_rows
    return [
        (str(v), start, end, int(count), float(acc) if labelled else None)
        for v, start, end, count, acc, labelled in rows
    ]


def _number(value: Any) -> float:
    """A ClickHouse number that may be NULL (a test without a threshold or statistic) as float, NaN for NULL."""
    return float("nan") if value is None else float(value)


def read_drift_statistics(client: Any, model_name: str) -> list[DriftStatistic]:
    rows = client.query(TESTS_SQL, parameters={"model": model_name}).result_rows
    return [
        DriftStatistic(
            str(v),
            start,
            end,
            str(f),
            str(t),
            _number(s),
            None if p is None else _number(p),
            _number(th),
            bool(d),
        )
        for v, start, end, f, t, s, p, th, d in rows
    ]


def missing_table(exc: Exception) -> bool:
    """True for ClickHouse's 'unknown table' (the monitor has not created its tables yet)."""
    text = str(exc)
    return "UNKNOWN_TABLE" in text or "Code: 60." in text


@dataclass
class WindowPoller:
    """Polls the monitor's tables every ``interval`` seconds and reports each window once judged and once
    labelled (``on_window``)."""

    settings: Settings
    model_name: str
    on_window: Callable[[WindowSeen], None]
    interval: float = 1.0
    windows: dict[tuple[str, datetime], WindowSeen] = field(default_factory=dict)
    _waits: dict[tuple[str, datetime], int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="demo-windows", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        from clickhouse_connect.driver.exceptions import ClickHouseError

        from shared.clickhouse import clickhouse_client

        client = clickhouse_client(self.settings)
        try:
            while not self._stop.wait(self.interval):
                try:
                    self.poll(client)
                except ClickHouseError as exc:
                    if not missing_table(exc):
                        log.warning("could not read the monitor's windows: %s", exc)
        finally:
            client.close()

    def poll(self, client: Any) -> None:
        tests = read_drift_statistics(client, self.model_name)
        by_window: dict[tuple[str, datetime], list[DriftStatistic]] = {}
        for t in tests:
            by_window.setdefault((t.version, t.start), []).append(t)
        for version, start, end, count, acc in read_windows(client, self.model_name):
            key = (version, start)
            known = self.windows.get(key)
            if known is not None and (known.accuracy is not None or acc is None):
                continue
            mine = by_window.get(key, [])
            waited = self._waits.get(key, 0)
            if known is None and not any(t.test == "wasserstein_norm" for t in mine) and waited < 3:
                self._waits[key] = waited + 1  # its tests are written just after its metrics
                continue
            seen = window_seen(version, start, end, count, acc, mine)
            self.windows[key] = seen
            self.on_window(seen)


PERFORMANCE_COLUMNS = frozenset({"accuracy", "error_rate"})


def window_seen(
    version: str, start: datetime, end: datetime, count: int, acc: float | None, tests: list[DriftStatistic]
) -> WindowSeen:
    """A window as the timeline shows it: drifted features named, the largest feature effect, accuracy."""
    effects = [t for t in tests if t.test == "wasserstein_norm"]
    biggest = max(effects, key=lambda t: t.statistic, default=None)
    drifted = sorted({t.feature for t in tests if t.drifted and t.feature not in PERFORMANCE_COLUMNS})
    return WindowSeen(
        version=version,
        start=start,
        end=end,
        count=count,
        drifted_features=tuple(f for f in drifted if not f.startswith("__")),
        largest_effect=(biggest.feature, biggest.statistic) if biggest is not None else None,
        accuracy=acc,
        output_drifted=any(t.drifted and t.feature == "__prediction__" for t in tests),
        performance_drifted=any(t.drifted and t.feature in PERFORMANCE_COLUMNS for t in tests),
    )
