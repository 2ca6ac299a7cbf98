"""The monitor's ClickHouse tables, each declared once (columns, engine, order, TTL) beside its row builder.

The DDL and the insert column list are rendered from the declaration, and every row builder returns its
values in the declared column order, so the three can no longer disagree (a unit test checks the builders).
Predictions and labels have no row builder: their raw JSON is parsed into rows by intake views
(``adapters/clickhouse/storage.py``), or, with ``monitor_store_columns``, they are written as typed columns
built from the decoded events (``domain/event_columns.py``), the same rows.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.monitor.domain.drift.columns import TestResult
from services.monitor.domain.intake import Record, record_id
from services.monitor.domain.window_metrics import MetricRow
from shared import codec
from shared.events import (
    DataQualityCounted,
    DriftDetected,
    DriftRecovered,
    Event,
    EventDeadLettered,
    ModelVersionRegistered,
)

Row = list[Any]
DriftAnnouncement = DriftDetected | DriftRecovered


@dataclass(frozen=True)
class Table:
    """One table: ``columns`` are (name, ClickHouse type) in insert order.

    Rows expire ``ttl_days`` after ``expires_by`` (None: the monitor's retention setting), in monthly
    partitions by it unless ``monthly`` is off; a table without ``expires_by`` keeps its rows.
    """

    name: str
    columns: tuple[tuple[str, str], ...]
    engine: str
    order_by: str
    expires_by: str | None = None
    ttl_days: int | None = None
    monthly: bool = True
    added: tuple[str, ...] = ()
    """Columns added after the table was first released: a table created before gets them (``upgrades``)."""

    @property
    def column_names(self) -> list[str]:
        """The insert column list: every declared column, in order."""
        return [name for name, _ in self.columns]

    def ddl(self, retention_days: int = 365, *, name: str | None = None) -> str:
        """``CREATE TABLE IF NOT EXISTS`` for this table (under ``name`` if given).

        >>> Table("t", (("a", "UInt8"), ("at", "DateTime")), "MergeTree", "a", expires_by="at").ddl(30)
        'CREATE TABLE IF NOT EXISTS t (a UInt8, at DateTime) ENGINE = MergeTree PARTITION BY toYYYYMM(at) ORDER BY a TTL toDateTime(at) + INTERVAL 30 DAY'
        """
        days = self.ttl_days if self.ttl_days is not None else retention_days
        columns = ", ".join(f"{column} {kind}" for column, kind in self.columns)
        parts = [f"CREATE TABLE IF NOT EXISTS {name or self.name} ({columns}) ENGINE = {self.engine}"]
        if self.expires_by and self.monthly:
            parts.append(f"PARTITION BY toYYYYMM({self.expires_by})")
        parts.append(f"ORDER BY {self.order_by}")
        if self.expires_by:
            parts.append(f"TTL toDateTime({self.expires_by}) + INTERVAL {int(days)} DAY")
        return " ".join(parts)

    def upgrades(self, *, name: str | None = None) -> list[str]:
        """``ALTER TABLE ... ADD COLUMN IF NOT EXISTS`` for each ``added`` column: a no-op on a new table.

        Old rows read the type's default (an empty string, NULL for a Nullable).

        >>> Table("t", (("a", "UInt8"), ("b", "String")), "MergeTree", "a", added=("b",)).upgrades()
        ['ALTER TABLE t ADD COLUMN IF NOT EXISTS b String']
        """
        kinds = dict(self.columns)
        return [
            f"ALTER TABLE {name or self.name} ADD COLUMN IF NOT EXISTS {c} {kinds[c]}" for c in self.added
        ]


# -- raw events (written as columns by the worker, or by the intake views) ------------------------------------

PREDICTIONS = Table(
    "predictions",
    (
        ("event_id", "UUID"),
        ("model_name", "LowCardinality(String)"),
        ("model_version", "LowCardinality(String)"),
        ("prediction_id", "String"),
        ("occurred_at", "DateTime64(3, 'UTC')"),
        ("num_features", "Map(String, Float64)"),
        ("cat_features", "Map(String, String)"),
        ("missing_features", "Array(String)"),
        ("prediction", "String"),
        ("prediction_num", "Nullable(Float64)"),
        ("probabilities", "Map(String, Float64)"),
        ("latency_ms", "Nullable(Float64)"),
        ("ingested_at", "DateTime64(3, 'UTC')"),
    ),
    "ReplacingMergeTree(ingested_at)",
    "(model_name, occurred_at, event_id)",
    expires_by="occurred_at",
)
"""Raw predictions; features split into a numeric and a categorical map so SQL needs no casts.

Map keys are plain ``String`` (LowCardinality keys cost the server more CPU per event, docs/monitor.md).
ReplacingMergeTree on a key that ends with ``event_id``: a replay after a crash writes the same rows again
and they collapse into one (query with ``FINAL`` to see each event once)."""

LABELS = Table(
    "labels",
    (
        ("event_id", "UUID"),
        ("model_name", "LowCardinality(String)"),
        ("prediction_id", "String"),
        ("label", "String"),
        ("label_num", "Nullable(Float64)"),
        ("occurred_at", "DateTime64(3, 'UTC')"),
        ("ingested_at", "DateTime64(3, 'UTC')"),
    ),
    "ReplacingMergeTree(ingested_at)",
    "(model_name, prediction_id, event_id)",
    expires_by="occurred_at",
)
"""Ground truth, joined to predictions by ``prediction_id`` whenever it arrives (even hours later)."""


# -- window results -----------------------------------------------------------------------------------------

WINDOW_METRICS = Table(
    "window_metrics",
    (
        ("model_name", "LowCardinality(String)"),
        ("model_version", "LowCardinality(String)"),
        ("window_start", "DateTime64(3, 'UTC')"),
        ("window_end", "DateTime64(3, 'UTC')"),
        ("metric", "LowCardinality(String)"),
        ("feature", "String"),
        ("value", "Float64"),
        ("computed_at", "DateTime64(3, 'UTC')"),
    ),
    "ReplacingMergeTree(computed_at)",
    "(model_name, model_version, window_start, metric, feature)",
    expires_by="window_start",
)
"""Long format (one row per metric and feature) so a new metric never needs a schema change."""


def window_metric_rows(
    model: str, version: str, start: datetime, end: datetime, metrics: Sequence[MetricRow], now: datetime
) -> list[Row]:
    """``window_metrics`` rows of one window, from its ``(metric, feature, value)`` triples."""
    return [[model, version, start, end, *metric, now] for metric in metrics]


DRIFT_TESTS = Table(
    "drift_tests",
    (
        ("model_name", "LowCardinality(String)"),
        ("model_version", "LowCardinality(String)"),
        ("window_start", "DateTime64(3, 'UTC')"),
        ("window_end", "DateTime64(3, 'UTC')"),
        ("feature", "String"),
        ("test", "LowCardinality(String)"),
        ("statistic", "Float64"),
        ("p_value", "Nullable(Float64)"),
        ("threshold", "Nullable(Float64)"),
        ("reference_size", "UInt64"),
        ("current_size", "UInt64"),
        ("drifted", "UInt8"),
        ("computed_at", "DateTime64(3, 'UTC')"),
    ),
    "ReplacingMergeTree(computed_at)",
    "(model_name, model_version, window_start, feature, test)",
    expires_by="window_start",
)
"""Every statistic behind every decision, so "why did it alert?" is one query."""


def drift_test_rows(
    model: str, version: str, start: datetime, end: datetime, tests: Sequence[TestResult], now: datetime
) -> list[Row]:
    """``drift_tests`` rows of one window, one per statistic."""
    return [
        [model, version, start, end, t.feature, t.test, t.statistic, t.p_value, t.threshold,
         t.reference_size, t.current_size, int(t.drifted), now]
        for t in tests
    ]  # fmt: skip


DRIFT_EVENTS = Table(
    "drift_events",
    (
        ("event_id", "UUID"),
        ("event_type", "LowCardinality(String)"),
        ("model_name", "LowCardinality(String)"),
        ("model_version", "LowCardinality(String)"),
        ("occurred_at", "DateTime64(3, 'UTC')"),
        ("window_start", "DateTime64(3, 'UTC')"),
        ("window_end", "DateTime64(3, 'UTC')"),
        ("kinds", "Array(LowCardinality(String))"),
        ("severity", "Float64"),
        ("drifted_features", "Array(String)"),
        ("evidence", "String"),
        ("ranked_features", "String"),
        ("importance_share_drifted", "Nullable(Float64)"),
        ("estimated_accuracy_change", "Nullable(Float64)"),
    ),
    "ReplacingMergeTree",
    "(model_name, occurred_at, event_id)",
    added=("ranked_features", "importance_share_drifted", "estimated_accuracy_change"),
)
"""Drift and recovery announcements as sent to ``drift-events``, evidence and ranked features kept as JSON."""


def drift_event_row(event: DriftAnnouncement) -> Row:
    """A ``drift_events`` row; the evidence is kept as JSON so analysts can unpack it with JSON functions."""
    kinds: list[str] = []
    severity, features, evidence, ranked, moved, cost = 0.0, list[str](), "[]", "[]", None, None
    if isinstance(event, DriftDetected):
        kinds = [k.value for k in event.kinds]
        severity, features = event.severity, event.drifted_features
        evidence = json.dumps([e.model_dump(mode="json") for e in event.evidence])
        ranked = json.dumps([f.model_dump(mode="json") for f in event.ranked_features])
        moved, cost = event.importance_share_drifted, event.estimated_accuracy_change
    return [
        event.event_id, event.event_type, event.model_name, event.model_version, event.occurred_at,
        event.window_start, event.window_end, kinds, severity, features, evidence, ranked, moved, cost,
    ]  # fmt: skip


# -- side topics --------------------------------------------------------------------------------------------

DATA_QUALITY = Table(
    "data_quality",
    (
        ("event_id", "UUID"),
        ("model_name", "LowCardinality(String)"),
        ("model_version", "LowCardinality(String)"),
        ("interval_start", "DateTime64(3, 'UTC')"),
        ("interval_end", "DateTime64(3, 'UTC')"),
        ("events", "UInt64"),
        ("feature", "String"),
        ("problem", "LowCardinality(String)"),
        ("count", "UInt64"),
    ),
    "ReplacingMergeTree",
    "(model_name, interval_start, feature, problem, event_id)",
    expires_by="interval_start",
)
"""Ingest's counters of missing values, type errors, out-of-range and unseen categories."""


def quality_rows(events: Sequence[DataQualityCounted]) -> list[Row]:
    """``data_quality`` rows: one per event, feature and problem counted."""
    return [
        [e.event_id, e.model_name, e.model_version or "", e.interval_start, e.interval_end, e.events,
         feature, problem, n]
        for e in events
        for feature, problems in e.counts.items()
        for problem, n in problems.items()
    ]  # fmt: skip


DEAD_LETTERS = Table(
    "dead_letters",
    (
        ("event_id", "UUID"),
        ("model_name", "LowCardinality(String)"),
        ("source", "LowCardinality(String)"),
        ("reason", "LowCardinality(String)"),
        ("detail", "String"),
        ("original", "String"),
        ("source_partition", "Nullable(Int32)"),
        ("source_offset", "Nullable(Int64)"),
        ("occurred_at", "DateTime64(3, 'UTC')"),
        ("ingested_at", "DateTime64(3, 'UTC')"),
    ),
    "ReplacingMergeTree(ingested_at)",
    "(model_name, occurred_at, event_id)",
    expires_by="occurred_at",
)
"""Everything refused anywhere in the loop, with its reason and original bytes, for "what are we losing?"."""


def dead_letter_rows(records: Sequence[Record], now: datetime) -> list[Row]:
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


MODEL_EVENTS = Table(
    "model_events",
    (
        ("event_id", "UUID"),
        ("event_type", "LowCardinality(String)"),
        ("model_name", "LowCardinality(String)"),
        ("version", "Nullable(UInt32)"),
        ("alias", "LowCardinality(String)"),
        ("action", "LowCardinality(String)"),
        ("previous_version", "Nullable(UInt32)"),
        ("actor", "String"),
        ("occurred_at", "DateTime64(3, 'UTC')"),
        ("ingested_at", "DateTime64(3, 'UTC')"),
        ("artifact_uri", "String"),
        ("artifact_sha256", "String"),
        ("artifact_size", "Nullable(UInt64)"),
        ("metrics", "Map(String, Float64)"),
        ("lineage", "String"),
    ),
    "ReplacingMergeTree(ingested_at)",
    "(model_name, occurred_at, event_id)",
    added=("artifact_uri", "artifact_sha256", "artifact_size", "metrics", "lineage"),
)
"""The registry's announcements (registrations, alias moves), so "which version served when" is SQL.

A registration also keeps the version's artifact (URI, sha256, size), metrics and lineage (JSON), so what
the console shows of a version is SQL too; other events leave them empty.
"""


def _actor(e: Event) -> str:
    """Who did it: each registry event names its actor in its own field."""
    for field in ("changed_by", "created_by", "updated_by", "deleted_by"):
        if name := getattr(e, field, None):
            return str(name)
    return ""


def _registration_columns(e: Event) -> list[Any]:
    """artifact_uri, artifact_sha256, artifact_size, metrics and lineage (JSON) of a registration; empty otherwise."""
    if not isinstance(e, ModelVersionRegistered):
        return ["", "", None, {}, ""]
    return [
        e.artifact_uri,
        e.artifact_sha256,
        e.artifact_size,
        dict(e.metrics),
        json.dumps(e.lineage, sort_keys=True),
    ]


def model_event_rows(records: Sequence[Record], now: datetime) -> tuple[list[Row], list[tuple[Record, str]]]:
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
             _actor(e), e.occurred_at, now,
             *_registration_columns(e)]
        )  # fmt: skip
    return rows, bad


# -- the monitor's own state --------------------------------------------------------------------------------

MONITOR_STATS = Table(
    "monitor_stats",
    (
        ("at", "DateTime64(3, 'UTC')"),
        ("worker", "String"),
        ("metric", "LowCardinality(String)"),
        ("value", "Float64"),
    ),
    "MergeTree",
    "(metric, at)",
    expires_by="at",
    ttl_days=30,
    monthly=False,
)
"""The monitor's own health: events/s, processing delay, batch sizes, per worker."""


def stats_rows(now: datetime, worker: str, figures: Mapping[str, float]) -> list[Row]:
    """``monitor_stats`` rows: one per figure of the worker's health."""
    return [[now, worker, metric, float(value)] for metric, value in figures.items()]


MONITOR_PROGRESS = Table(
    "monitor_progress",
    (
        ("model_name", "String"),
        ("versions", "String"),
        ("source_offset", "UInt64"),
        ("worker", "String"),
        ("saved_at", "DateTime64(3, 'UTC')"),
    ),
    "ReplacingMergeTree(source_offset)",
    "model_name",
)
"""Each model's evaluation progress, checkpointed before its batch's offsets are committed.

``source_offset`` (the Kafka offset the checkpoint covers) is the row's version: a partition's offsets
only grow, whichever worker owns it, so the newest checkpoint wins without trusting any clock."""


def progress_rows(states: Mapping[str, tuple[dict[str, Any], int]], worker: str, now: datetime) -> list[Row]:
    """``monitor_progress`` rows: each model's progress per version (JSON) with the offset it covers."""
    return [
        [model, json.dumps(versions), offset, worker, now] for model, (versions, offset) in states.items()
    ]


TABLES = (
    PREDICTIONS,
    LABELS,
    WINDOW_METRICS,
    DRIFT_TESTS,
    DRIFT_EVENTS,
    DATA_QUALITY,
    MONITOR_STATS,
    DEAD_LETTERS,
    MODEL_EVENTS,
    MONITOR_PROGRESS,
)
"""Every table the monitor owns, in the order a worker creates them (before the intake and analytics views)."""
