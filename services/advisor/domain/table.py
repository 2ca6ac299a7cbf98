"""The ``scale_advice`` table, declared once: its DDL, insert columns and row builder come from here."""

from __future__ import annotations

from typing import Any

from shared.events import ScaleAdvised

COLUMNS: tuple[tuple[str, str], ...] = (
    ("event_id", "UUID"),
    ("advised_at", "DateTime64(3, 'UTC')"),
    ("target", "LowCardinality(String)"),
    ("kind", "LowCardinality(String)"),
    ("message", "String"),
    ("workers_now", "Nullable(UInt32)"),
    ("workers_advised", "Nullable(UInt32)"),
    ("partitions", "Nullable(UInt32)"),
    ("inflow_per_s", "Nullable(Float64)"),
    ("capacity_per_worker", "Nullable(Float64)"),
    ("lag", "Nullable(Float64)"),
    ("lag_growth_per_s", "Nullable(Float64)"),
    ("breach_in_s", "Nullable(Float64)"),
    ("days_until_full", "Nullable(Float64)"),
)
COLUMN_NAMES = [name for name, _ in COLUMNS]
TABLE = "scale_advice"


def ddl(retention_days: int = 365) -> str:
    """``CREATE TABLE IF NOT EXISTS scale_advice``: deduplicated by ``event_id`` (advice is published at least once).

    >>> ddl(30).startswith("CREATE TABLE IF NOT EXISTS scale_advice (event_id UUID, advised_at DateTime64(3, 'UTC')")
    True
    """
    columns = ", ".join(f"{name} {kind}" for name, kind in COLUMNS)
    return (
        f"CREATE TABLE IF NOT EXISTS {TABLE} ({columns}) ENGINE = ReplacingMergeTree "
        f"PARTITION BY toYYYYMM(advised_at) ORDER BY (target, advised_at, event_id) "
        f"TTL toDateTime(advised_at) + INTERVAL {int(retention_days)} DAY"
    )


def row(event: ScaleAdvised) -> list[Any]:
    """The event's values in :data:`COLUMNS` order."""
    return [
        event.event_id,
        event.occurred_at,
        event.model_name,
        event.kind,
        event.message,
        event.workers_now,
        event.workers_advised,
        event.partitions,
        event.inflow_per_s,
        event.capacity_per_worker,
        event.lag,
        event.lag_growth_per_s,
        event.breach_in_s,
        event.days_until_full,
    ]
