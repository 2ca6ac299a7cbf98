"""ClickHouse tables owned by the monitor, created at start; raw event JSON is parsed by their intake views."""

from __future__ import annotations

from services.monitor.views import views_ddl


def create_table(
    table: str,
    columns: str,
    engine: str,
    order_by: str,
    *,
    expires_by: str | None = None,
    ttl_days: int = 365,
    monthly: bool = True,
) -> str:
    """``CREATE TABLE IF NOT EXISTS``; rows expire ``ttl_days`` after ``expires_by`` (monthly partitions by it)."""
    partition = f"PARTITION BY toYYYYMM({expires_by})" if expires_by and monthly else ""
    ttl = f"TTL toDateTime({expires_by}) + INTERVAL {int(ttl_days)} DAY" if expires_by else ""
    return f"CREATE TABLE IF NOT EXISTS {table} ({columns}) ENGINE = {engine} {partition} ORDER BY {order_by} {ttl}"


def predictions_ddl(table: str = "predictions", ttl_days: int = 365) -> str:
    """Raw predictions; features split into a numeric and a categorical map so SQL needs no casts.

    Map keys are plain ``String``: LowCardinality keys cost the server a quarter more CPU per stored event,
    mostly in background merges (18-21 against 14-17 µs per event, 20 features), for no gain in queries.

    ReplacingMergeTree on a key that ends with ``event_id``: a replay after a crash writes the same
    rows again and they collapse into one (query with ``FINAL`` to see each event once).
    """
    return create_table(
        table,
        """
        event_id UUID,
        model_name LowCardinality(String),
        model_version LowCardinality(String),
        prediction_id String,
        occurred_at DateTime64(3, 'UTC'),
        num_features Map(String, Float64),
        cat_features Map(String, String),
        missing_features Array(String),
        prediction String,
        prediction_num Nullable(Float64),
        probabilities Map(String, Float64),
        latency_ms Nullable(Float64),
        ingested_at DateTime64(3, 'UTC')
        """,
        "ReplacingMergeTree(ingested_at)",
        "(model_name, occurred_at, event_id)",
        expires_by="occurred_at",
        ttl_days=ttl_days,
    )


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
    return create_table(
        table,
        """
        event_id UUID,
        model_name LowCardinality(String),
        prediction_id String,
        label String,
        label_num Nullable(Float64),
        occurred_at DateTime64(3, 'UTC'),
        ingested_at DateTime64(3, 'UTC')
        """,
        "ReplacingMergeTree(ingested_at)",
        "(model_name, prediction_id, event_id)",
        expires_by="occurred_at",
        ttl_days=ttl_days,
    )


def window_metrics_ddl(table: str = "window_metrics", ttl_days: int = 365) -> str:
    """Long format (one row per metric and feature) so a new metric never needs a schema change."""
    return create_table(
        table,
        """
        model_name LowCardinality(String),
        model_version LowCardinality(String),
        window_start DateTime64(3, 'UTC'),
        window_end DateTime64(3, 'UTC'),
        metric LowCardinality(String),
        feature String,
        value Float64,
        computed_at DateTime64(3, 'UTC')
        """,
        "ReplacingMergeTree(computed_at)",
        "(model_name, model_version, window_start, metric, feature)",
        expires_by="window_start",
        ttl_days=ttl_days,
    )


def drift_tests_ddl(table: str = "drift_tests", ttl_days: int = 365) -> str:
    """Every statistic behind every decision, so "why did it alert?" is one query."""
    return create_table(
        table,
        """
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
        """,
        "ReplacingMergeTree(computed_at)",
        "(model_name, model_version, window_start, feature, test)",
        expires_by="window_start",
        ttl_days=ttl_days,
    )


def drift_events_ddl(table: str = "drift_events") -> str:
    """Drift and recovery announcements as sent to ``drift-events``, evidence kept as JSON."""
    return create_table(
        table,
        """
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
        """,
        "ReplacingMergeTree",
        "(model_name, occurred_at, event_id)",
    )


def data_quality_ddl(table: str = "data_quality", ttl_days: int = 365) -> str:
    """Ingest's counters of missing values, type errors, out-of-range and unseen categories."""
    return create_table(
        table,
        """
        event_id UUID,
        model_name LowCardinality(String),
        model_version LowCardinality(String),
        interval_start DateTime64(3, 'UTC'),
        interval_end DateTime64(3, 'UTC'),
        events UInt64,
        feature String,
        problem LowCardinality(String),
        count UInt64
        """,
        "ReplacingMergeTree",
        "(model_name, interval_start, feature, problem, event_id)",
        expires_by="interval_start",
        ttl_days=ttl_days,
    )


def monitor_stats_ddl(table: str = "monitor_stats", ttl_days: int = 30) -> str:
    """The monitor's own health: events/s, processing delay, batch sizes, per worker."""
    return create_table(
        table,
        """
        at DateTime64(3, 'UTC'),
        worker String,
        metric LowCardinality(String),
        value Float64
        """,
        "MergeTree",
        "(metric, at)",
        expires_by="at",
        ttl_days=ttl_days,
        monthly=False,
    )


def dead_letters_ddl(table: str = "dead_letters", ttl_days: int = 365) -> str:
    """Everything refused anywhere in the loop, with its reason and original bytes, for "what are we losing?"."""
    return create_table(
        table,
        """
        event_id UUID,
        model_name LowCardinality(String),
        source LowCardinality(String),
        reason LowCardinality(String),
        detail String,
        original String,
        source_partition Nullable(Int32),
        source_offset Nullable(Int64),
        occurred_at DateTime64(3, 'UTC'),
        ingested_at DateTime64(3, 'UTC')
        """,
        "ReplacingMergeTree(ingested_at)",
        "(model_name, occurred_at, event_id)",
        expires_by="occurred_at",
        ttl_days=ttl_days,
    )


def model_events_ddl(table: str = "model_events") -> str:
    """The registry's announcements (registrations, alias moves), so "which version served when" is SQL."""
    return create_table(
        table,
        """
        event_id UUID,
        event_type LowCardinality(String),
        model_name LowCardinality(String),
        version Nullable(UInt32),
        alias LowCardinality(String),
        action LowCardinality(String),
        previous_version Nullable(UInt32),
        actor String,
        occurred_at DateTime64(3, 'UTC'),
        ingested_at DateTime64(3, 'UTC')
        """,
        "ReplacingMergeTree(ingested_at)",
        "(model_name, occurred_at, event_id)",
    )


def progress_ddl(table: str = "monitor_progress") -> str:
    """Each model's evaluation progress, checkpointed before its batch's offsets are committed.

    ``source_offset`` (the Kafka offset the checkpoint covers) is the row's version: a partition's offsets
    only grow, whichever worker owns it, so the newest checkpoint wins without trusting any clock.
    """
    return create_table(
        table,
        """
        model_name String,
        versions String,
        source_offset UInt64,
        worker String,
        saved_at DateTime64(3, 'UTC')
        """,
        "ReplacingMergeTree(source_offset)",
        "model_name",
    )


def schema(ttl_days: int = 365) -> list[str]:
    """Every table and view the monitor owns, created (idempotently) when a worker starts; views last."""
    return [
        predictions_ddl(ttl_days=ttl_days),
        *predictions_intake_ddl(),
        labels_ddl(ttl_days=ttl_days),
        *labels_intake_ddl(),
        window_metrics_ddl(ttl_days=ttl_days),
        drift_tests_ddl(ttl_days=ttl_days),
        drift_events_ddl(),
        data_quality_ddl(ttl_days=ttl_days),
        monitor_stats_ddl(),
        dead_letters_ddl(ttl_days=ttl_days),
        model_events_ddl(),
        progress_ddl(),
        *views_ddl(),
    ]


INTAKE_ROWS_PER_LINE = 2
"""Rows an intake insert reports per line: one in the ``Null`` intake table, one written by its view."""


def predictions_intake_ddl(table: str = "predictions") -> list[str]:
    """A ``Null`` intake table and a materialized view that parses raw event JSON into ``table``.

    The worker inserts the Kafka payloads as they are (one JSON document per line); ClickHouse parses them
    and splits features by type in C++, so no Python touches an event's fields on the hot path. The scalar
    fields come out of one ``JSONExtract`` into a tuple: one parse of the line instead of one per field.
    """
    return [
        f"CREATE TABLE IF NOT EXISTS {table}_intake (line String) ENGINE = Null",
        f"""
        CREATE MATERIALIZED VIEW IF NOT EXISTS {table}_intake_mv TO {table} AS
        WITH JSONExtract(line, 'Tuple(event_id String, model_name String, model_version String, prediction_id String,
                 occurred_at String, probabilities Map(String, Float64), latency_ms Nullable(Float64))') AS head,
             JSONExtractKeysAndValuesRaw(line, 'features') AS kv,
             arrayFilter(x -> x.2 != 'null' AND NOT startsWith(x.2, '"'), kv) AS nums,
             arrayFilter(x -> startsWith(x.2, '"'), kv) AS cats,
             JSONExtractRaw(line, 'prediction') AS pred
        SELECT
            toUUID(head.event_id) AS event_id,
            head.model_name AS model_name,
            head.model_version AS model_version,
            head.prediction_id AS prediction_id,
            parseDateTime64BestEffort(head.occurred_at, 3, 'UTC') AS occurred_at,
            mapFromArrays(
                arrayMap(x -> x.1, nums),
                arrayMap(x -> multiIf(x.2 = 'true', 1., x.2 = 'false', 0., toFloat64(x.2)), nums)
            ) AS num_features,
            mapFromArrays(arrayMap(x -> x.1, cats), arrayMap(x -> JSONExtractString(x.2), cats)) AS cat_features,
            arrayMap(x -> x.1, arrayFilter(x -> x.2 = 'null', kv)) AS missing_features,
            multiIf(startsWith(pred, '"'), JSONExtractString(pred), pred = 'true', '1', pred = 'false', '0', pred)
                AS prediction,
            multiIf(startsWith(pred, '"'), NULL, pred = 'true', 1., pred = 'false', 0., toFloat64OrNull(pred))
                AS prediction_num,
            head.probabilities AS probabilities,
            head.latency_ms AS latency_ms,
            now64(3, 'UTC') AS ingested_at
        FROM {table}_intake
        """,
    ]


def labels_intake_ddl(table: str = "labels") -> list[str]:
    """Raw label JSON in, typed rows out, as for predictions."""
    return [
        f"CREATE TABLE IF NOT EXISTS {table}_intake (line String) ENGINE = Null",
        f"""
        CREATE MATERIALIZED VIEW IF NOT EXISTS {table}_intake_mv TO {table} AS
        WITH JSONExtractRaw(line, 'label') AS raw
        SELECT
            toUUID(JSONExtractString(line, 'event_id')) AS event_id,
            JSONExtractString(line, 'model_name') AS model_name,
            JSONExtractString(line, 'prediction_id') AS prediction_id,
            multiIf(startsWith(raw, '"'), JSONExtractString(raw), raw = 'true', '1', raw = 'false', '0', raw) AS label,
            multiIf(startsWith(raw, '"'), NULL, raw = 'true', 1., raw = 'false', 0., toFloat64OrNull(raw)) AS label_num,
            parseDateTime64BestEffort(JSONExtractString(line, 'occurred_at'), 3, 'UTC') AS occurred_at,
            now64(3, 'UTC') AS ingested_at
        FROM {table}_intake
        """,
    ]
