"""Thin stream agents: decode a batch, store it, let event time close windows, announce what they showed.

Offsets are committed by Faust after an agent's iteration returns, so a batch is acknowledged only once
ClickHouse accepted its rows; a crash replays it and ``ReplacingMergeTree`` collapses the duplicates.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import faust

from services.monitor.judge import DriftAnnouncement, WindowJudge
from services.monitor.observability import MonitorMetrics, add_pages
from services.monitor.profiles import ProfileSource
from services.monitor.progress import VersionProgress
from services.monitor.sink import ClickHouseSink
from shared import codec, wire
from shared.events import DataQualityCounted, EventDeadLettered
from shared.settings import Settings
from shared.topics import topic_names

log = logging.getLogger(__name__)
SOURCE = "topic"


def decode_batch(
    payloads: Sequence[bytes], decode: Any
) -> tuple[list[Any], list[bytes], list[tuple[bytes, str]]]:
    """Decode what is valid; returns the decoded values, their payloads, and the rest with the reason."""
    decoded: list[Any] = []
    good: list[bytes] = []
    bad: list[tuple[bytes, str]] = []
    for payload in payloads:
        try:
            decoded.append(decode(payload))
            good.append(payload)
        except (wire.WireError, ValueError) as exc:
            bad.append((payload, str(exc)[:500]))
    return decoded, good, bad


def quality_rows(events: Sequence[DataQualityCounted]) -> list[list[Any]]:
    return [
        [
            e.event_id,
            e.model_name,
            e.model_version or "",
            e.interval_start,
            e.interval_end,
            e.events,
            feature,
            problem,
            n,
        ]
        for e in events
        for feature, problems in e.counts.items()
        for problem, n in problems.items()
    ]


QUALITY_COLUMNS = [
    "event_id", "model_name", "model_version", "interval_start", "interval_end", "events", "feature", "problem", "count",
]  # fmt: skip


def event_time_ranges(heads: Sequence[wire.EventHead]) -> dict[str, dict[str, tuple[int, int]]]:
    """Per model and version, the earliest and latest event time (ms) in a batch."""
    ranges: dict[str, dict[str, tuple[int, int]]] = {}
    for e in heads:
        ms = int(e.occurred_at.timestamp() * 1000)
        versions = ranges.setdefault(e.model_name, {})
        version = e.model_version or ""
        first, last = versions.get(version, (ms, ms))
        versions[version] = (min(first, ms), max(last, ms))
    return ranges


class Monitor:
    """The worker's state and I/O: one ClickHouse sink, the window judge and the progress table."""

    def __init__(self, app: faust.App, settings: Settings, profiles: ProfileSource) -> None:
        self.settings = settings
        self.topics = topic_names(settings.topic_prefix)
        self.sink = ClickHouseSink(settings)
        self.metrics = MonitorMetrics()
        self.judge = WindowJudge(
            settings, self.sink, profiles, lambda stream: self.metrics.windows.labels(stream).inc()
        )
        self.progress_table = app.Table(
            "monitor-progress",  # the app id already carries the topic prefix
            default=None,
            partitions=settings.kafka_partitions,
            key_type=str,
            value_type=None,
            use_partitioner=True,
        )

        def raw_topic(name: str) -> Any:
            return app.topic(name, key_serializer="raw", value_serializer="raw")

        self.predictions = raw_topic(self.topics.predictions)
        self.labels = raw_topic(self.topics.labels)
        self.data_quality = raw_topic(self.topics.data_quality)
        self.drift = raw_topic(self.topics.drift_events)
        self.dead_letter = raw_topic(self.topics.dead_letter)
        self.worker = f"{os.uname().nodename}:{os.getpid()}"
        add_pages(app, self.metrics)
        self._stats_at = time.monotonic()
        self._events_since = 0

    # -- predictions -------------------------------------------------------------------------------------
    async def on_predictions(self, payloads: Sequence[bytes]) -> int:
        began = time.monotonic()
        heads, good, bad = decode_batch(payloads, wire.decode_head)
        await self._dead_letter(bad, self.topics.predictions)
        written = await asyncio.to_thread(self.sink.write_lines, "predictions_intake", good)
        for model, versions in event_time_ranges(heads).items():
            state = dict(self.progress_table.get(model) or {})
            announcements, state = await asyncio.to_thread(self._advance, model, versions, state)
            self.progress_table[model] = state  # in the event loop: Faust writes the changelog from here
            for event in announcements:
                await self.drift.send(key=event.model_name.encode(), value=codec.encode(event))
                self.metrics.alerts.labels(event.event_type).inc()
        self.metrics.events.labels("predictions").inc(written)
        self.metrics.batch_seconds.observe(time.monotonic() - began)
        self.metrics.last_batch.set(time.time())
        await self._stats(heads)
        return written

    def _advance(
        self, model: str, seen: dict[str, tuple[int, int]], raw: dict[str, Any]
    ) -> tuple[list[DriftAnnouncement], dict[str, Any]]:
        """Move the model's event-time watermark and judge every window it closed, for every version.

        ``seen`` holds each version's (earliest, latest) event time in this batch: a new version's first
        window is the one holding its earliest event, the watermark is the latest event of any version.
        """
        thresholds = self.settings.drift_thresholds
        versions = {v: VersionProgress.from_json(p, thresholds) for v, p in raw.items()}
        watermark = max([*(last for _, last in seen.values()), *(p.max_event_ms for p in versions.values())])
        length_ms = self.settings.monitor_window_seconds * 1000
        for version, (first, _) in seen.items():
            if version not in versions:
                versions[version] = VersionProgress.starting_at(first, length_ms, thresholds)
        out: list[DriftAnnouncement] = []
        for version, progress in versions.items():
            progress.observe(watermark)
            out += self.judge.advance(model, version, progress)
        return out, {v: p.to_json() for v, p in versions.items()}

    # -- labels and data quality -------------------------------------------------------------------------
    async def on_labels(self, payloads: Sequence[bytes]) -> int:
        _, good, bad = decode_batch(payloads, wire.decode_head)
        await self._dead_letter(bad, self.topics.labels)
        written = await asyncio.to_thread(self.sink.write_lines, "labels_intake", good)
        self.metrics.events.labels("labels").inc(written)
        return written

    async def on_data_quality(self, payloads: Sequence[bytes]) -> int:
        events, _, bad = decode_batch(payloads, lambda b: codec.decode(b, DataQualityCounted))
        await self._dead_letter(bad, self.topics.data_quality)
        return await asyncio.to_thread(self.sink.write, "data_quality", quality_rows(events), QUALITY_COLUMNS)

    # -- shared ------------------------------------------------------------------------------------------
    async def _dead_letter(self, bad: Sequence[tuple[bytes, str]], what: str) -> None:
        for payload, reason in bad:
            event = EventDeadLettered(
                source=f"{SOURCE}:{what}", reason="invalid_event", detail=reason, original=payload
            )
            await self.dead_letter.send(key=b"unknown", value=codec.encode(event))
        if bad:
            self.metrics.dead_letters.labels(what).inc(len(bad))
            log.warning("sent %d undecodable %s payloads to %s", len(bad), what, self.topics.dead_letter)

    async def _stats(self, events: Sequence[wire.EventHead]) -> None:
        """The worker's own health, written every few seconds (never per event)."""
        self._events_since += len(events)
        elapsed = time.monotonic() - self._stats_at
        if elapsed < 5 or not events:
            return
        now = datetime.now(UTC)
        newest = max(e.occurred_at for e in events)
        self.metrics.delay.set((now - newest).total_seconds())
        rows = [
            [now, self.worker, "events_per_s", self._events_since / elapsed],
            [now, self.worker, "processing_delay_s", (now - newest).total_seconds()],
        ]
        self._stats_at, self._events_since = time.monotonic(), 0
        await asyncio.to_thread(self.sink.write, "monitor_stats", rows, ["at", "worker", "metric", "value"])


def register(app: faust.App, settings: Settings, profiles: ProfileSource) -> Monitor:
    """Wire the monitor's agents into ``app``; one batch per ``take`` (≤ batch size or ≤ batch seconds)."""
    monitor = Monitor(app, settings, profiles)
    size, within = settings.monitor_batch_size, settings.monitor_batch_seconds

    @app.agent(monitor.predictions, name="store-predictions")
    async def store_predictions(stream: faust.StreamT[bytes]) -> AsyncIterator[int]:
        async for batch in stream.take(size, within=within):
            yield await monitor.on_predictions(list(batch))

    @app.agent(monitor.labels, name="store-labels")
    async def store_labels(stream: faust.StreamT[bytes]) -> AsyncIterator[int]:
        async for batch in stream.take(size, within=within):
            yield await monitor.on_labels(list(batch))

    @app.agent(monitor.data_quality, name="store-data-quality")
    async def store_data_quality(stream: faust.StreamT[bytes]) -> AsyncIterator[int]:
        async for batch in stream.take(size, within=within):
            yield await monitor.on_data_quality(list(batch))

    return monitor
