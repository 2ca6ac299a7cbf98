"""The monitor: what a worker does with one batch of records (store it, let event time close windows,
announce), through the ports it needs.

Two stages, so the Kafka loop (``entrypoints/stream.py``) can store batch N+1 while the windows batch N
closed are judged: ``store`` writes every topic's rows, ``advance`` moves the models' watermarks, judges,
checkpoints and announces. The loop commits a batch's offsets only after both returned, so a batch is
acknowledged once ClickHouse holds its rows and the models' progress; a crash replays it and
``ReplacingMergeTree`` collapses the duplicates.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from services.monitor.adapters.prometheus import MonitorMetrics
from services.monitor.domain.announcements import alert_event
from services.monitor.domain.batches import (
    REFUSED,
    Batch,
    Stored,
    decode_batch,
    event_time_ranges,
    insert_pieces,
    latest_offsets,
)
from services.monitor.domain.drift.decision import Alert
from services.monitor.domain.evaluation import (
    DataWindow,
    LabelWindow,
    WindowResult,
    estimated_accuracy_change,
    evaluate_data_window,
    evaluate_estimate_window,
    evaluate_label_window,
    unlabelled_window,
)
from services.monitor.domain.held_windows import HeldWindows, data_window
from services.monitor.domain.intake import Intake, Record, check_records
from services.monitor.domain.profiles import VersionReference
from services.monitor.domain.progress import VersionProgress, datetime_to_ms, floor_ms, ms_to_datetime
from services.monitor.domain.tables import (
    DATA_QUALITY,
    DEAD_LETTERS,
    DRIFT_EVENTS,
    DRIFT_TESTS,
    LABELS,
    MODEL_EVENTS,
    MONITOR_PROGRESS,
    MONITOR_STATS,
    PREDICTIONS,
    WINDOW_METRICS,
    DriftAnnouncement,
    Row,
    Table,
    dead_letter_rows,
    drift_event_row,
    drift_test_rows,
    model_event_rows,
    progress_rows,
    quality_rows,
    stats_rows,
    window_metric_rows,
)
from shared import codec, validation
from shared.dependencies import Dependencies
from shared.events import DataQualityCounted
from shared.settings import Settings
from shared.topics import topic_names
from shared.validation import EventKind, EventTimeBounds, Rejection, Wire

log = logging.getLogger(__name__)
T = TypeVar("T")

SLOW_REQUEST_S = 15.0
"""A ClickHouse request in flight this long makes the worker report itself degraded: a hung server
answers nothing, and the client's own timeout (minutes) is there for big inserts, not for health."""


# -- ports ---------------------------------------------------------------------------------------------------


class RowSink(Protocol):
    """Where rows are stored (ClickHouse: ``adapters/clickhouse/sink.py``); every call waits out an outage."""

    failing_since: float | None
    """When the request being retried first failed (None: healthy)."""
    last_error: str
    busy_since: float | None
    """When the request in flight was sent (None: idle)."""

    def open(self) -> None:
        """Connect, creating the tables if this sink owns them."""

    def write(self, table: Table, rows: Sequence[Sequence[Any]]) -> int:
        """Store ``rows`` (in the table's declared column order); returns how many."""

    def write_lines(self, table: str, lines: Sequence[bytes]) -> list[int]:
        """Store raw events, one JSON document per line; returns the indexes of the lines refused."""

    def write_events(self, table: Table, events: Sequence[Wire]) -> list[int]:
        """Store decoded predictions or labels as ``table``'s typed columns; returns the indexes refused."""

    def until_reachable(self, what: str, attempt: Callable[[], T]) -> T:
        """Run ``attempt`` again from the start while the store cannot be reached."""

    def close(self) -> None: ...


class WindowReader(Protocol):
    """Reads a closed window of one model version back from the stored events."""

    def data_window(
        self, model: str, version: str, start: datetime, end: datetime, *, probabilities: bool = False
    ) -> DataWindow:
        """The window's events; with ``probabilities``, the class probabilities they logged too."""

    def label_window(self, model: str, version: str, start: datetime, end: datetime) -> LabelWindow:
        """The window's labelled predictions; asked only for a model ``labelled_models`` named."""

    def next_event_time(self, model: str, version: str, after: datetime) -> datetime | None: ...

    def labelled_models(self, models: Sequence[str]) -> set[str]:
        """Which of ``models`` have any label stored now (one question for all of them)."""


class CheckpointReader(Protocol):
    """Reads back the newest ``monitor_progress`` checkpoint of each model."""

    def latest(self, models: Sequence[str]) -> dict[str, dict[str, Any]]: ...


class ProfileSource(Protocol):
    """What each model version is judged against (the registry, or a file)."""

    def get(self, model_name: str, version: str) -> VersionReference: ...


class Publisher(Protocol):
    """Sends to Kafka; ``confirm`` returns once the broker acknowledged everything sent."""

    async def start(self) -> None: ...

    async def send(self, topic: str, key: bytes, value: bytes) -> None: ...

    async def confirm(self) -> None: ...

    async def stop(self) -> None: ...


# -- judging windows -----------------------------------------------------------------------------------------

RESULT_TABLES = (WINDOW_METRICS, DRIFT_TESTS, DRIFT_EVENTS)


class WindowJudge:
    """Closes windows as event time advances: takes each from the events in hand or reads it back, judges
    it, holds the results, alerts.

    A batch's results are written together (``flush``), one insert per table rather than one per window:
    every insert is a part the server must write and later merge.
    """

    def __init__(
        self,
        settings: Settings,
        sink: RowSink,
        windows: WindowReader,
        profiles: ProfileSource,
        on_judged: Callable[[str], None] | None = None,
        held: HeldWindows | None = None,
        on_source: Callable[[str], None] | None = None,
    ) -> None:
        self.on_judged = on_judged or (lambda stream: None)
        self.on_source = on_source or (lambda source: None)
        """Called with "held" or "read_back" for every data window judged."""
        self.settings = settings
        self.sink = sink
        self.windows = windows
        self.profiles = profiles
        self.length_ms = settings.monitor_window_seconds * 1000
        self.lateness_ms = settings.monitor_allowed_lateness_seconds * 1000
        self.label_wait_ms = settings.monitor_label_wait_seconds * 1000
        self.idle_windows = settings.monitor_idle_windows
        self.held = held or HeldWindows(self.length_ms, 0)
        """The open windows' events this worker stored: a window seen whole is judged from them."""
        self._labelled: set[str] = set()
        """Models seen with labels: their label windows skip asking whether the model has any."""
        self._batch_models: set[str] = set()
        """The models of the batch being judged: a batch asks once, for all of them, which have labels."""
        self._asked = False
        """Whether this batch asked already: a model still not labelled then has no label window to read."""
        self._pending: dict[Table, list[Row]] = {table: [] for table in RESULT_TABLES}
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
            estimated = reference.profile is not None and reference.profile.estimator is not None
            data = self._data_window(model, version, start_ms, end_ms, estimated)
            result = evaluate_data_window(data, reference.profile, reference.thresholds)
            estimate = evaluate_estimate_window(data, reference.profile, reference.thresholds)
            cost = estimated_accuracy_change(estimate, reference.profile)
            out += self._record(model, version, "data", result, progress.data.observe(result.verdict), cost)
            if estimate is not None:
                progress.estimate.thresholds = reference.thresholds
                alert = progress.estimate.observe(estimate.verdict)
                out += self._record(model, version, "estimate", estimate, alert)
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
            if self._may_have_labels(model):
                labels = self.windows.label_window(model, version, start, end)
            else:
                labels = unlabelled_window(start, end)
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

    def judging(self, models: Iterable[str]) -> None:
        """A batch's models are about to be judged: which of them have labels is asked at most once for all
        of them (``_may_have_labels``), not once per window."""
        self._batch_models = set(models)
        self._asked = False

    def _may_have_labels(self, model: str) -> bool:
        """Whether ``model``'s label window must be read: it is known to have labels, or the one question of
        this batch (asked now, for every model of the batch not known to have any) says it has. A model's
        first label is noticed by the first batch that judges a label window after it was stored."""
        if model in self._labelled:
            return True
        if not self._asked:
            unknown = sorted((self._batch_models | {model}) - self._labelled)
            self._labelled |= self.windows.labelled_models(unknown)
            self._asked = True
        return model in self._labelled

    def _data_window(
        self, model: str, version: str, start_ms: int, end_ms: int, estimated: bool
    ) -> DataWindow:
        """From the events held when this worker saw the whole window, else read back from the store."""
        start, end = ms_to_datetime(start_ms), ms_to_datetime(end_ms)
        events = self.held.events(model, version, start_ms)
        if events is None:
            self.on_source("read_back")
            return self.windows.data_window(model, version, start, end, probabilities=estimated)
        self.on_source("held")
        return data_window(events, start, end, probabilities=estimated)

    def _skip_or_pause(
        self, model: str, version: str, progress: VersionProgress, start: datetime, end: datetime
    ) -> None:
        """After ``idle_windows`` empty windows: jump to the version's next event, or pause until one comes.

        One query instead of a window at a time, so neither a retired version nor a gap of any length in
        event time costs work per window.
        """
        upcoming = self.windows.next_event_time(model, version, end)
        if upcoming is not None:
            progress.skip_to(floor_ms(datetime_to_ms(upcoming), self.length_ms))
            return
        progress.pause()
        self._pending[WINDOW_METRICS] += window_metric_rows(
            model,
            version,
            start,
            end,
            [("judging_paused", "", float(progress.idle_windows))],
            datetime.now(UTC),
        )
        log.info("%s v%s: no events for %d windows; paused until its next event", model, version,
                 progress.idle_windows)  # fmt: skip

    def discard(self) -> None:
        """Forget the results held since the last flush (their batch is judged again)."""
        self._pending = {table: [] for table in RESULT_TABLES}

    def flush(self) -> None:
        """Write the results of every window judged since the last flush: one insert per table."""
        pending = self._pending
        self._pending = {table: [] for table in RESULT_TABLES}
        for table, rows in pending.items():
            self.sink.write(table, rows)

    def _record(
        self,
        model: str,
        version: str,
        stream: str,
        result: WindowResult,
        alert: Alert | None,
        estimated_change: float | None = None,
    ) -> list[DriftAnnouncement]:
        now = datetime.now(UTC)
        self.on_judged(stream)
        v = result.verdict
        self._pending[WINDOW_METRICS] += window_metric_rows(
            model, version, v.window_start, v.window_end, result.metrics, now
        )
        self._pending[DRIFT_TESTS] += drift_test_rows(
            model, version, v.window_start, v.window_end, result.tests, now
        )
        if alert is None:
            return []
        event = alert_event(model, version, stream, alert, estimated_change)
        self._pending[DRIFT_EVENTS].append(drift_event_row(event))
        return [event]


# -- checkpoints ---------------------------------------------------------------------------------------------


class ProgressCheckpoints:
    """Each model's evaluation progress, kept in the store so a restarted or rebalanced worker resumes from it.

    A worker owns a model while it owns the model's partition (events are keyed by model name). It saves
    the model's progress with the batch, before committing the batch's offsets, so the checkpoint is never
    behind the committed offsets: a replay after a crash only re-stores rows (deduplicated) and never
    re-judges a window the checkpoint already passed. On a rebalance the worker forgets what it cached and
    the next owner reads the checkpoint back. Cached per model; ``load`` reads what is missing in one
    query, ``save`` writes a batch's in one insert.
    """

    def __init__(self, reader: CheckpointReader, sink: RowSink, worker: str) -> None:
        self.reader = reader
        self.sink = sink
        self.worker = worker
        self._cache: dict[str, dict[str, Any]] = {}

    def load(self, models: set[str]) -> None:
        missing = sorted(models - self._cache.keys())
        if not missing:
            return
        found = self.reader.latest(missing)
        for model in missing:
            self._cache[model] = found.get(model, {})

    def models(self) -> list[str]:
        """The models this worker judged since its partitions were last assigned."""
        return sorted(self._cache)

    def get(self, model: str) -> dict[str, Any]:
        """The model's progress per version as JSON-ready dicts (empty for a model never seen)."""
        return self._cache[model]

    def save(self, states: dict[str, tuple[dict[str, Any], int]]) -> None:
        """Store each model's new progress with the offset it covers; cached only once the store has it."""
        self.sink.write(MONITOR_PROGRESS, progress_rows(states, self.worker, datetime.now(UTC)))
        for model, (versions, _) in states.items():
            self._cache[model] = versions

    def forget(self) -> None:
        """Drop the cache (partitions were revoked): the next owner's checkpoints are the truth."""
        self._cache.clear()


# -- the service ---------------------------------------------------------------------------------------------


class Monitor:
    """One worker: its sinks, the window judge and the models' checkpoints (built by ``bootstrap``)."""

    def __init__(
        self,
        settings: Settings,
        *,
        inserts: Sequence[RowSink],
        judging: RowSink,
        windows: WindowReader,
        checkpoints: CheckpointReader,
        profiles: ProfileSource,
        publisher: Publisher,
        metrics: MonitorMetrics,
        dependencies: Dependencies,
        worker: str,
        clickhouse_waits: Callable[[], float] = lambda: 0.0,
    ) -> None:
        self.settings = settings
        self.clickhouse_waits = clickhouse_waits
        """Cumulative seconds this process has waited for ClickHouse (a union over its sinks)."""
        self.topics = topic_names(settings.topic_prefix)
        self.inserts = list(inserts)
        """One sink per concurrent insert of a batch's events (``store_lines``, ``store_events``)."""
        self.sink = self.inserts[0]
        """Stores the side topics' rows; it creates the tables on open."""
        self.judging = judging
        """Reads windows back and writes results and checkpoints, beside the next batch's insert."""
        self.publisher = publisher
        self.metrics = metrics
        self.dependencies = dependencies
        """What the worker waits for (shared with its publisher and its Kafka loop), shown on ``/health``."""
        self.worker = worker
        self.judge = WindowJudge(
            settings,
            judging,
            windows,
            profiles,
            lambda stream: self.metrics.windows.labels(stream).inc(),
            HeldWindows(settings.monitor_window_seconds * 1000, settings.monitor_held_events),
            lambda source: self.metrics.data_windows.labels(source).inc(),
        )
        self.checkpoints = ProgressCheckpoints(checkpoints, judging, worker)
        self._stats_at = time.monotonic()
        self._events_since = 0
        self.consumer_lag = 0
        """Records in the assigned partitions not yet handled, as of the last batch (set by the Kafka loop)."""
        self.bounds = EventTimeBounds.from_settings(settings)
        self.streams: dict[str, tuple[EventKind, Table]] = {
            self.topics.predictions: (EventKind.PREDICTION, PREDICTIONS),
            self.topics.labels: (EventKind.LABEL, LABELS),
        }
        """The high-volume topics: their records are checked ahead (``decode``), then stored by table."""
        self._storing = asyncio.Lock()
        """One batch stores at a time: its inserts use every insert sink, and a sink runs one query."""
        self.side_topics: dict[str, Callable[[Sequence[Record]], Awaitable[int]]] = {
            self.topics.data_quality: self.on_data_quality,
            self.topics.dead_letter: self.on_dead_letters,
            self.topics.model_events: self.on_model_events,
        }

    @property
    def subscribed(self) -> list[str]:
        return [*self.streams, *self.side_topics]

    def open(self) -> None:
        """Connect to the store and create the tables (idempotently)."""
        self.sink.open()

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
            announcements = await asyncio.to_thread(self._advance_until_done, ranges, offsets, stored.heads)
            for event in announcements:
                await self.publisher.send(
                    self.topics.drift_events, event.model_name.encode(), codec.encode(event)
                )
                self.metrics.alerts.labels(event.event_type).inc()
            await self._stats(stored.heads)
        self.metrics.batch_seconds.labels("advance").observe(time.monotonic() - began)
        self.metrics.last_batch.set(time.time())

    def forget(self) -> None:
        """Partitions were revoked: what this worker cached about their models may now be stale."""
        self.checkpoints.forget()
        self.judge.held.forget()

    def waiting_for(self) -> dict[str, Any]:
        """The dependencies the worker is waiting for, since when and why (empty: none)."""
        waiting = self.dependencies.waiting()
        now = time.time()
        for sink in self.sinks():
            if sink.failing_since is not None:
                waiting.setdefault(
                    "ClickHouse (storing)", {"since": sink.failing_since, "error": sink.last_error}
                )
            elif sink.busy_since is not None and now - sink.busy_since > SLOW_REQUEST_S:
                waiting.setdefault(
                    "ClickHouse (answering)",
                    {
                        "since": sink.busy_since,
                        "error": f"a request has waited {now - sink.busy_since:.0f} s",
                    },
                )
        return waiting

    # -- predictions and labels ----------------------------------------------------------------------------
    async def on_events(self, table: Table, intake: Intake) -> int:
        """Store the valid events; the rest, and any ClickHouse refuses, go to the dead-letter topic."""
        await self._dead_letter(intake.rejected)
        if self.settings.monitor_store_columns:
            refused = await self.store_events(table, intake.events)
        else:
            refused = await self.store_lines(f"{table.name}_intake", intake.lines)
        if refused:
            await self._dead_letter([(intake.records[i], REFUSED) for i in refused])
            for i in sorted(refused, reverse=True):  # neither stored nor judged
                del intake.events[i], intake.lines[i], intake.records[i]
        self.metrics.events.labels(table.name).inc(len(intake.events))
        return len(intake.events)

    def _advance_until_done(
        self,
        ranges: dict[str, dict[str, tuple[int, int]]],
        offsets: dict[str, int],
        heads: Sequence[Wire] = (),
    ) -> list[DriftAnnouncement]:
        """``_advance``, again from the last checkpoint while ClickHouse cannot be reached.

        Judging reads windows back; a server that went away mid-batch must not stop the worker (it would
        only be restarted to wait). The batch is not committed until this returns.
        """
        by_model: dict[str, list[Any]] = {}
        for head in heads:
            by_model.setdefault(head.model_name, []).append(head)
        return self.judging.until_reachable("judging", lambda: self._advance(ranges, offsets, by_model))

    def _advance(
        self,
        ranges: dict[str, dict[str, tuple[int, int]]],
        offsets: dict[str, int],
        events: dict[str, list[Any]] | None = None,
    ) -> list[DriftAnnouncement]:
        """Move each model's watermark, judge the windows it closed, then checkpoint every model at once.

        ``events``: the batch's stored predictions per model, held in their windows until judged.
        """
        self.judge.discard()  # results of an attempt that ClickHouse cut short are judged again
        self.judge.judging(ranges)
        self.checkpoints.load(set(ranges))
        held = self.judge.held
        out: list[DriftAnnouncement] = []
        saved: dict[str, tuple[dict[str, Any], int]] = {}
        judged_until: dict[str, int] = {}
        for model, seen in ranges.items():
            raw = self.checkpoints.get(model)
            if not held.owns(model):  # windows up to its checkpoint's watermark may hold events not seen here
                held.take_over(model, max((p["max_event_ms"] for p in raw.values()), default=None))
            announcements, state, judged_until[model] = self._advance_model(
                model, seen, raw, (events or {}).get(model, [])
            )
            out += announcements
            saved[model] = (state, offsets[model])
        self.judge.flush()  # the results before the checkpoint that moves past their windows
        self.checkpoints.save(saved)
        for model, until in judged_until.items():  # only now: a retried attempt judges from them again
            held.release(model, until)
        return out

    def _advance_model(
        self, model: str, seen: dict[str, tuple[int, int]], raw: dict[str, Any], events: Sequence[Any] = ()
    ) -> tuple[list[DriftAnnouncement], dict[str, Any], int]:
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
        self.judge.held.hold(model, events, {v: p.next_window_ms for v, p in versions.items()})
        out: list[DriftAnnouncement] = []
        for version, progress in versions.items():
            progress.observe(watermark)
            out += self.judge.advance(model, version, progress)
        judging = [p.next_window_ms for p in versions.values() if not p.paused]
        return out, {v: p.to_json() for v, p in versions.items()}, min(judging, default=watermark + 1)

    # -- data quality, dead letters, registry announcements ----------------------------------------------
    async def on_data_quality(self, records: Sequence[Record]) -> int:
        events, _, bad = decode_batch(records, lambda b: codec.decode(b, DataQualityCounted))
        await self._dead_letter([(r, Rejection("invalid_event", reason)) for r, reason in bad])
        return await asyncio.to_thread(self.sink.write, DATA_QUALITY, quality_rows(events))

    async def on_dead_letters(self, records: Sequence[Record]) -> int:
        rows = dead_letter_rows(records, datetime.now(UTC))
        return await asyncio.to_thread(self.sink.write, DEAD_LETTERS, rows)

    async def on_model_events(self, records: Sequence[Record]) -> int:
        rows, bad = model_event_rows(records, datetime.now(UTC))
        await self._dead_letter([(r, Rejection("invalid_event", reason)) for r, reason in bad])
        return await asyncio.to_thread(self.sink.write, MODEL_EVENTS, rows)

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

    async def store_events(self, table: Table, events: list[Wire]) -> list[int]:
        """Insert decoded events as typed columns, a big batch split into concurrent inserts
        (``insert_pieces``); returns the indexes of the events refused."""
        pieces = insert_pieces(events, len(self.inserts))
        refused = await asyncio.gather(
            *(
                asyncio.to_thread(sink.write_events, table, piece)
                for sink, piece in zip(self.inserts, pieces, strict=False)
            )
        )
        starts = [sum(len(p) for p in pieces[:i]) for i in range(len(pieces))]
        return [start + i for start, found in zip(starts, refused, strict=False) for i in found]

    def sinks(self) -> list[RowSink]:
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
            await self.publisher.send(self.topics.dead_letter, event.key, codec.encode(event))
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
        figures = {
            "events_per_s": self._events_since / elapsed,
            "processing_delay_s": (now - newest).total_seconds(),
            "consumer_lag": float(self.consumer_lag),
            "process_cpu_s": time.process_time(),  # cumulative; `driftloop cost` shares it out by events
        }
        self._stats_at, self._events_since = time.monotonic(), 0
        await asyncio.to_thread(self.judging.write, MONITOR_STATS, stats_rows(now, self.worker, figures))
