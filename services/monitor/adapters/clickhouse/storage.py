"""ClickHouse tables owned by the monitor, created at start, with intake views that parse raw event JSON.

The tables are declared in ``domain/tables.py``; the intake views and the analytics views stay SQL here.
With ``monitor_store_columns`` the worker writes typed columns instead (``sink.write_events``), the same
rows (``tests/integration/test_monitor_event_columns.py``).
"""

from __future__ import annotations

from services.monitor.adapters.clickhouse.views import views_ddl
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
)


def predictions_ddl(table: str = "predictions", ttl_days: int = 365) -> str:
    """The ``predictions`` table (under another name for tests)."""
    return PREDICTIONS.ddl(ttl_days, name=table)


def labels_ddl(table: str = "labels", ttl_days: int = 365) -> str:
    """The ``labels`` table (under another name for tests)."""
    return LABELS.ddl(ttl_days, name=table)


def schema(ttl_days: int = 365) -> list[str]:
    """Every table and view the monitor owns, created (idempotently) when a worker starts; views last."""
    rest = (
        WINDOW_METRICS,
        DRIFT_TESTS,
        DRIFT_EVENTS,
        DATA_QUALITY,
        MONITOR_STATS,
        DEAD_LETTERS,
        MODEL_EVENTS,
    )
    return [
        PREDICTIONS.ddl(ttl_days),
        *predictions_intake_ddl(),
        LABELS.ddl(ttl_days),
        *labels_intake_ddl(),
        *(table.ddl(ttl_days) for table in (*rest, MONITOR_PROGRESS)),
        *(ddl for table in rest for ddl in table.upgrades()),
        *views_ddl(),
    ]


INTAKE_ROWS_PER_LINE = 2
"""Rows an intake insert reports per line: one in the ``Null`` intake table, one written by its view."""


def predictions_intake_ddl(table: str = "predictions") -> list[str]:
    """A ``Null`` intake table and a materialized view that parses raw event JSON into ``table``.

    The worker inserts the Kafka payloads as they are (one JSON document per line) unless it writes typed
    columns (``monitor_store_columns``). The scalar fields come out of one ``JSONExtract`` into a tuple: one
    parse of the line instead of one per field.
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
