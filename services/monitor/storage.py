"""ClickHouse tables owned by the monitor, and the pure conversion of events into their rows."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from shared.wire import LabelWire, PredictionWire

PREDICTION_COLUMNS = [
    "event_id",
    "model_name",
    "model_version",
    "prediction_id",
    "occurred_at",
    "num_features",
    "cat_features",
    "missing_features",
    "prediction",
    "prediction_num",
    "probabilities",
    "latency_ms",
    "ingested_at",
]


def predictions_ddl(table: str = "predictions", ttl_days: int = 365) -> str:
    """Raw predictions; features split into a numeric and a categorical map so SQL needs no casts.

    ReplacingMergeTree on a key that ends with ``event_id``: a replay after a crash writes the same
    rows again and they collapse into one (query with ``FINAL`` or through the ``*_dedup`` views).
    """
    return f"""
    CREATE TABLE IF NOT EXISTS {table} (
        event_id UUID,
        model_name LowCardinality(String),
        model_version LowCardinality(String),
        prediction_id String,
        occurred_at DateTime64(3, 'UTC'),
        num_features Map(LowCardinality(String), Float64),
        cat_features Map(LowCardinality(String), String),
        missing_features Array(LowCardinality(String)),
        prediction String,
        prediction_num Nullable(Float64),
        probabilities Map(LowCardinality(String), Float64),
        latency_ms Nullable(Float64),
        ingested_at DateTime64(3, 'UTC')
    )
    ENGINE = ReplacingMergeTree(ingested_at)
    PARTITION BY toYYYYMM(occurred_at)
    ORDER BY (model_name, occurred_at, event_id)
    TTL toDateTime(occurred_at) + INTERVAL {int(ttl_days)} DAY
    """


def prediction_rows(events: Sequence[PredictionWire], ingested_at: datetime | None = None) -> list[list[Any]]:
    """One row per prediction, columns in ``PREDICTION_COLUMNS`` order."""
    now = ingested_at or datetime.now(UTC)
    rows: list[list[Any]] = []
    for e in events:
        num: dict[str, float] = {}
        cat: dict[str, str] = {}
        missing: list[str] = []
        for name, value in e.features.items():
            if value is None:
                missing.append(name)
            elif isinstance(value, str):
                cat[name] = value
            else:
                num[name] = float(value)
        output = e.prediction
        output_num = None if isinstance(output, str) else float(output)
        rows.append(
            [
                e.event_id,
                e.model_name,
                e.model_version,
                e.prediction_id,
                e.occurred_at,
                num,
                cat,
                missing,
                str(int(output)) if isinstance(output, bool) else str(output),
                output_num,
                e.probabilities or {},
                e.latency_ms,
                now,
            ]
        )
    return rows


LABEL_COLUMNS = [
    "event_id",
    "model_name",
    "prediction_id",
    "label",
    "label_num",
    "occurred_at",
    "ingested_at",
]


def labels_ddl(table: str = "labels", ttl_days: int = 365) -> str:
    """Ground truth, joined to predictions by ``prediction_id`` whenever it arrives (even hours later)."""
    return f"""
    CREATE TABLE IF NOT EXISTS {table} (
        event_id UUID,
        model_name LowCardinality(String),
        prediction_id String,
        label String,
        label_num Nullable(Float64),
        occurred_at DateTime64(3, 'UTC'),
        ingested_at DateTime64(3, 'UTC')
    )
    ENGINE = ReplacingMergeTree(ingested_at)
    PARTITION BY toYYYYMM(occurred_at)
    ORDER BY (model_name, prediction_id, event_id)
    TTL toDateTime(occurred_at) + INTERVAL {int(ttl_days)} DAY
    """


def window_metrics_ddl(table: str = "window_metrics", ttl_days: int = 365) -> str:
    """Long format (one row per metric and feature) so a new metric never needs a schema change."""
    return f"""
    CREATE TABLE IF NOT EXISTS {table} (
        model_name LowCardinality(String),
        model_version LowCardinality(String),
        window_start DateTime64(3, 'UTC'),
        window_end DateTime64(3, 'UTC'),
        metric LowCardinality(String),
        feature String,
        value Float64,
        computed_at DateTime64(3, 'UTC')
    )
    ENGINE = ReplacingMergeTree(computed_at)
    PARTITION BY toYYYYMM(window_start)
    ORDER BY (model_name, model_version, window_start, metric, feature)
    TTL toDateTime(window_start) + INTERVAL {int(ttl_days)} DAY
    """


def drift_tests_ddl(table: str = "drift_tests", ttl_days: int = 365) -> str:
    """Every statistic behind every decision, so "why did it alert?" is one query."""
    return f"""
    CREATE TABLE IF NOT EXISTS {table} (
        model_name LowCardinality(String),
        model_version LowCardinality(String),
        window_start DateTime64(3, 'UTC'),
        window_end DateTime64(3, 'UTC'),
        feature String,
        test LowCardinality(String),
        statistic Float64,
        p_value Nullable(Float64),
        threshold Nullable(Float64),
        reference_size UInt64,
        current_size UInt64,
        drifted UInt8,
        computed_at DateTime64(3, 'UTC')
    )
    ENGINE = ReplacingMergeTree(computed_at)
    PARTITION BY toYYYYMM(window_start)
    ORDER BY (model_name, model_version, window_start, feature, test)
    TTL toDateTime(window_start) + INTERVAL {int(ttl_days)} DAY
    """


def drift_events_ddl(table: str = "drift_events") -> str:
    """Drift and recovery announcements as sent to ``drift-events``, evidence kept as JSON."""
    return f"""
    CREATE TABLE IF NOT EXISTS {table} (
        event_id UUID,
        event_type LowCardinality(String),
        model_name LowCardinality(String),
        model_version LowCardinality(String),
        occurred_at DateTime64(3, 'UTC'),
        window_start DateTime64(3, 'UTC'),
        window_end DateTime64(3, 'UTC'),
        kinds Array(LowCardinality(String)),
        severity Float64,
        drifted_features Array(String),
        evidence String
    )
    ENGINE = ReplacingMergeTree
    ORDER BY (model_name, occurred_at, event_id)
    """


def data_quality_ddl(table: str = "data_quality", ttl_days: int = 365) -> str:
    """Ingest's counters of missing values, type errors, out-of-range and unseen categories."""
    return f"""
    CREATE TABLE IF NOT EXISTS {table} (
        event_id UUID,
        model_name LowCardinality(String),
        model_version LowCardinality(String),
        interval_start DateTime64(3, 'UTC'),
        interval_end DateTime64(3, 'UTC'),
        events UInt64,
        feature String,
        problem LowCardinality(String),
        count UInt64
    )
    ENGINE = ReplacingMergeTree
    PARTITION BY toYYYYMM(interval_start)
    ORDER BY (model_name, interval_start, feature, problem, event_id)
    TTL toDateTime(interval_start) + INTERVAL {int(ttl_days)} DAY
    """


def monitor_stats_ddl(table: str = "monitor_stats", ttl_days: int = 30) -> str:
    """The monitor's own health: events/s, processing delay, batch sizes, per worker."""
    return f"""
    CREATE TABLE IF NOT EXISTS {table} (
        at DateTime64(3, 'UTC'),
        worker String,
        metric LowCardinality(String),
        value Float64
    )
    ENGINE = MergeTree
    ORDER BY (metric, at)
    TTL toDateTime(at) + INTERVAL {int(ttl_days)} DAY
    """


def schema(ttl_days: int = 365) -> list[str]:
    """Every table the monitor owns, created (idempotently) when a worker starts."""
    return [
        predictions_ddl(ttl_days=ttl_days),
        labels_ddl(ttl_days=ttl_days),
        window_metrics_ddl(ttl_days=ttl_days),
        drift_tests_ddl(ttl_days=ttl_days),
        drift_events_ddl(),
        data_quality_ddl(ttl_days=ttl_days),
        monitor_stats_ddl(),
    ]


def label_rows(events: Sequence[LabelWire], ingested_at: datetime | None = None) -> list[list[Any]]:
    """One row per label, columns in ``LABEL_COLUMNS`` order; numeric labels also kept as numbers."""
    now = ingested_at or datetime.now(UTC)
    rows: list[list[Any]] = []
    for e in events:
        label = e.label
        text = str(int(label)) if isinstance(label, bool) else str(label)
        number = None if isinstance(label, str) else float(label)
        rows.append([e.event_id, e.model_name, e.prediction_id, text, number, e.occurred_at, now])
    return rows
