"""The trainer's ClickHouse table: one row per training run with its outcome and cost, for SQL and ``cost``."""

from __future__ import annotations

from typing import Any

RUN_COLUMNS = [
    "run_id",
    "model_name",
    "status",
    "reason",
    "trigger_event_id",
    "model_version",
    "promoted",
    "metric",
    "challenger_score",
    "champion_score",
    "started_at",
    "finished_at",
    "wall_s",
    "cpu_s",
    "peak_memory_mb",
    "rows",
    "bytes_read",
    "artifact_bytes",
    "detail",
]


def training_runs_ddl(table: str = "training_runs") -> str:
    """Runs keyed by ``run_id``; a replayed insert of the same run collapses (ReplacingMergeTree)."""
    return f"""
    CREATE TABLE IF NOT EXISTS {table} (
        run_id UUID,
        model_name LowCardinality(String),
        status LowCardinality(String),
        reason LowCardinality(String),
        trigger_event_id Nullable(UUID),
        model_version Nullable(UInt32),
        promoted UInt8,
        metric LowCardinality(String),
        challenger_score Nullable(Float64),
        champion_score Nullable(Float64),
        started_at DateTime64(3, 'UTC'),
        finished_at DateTime64(3, 'UTC'),
        wall_s Float64,
        cpu_s Float64,
        peak_memory_mb Float64,
        rows UInt64,
        bytes_read UInt64,
        artifact_bytes UInt64,
        detail String
    )
    ENGINE = ReplacingMergeTree(finished_at)
    PARTITION BY toYYYYMM(started_at)
    ORDER BY (model_name, started_at, run_id)
    """


def run_row(values: dict[str, Any]) -> list[Any]:
    """One row in ``RUN_COLUMNS`` order."""
    return [values.get(column) for column in RUN_COLUMNS]
