"""What a monitor worker does with one batch of records: store it, let event time close windows, announce.

Two stages, so the Kafka loop (``consumer.py``) can store batch N+1 while the windows batch N closed are
judged: ``store`` writes every topic's rows, ``advance`` moves the models' watermarks, judges, checkpoints and
announces. The loop commits a batch's offsets only after both returned, so a batch is acknowledged once
ClickHouse holds its rows and the models' progress; a crash replays it and ``ReplacingMergeTree`` collapses
the duplicates.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from clickhouse_connect.driver.exceptions import OperationalError

from services.monitor.checkpoints import ProgressCheckpoints
from services.monitor.intake import Intake, Record, check_records
from services.monitor.judge import DriftAnnouncement, WindowJudge
from services.monitor.observability import MonitorMetrics
from services.monitor.profiles import ProfileSource
from services.monitor.progress import VersionProgress, datetime_to_ms
from services.monitor.sink import ClickHouseSink
from shared import codec, validation, wire
from shared.events import DataQualityCounted, EventDeadLettered
from shared.settings import Settings
from shared.topics import topic_names
from shared.validation import EventKind, EventTimeBounds, Rejection, Wire

log = logging.getLogger(__name__)
MIN_INSERT_ROWS = 5_000
"""Smallest piece a batch's events are split into for concurrent inserts."""


Send = Callable[[str, bytes, bytes], Awaitable[None]]
"""Publish (topic, key, value) and return once the broker acknowledged it."""


def decode_batch(records: Sequence[Record], decode: Any) -> Decoded:
    """Decode what is valid; returns the decoded values, their records, and the rest with the reason."""
    decoded: list[Any] = []
    good: list[Record] = []
    bad: list[tuple[Record, str]] = []
    for record in records:
        try:
            decoded.append(decode(record.value or b""))
            good.append(record)
        except (wire.WireError, ValueError) as exc:
            bad.append((record, str(exc)[:500]))
    return decoded, good, bad


Decoded = tuple[list[Any], list[Record], list[tuple[Record, str]]]
"""What ``decode_batch`` returns: decoded values, their records, and the refused records with the reason."""


@dataclass
class Batch:
    """One batch per topic, with the predictions and labels already checked against the contract."""

    records: dict[str, list[Record]]
    intakes: dict[str, Intake]


@dataclass
class Stored:
    """What a stored batch leaves for ``advance``: the stored predictions and their records."""

    heads: list[Wire]
    records: list[Record]


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
DEAD_LETTER_COLUMNS = [
    "event_id", "model_name", "source", "reason", "detail", "original", "source_partition", "source_offset",
    "occurred_at", "ingested_at",
]  # fmt: skip
MODEL_EVENT_COLUMNS = [
    "event_id", "event_type", "model_name", "version", "alias", "action", "previous_version", "actor",
    "occurred_at", "ingested_at",
]  # fmt: skip


def insert_pieces(lines: list[bytes], streams: int) -> list[list[bytes]]:
    """A batch's events in up to ``streams`` consecutive pieces of at least ``MIN_INSERT_ROWS``, to insert at once.

    The server parses an insert's JSON on one core, which made storing the longest stage of a batch: two
    halves at once took 35-45% less time for the same server CPU per event. Small batches stay whole, as
    every piece is a part the server writes now and merges later.
    """
    pieces = max(1, min(streams, len(lines) // MIN_INSERT_ROWS))
    size = -(-len(lines) // pieces)
    return [lines[i * size : (i + 1) * size] for i in range(pieces)]


def record_id(record: Record) -> uuid.UUID:
    """A stable id for a record that has none of its own, so its replay deduplicates."""
    return validation.record_id(record.topic, record.partition, record.offset)


REFUSED = Rejection(
    "refused_by_clickhouse",
    "ClickHouse could not store this event although it passed the contract; it is kept here, not lost",
)


def dead_letter_rows(records: Sequence[Record], now: datetime) -> list[list[Any]]:
    """``dead_letters`` rows; a dead letter that is itself unreadable is kept whole, never dropped."""
    rows = []
    for r in records:
        payload = r.value or b""
        try:
            e = codec.decode(payload, EventDeadLettered)
        except ValueError as exc:
            rows.append(
                [record_id(r), "unknown", f"topic:{r.topic}", "undecodable_dead_letter", str(exc)[:500],
                 payload, r.partition, r.offset, now, now]
            )  # fmt: skip
            continue
        rows.append(
            [e.event_id, e.model_name, e.source, e.reason, e.detail, e.original, e.source_partition,
             e.source_offset, e.occurred_at, now]
        )  # fmt: skip
    return rows


def model_event_rows(
    records: Sequence[Record], now: datetime
) -> tuple[list[list[Any]], list[tuple[Record, str]]]:
    """``model_events`` rows from the registry's announcements, and the records that were not events."""
    rows, bad = [], []
    for r in records:
        try:
            e = codec.decode_any(r.value or b"")
        except ValueError as exc:
            bad.append((r, str(exc)[:500]))
            continue
        action = getattr(e, "action", "")
        rows.append(
            [e.event_id, e.event_type, e.model_name, getattr(e, "version", None), getattr(e, "alias", ""),
             str(action.value if hasattr(action, "value") else action),
             getattr(e, "previous_version", None),
             getattr(e, "changed_by", None) or getattr(e, "created_by", None) or "", e.occurred_at, now]
        )  # fmt: skip
    return rows, bad


def event_time_ranges(heads: Sequence[Wire]) -> dict[str, dict[str, tuple[int, int]]]:
    """Per model and version, the earliest and latest event time (ms) in a batch.

    Times are grouped as they are and compared in C (``min``/``max``); only the two ends of each group are
    converted, not every event's time.
    """
    times: dict[tuple[str, str], list[datetime]] = {}
    for e in heads:
        key = (e.model_name, getattr(e, "model_version", None) or "")
        group = times.get(key)
        if group is None:
            times[key] = group = []
        group.append(e.occurred_at)
    ranges: dict[str, dict[str, tuple[int, int]]] = {}
    for (model, version), group in times.items():
        ranges.setdefault(model, {})[version] = (datetime_to_ms(min(group)), datetime_to_ms(max(group)))
    return ranges


def latest_offsets(heads: Sequence[Wire], records: Sequence[Record]) -> dict[str, int]:
    """Per model, the newest offset of its records in the batch (what its checkpoint covers)."""
    offsets: dict[str, int] = {}
    for head, record in zip(heads, records, strict=True):
        if record.offset > offsets.get(head.model_name, -1):
            offsets[head.model_name] = record.offset
    return offsets


class Monitor:
    """The worker's state and I/O: one ClickHouse sink, the window judge and the models' checkpoints."""

    def __init__(
        self, settings: Settings, profiles: ProfileSource, send: Send, metrics: MonitorMetrics
    ) -> None:
        self.settings = settings
        self.topics = topic_names(settings.topic_prefix)
        self.sink = ClickHouseSink(settings)
        """Stores the batches' rows (creates the tables on open)."""
        self.inserts = [self.sink] + [
            ClickHouseSink(settings, create_tables=False) for _ in range(settings.monitor_insert_streams - 1)
        ]
        """One client per concurrent insert of a batch's events (``store_lines``)."""
        self.judging = ClickHouseSink(settings, create_tables=False)
        """Reads windows back and writes results and checkpoints, beside the next batch's insert."""
        self.metrics = metrics
        self.send = send
        self.worker = f"{os.uname().nodename}:{os.getpid()}"
        self.judge = WindowJudge(
            settings, self.judging, profiles, lambda stream: self.metrics.windows.labels(stream).inc()
        )
        self.checkpoints = ProgressCheckpoints(self.judging, self.worker)
        self._stats_at = time.monotonic()
        self._events_since = 0
        self.consumer_lag = 0
        """Records in the assigned partitions not yet handled, as of the last batch (set by the Kafka loop)."""
        self.bounds = EventTimeBounds.from_settings(settings)
        self.streams: dict[str, tuple[EventKind, str]] = {
            self.topics.predictions: (EventKind.PREDICTION, "predictions"),
            self.topics.labels: (EventKind.LABEL, "labels"),
        }
        """The high-volume topics: their records are checked ahead (``decode``), then stored by table."""
        self._storing = asyncio.Lock()
        """One batch stores at a time: its inserts use every insert client, and a client runs one query."""
        self.side_topics: dict[str, Callable[[Sequence[Record]], Awaitable[int]]] = {
            self.topics.data_quality: self.on_data_quality,
            self.topics.dead_letter: self.on_dead_letters,
            self.topics.model_events: self.on_model_events,
        }

    @property
    def subscribed(self) -> list[str]:
        return [*self.streams, *self.side_topics]

    def decode(self, records: dict[str, list[Record]]) -> Batch:
        """The CPU-bound half of handling a batch, done while the previous batch is being stored."""
        now = datetime.now(UTC)
        intakes = {
            topic: check_records(self.streams[topic][0], records[topic], self.bounds, now)
            for topic in self.streams
            if topic in records
        }
        return Batch(records, intakes)

    async def store(self, batch: Batch) -> Stored:
        """Write every topic's rows of the batch; what the contract or ClickHouse refuses is dead-lettered."""
        async with self._storing:
            began = time.monotonic()
            for topic, records in batch.records.items():
                if topic in self.streams:
                    await self.on_events(self.streams[topic][1], batch.intakes[topic])
                else:
                    await self.side_topics[topic](records)
            self.metrics.batch_seconds.labels("store").observe(time.monotonic() - began)
        intake = batch.intakes.get(self.topics.predictions, Intake())
        return Stored(intake.events, intake.records)

    async def advance(self, stored: Stored) -> None:
        """Move the watermarks of the batch's models, judge the windows they closed, checkpoint, announce."""
        began = time.monotonic()
        if stored.heads:
            ranges, offsets = event_time_ranges(stored.heads), latest_offsets(stored.heads, stored.records)
            # not marked busy as a whole: judging a long backlog may rightly take more than SLOW_REQUEST_S; a
            # hung server shows in the next batch's insert, which runs beside it
            announcements = await asyncio.to_thread(self._advance_until_done, ranges, offsets)
            for event in announcements:
                await self.send(self.topics.drift_events, event.model_name.encode(), codec.encode(event))
                self.metrics.alerts.labels(event.event_type).inc()
            await self._stats(stored.heads)
        self.metrics.batch_seconds.labels("advance").observe(time.monotonic() - began)
        self.metrics.last_batch.set(time.time())

    def forget(self) -> None:
        """Partitions were revoked: what this worker cached about their models may now be stale."""
        self.checkpoints.forget()

    # -- predictions and labels ----------------------------------------------------------------------------
    async def on_events(self, table: str, intake: Intake) -> int:
        """Store the valid events; the rest, and any ClickHouse refuses, go to the dead-letter topic."""
        await self._dead_letter(intake.rejected)
        refused = await self.store_lines(f"{table}_intake", intake.lines)
        if refused:
            await self._dead_letter([(intake.records[i], REFUSED) for i in refused])
            for i in sorted(refused, reverse=True):  # neither stored nor judged
                del intake.events[i], intake.lines[i], intake.records[i]
        self.metrics.events.labels(table).inc(len(intake.lines))
        return len(intake.lines)

    def _advance_until_done(
        self, ranges: dict[str, dict[str, tuple[int, int]]], offsets: dict[str, int]
    ) -> list[DriftAnnouncement]:
        """``_advance``, again from the last checkpoint while ClickHouse cannot be reached.

        Judging reads windows back; a server that went away mid-batch must not stop the worker (it would
        only be restarted to wait). The batch is not committed until this returns.
        """
        out = self.judging.until_answered(
            "judging", lambda: self._advance(ranges, offsets), errors=(OperationalError, OSError)
        )
        assert out is not None  # judging has no refusal: it answers or it waits
        return out

    def _advance(
        self, ranges: dict[str, dict[str, tuple[int, int]]], offsets: dict[str, int]
    ) -> list[DriftAnnouncement]:
        """Move each model's watermark, judge the windows it closed, then checkpoint every model at once."""
        self.judge.discard()  # results of an attempt that ClickHouse cut short are judged again
        self.checkpoints.load(set(ranges))
        out: list[DriftAnnouncement] = []
        saved: dict[str, tuple[dict[str, Any], int]] = {}
        for model, seen in ranges.items():
            announcements, state = self._advance_model(model, seen, self.checkpoints.get(model))
            out += announcements
            saved[model] = (state, offsets[model])
        self.judge.flush()  # the results before the checkpoint that moves past their windows
        self.checkpoints.save(saved)
        return out

    def _advance_model(
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
            elif versions[version].paused:
                versions[version].wake(first, length_ms)
        out: list[DriftAnnouncement] = []
        for version, progress in versions.items():
            progress.observe(watermark)
            out += self.judge.advance(model, version, progress)
        return out, {v: p.to_json() for v, p in versions.items()}

    # -- data quality, dead letters, registry announcements ----------------------------------------------
    async def on_data_quality(self, records: Sequence[Record]) -> int:
        events, _, bad = decode_batch(records, lambda b: codec.decode(b, DataQualityCounted))
        await self._dead_letter([(r, Rejection("invalid_event", reason)) for r, reason in bad])
        return await asyncio.to_thread(self.sink.write, "data_quality", quality_rows(events), QUALITY_COLUMNS)

    async def on_dead_letters(self, records: Sequence[Record]) -> int:
        rows = dead_letter_rows(records, datetime.now(UTC))
        return await asyncio.to_thread(self.sink.write, "dead_letters", rows, DEAD_LETTER_COLUMNS)

    async def on_model_events(self, records: Sequence[Record]) -> int:
        rows, bad = model_event_rows(records, datetime.now(UTC))
        await self._dead_letter([(r, Rejection("invalid_event", reason)) for r, reason in bad])
        return await asyncio.to_thread(self.sink.write, "model_events", rows, MODEL_EVENT_COLUMNS)

    # -- shared ------------------------------------------------------------------------------------------
    async def store_lines(self, table: str, lines: list[bytes]) -> list[int]:
        """Insert raw events, a big batch split into concurrent inserts (``insert_pieces``); the refused lines."""
        pieces = insert_pieces(lines, len(self.inserts))
        refused = await asyncio.gather(
            *(
                asyncio.to_thread(sink.write_lines, table, piece)
                for sink, piece in zip(self.inserts, pieces, strict=False)
            )
        )
        starts = [sum(len(p) for p in pieces[:i]) for i in range(len(pieces))]
        return [start + i for start, found in zip(starts, refused, strict=False) for i in found]

    def sinks(self) -> list[ClickHouseSink]:
        return [*self.inserts, self.judging]

    def close(self) -> None:
        for sink in self.sinks():
            sink.close()

    async def _dead_letter(self, bad: Sequence[tuple[Record, Rejection]]) -> None:
        """Keep each refused record on the dead-letter topic with its reason and original bytes."""
        for record, rejection in bad:
            event = validation.dead_letter(
                record.topic, record.partition, record.offset, record.value, rejection
            )
            await self.send(self.topics.dead_letter, event.key, codec.encode(event))
            self.metrics.dead_letters.labels(record.topic).inc()
        if bad:
            reasons = sorted({rejection.reason for _, rejection in bad})
            log.warning("sent %d records to %s (%s)", len(bad), self.topics.dead_letter, ", ".join(reasons))

    async def _stats(self, events: Sequence[Wire]) -> None:
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
            [now, self.worker, "consumer_lag", float(self.consumer_lag)],
        ]
        self._stats_at, self._events_since = time.monotonic(), 0
        await asyncio.to_thread(
            self.judging.write, "monitor_stats", rows, ["at", "worker", "metric", "value"]
        )
