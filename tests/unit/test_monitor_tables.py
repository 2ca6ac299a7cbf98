"""Each monitor table is declared once: every row builder returns exactly its declared columns, in order."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from services.monitor.adapters.clickhouse.storage import labels_intake_ddl, predictions_intake_ddl, schema
from services.monitor.domain import tables
from services.monitor.domain.announcements import alert_event
from services.monitor.domain.drift.columns import TestResult as ColumnTest
from services.monitor.domain.drift.decision import Alert
from services.monitor.domain.tables import Table
from shared import codec
from shared.events import (
    AliasAction,
    AliasChanged,
    DataQualityCounted,
    DriftEvidence,
    DriftKind,
    EventDeadLettered,
    ModelVersionRegistered,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
LATER = datetime(2026, 11, 23, 12, 1, tzinfo=UTC)


def _fits(kind: str, value: Any) -> bool:
    """Whether a Python value is what clickhouse-connect inserts into a column of this type."""
    if kind.startswith("Nullable("):
        return value is None or _fits(kind[len("Nullable(") : -1], value)
    if kind.startswith("LowCardinality("):
        return _fits(kind[len("LowCardinality(") : -1], value)
    if kind.startswith("Array("):
        return isinstance(value, list) and all(_fits(kind[len("Array(") : -1], v) for v in value)
    if kind.startswith("Map("):
        key, val = kind[len("Map(") : -1].split(", ", 1)
        return isinstance(value, dict) and all(_fits(key, k) and _fits(val, v) for k, v in value.items())
    if kind == "UUID":
        return isinstance(value, uuid.UUID)
    if kind.startswith("DateTime"):
        return isinstance(value, datetime) and value.tzinfo is not None
    if kind.startswith(("UInt", "Int")):
        return isinstance(value, int)
    if kind == "Float64":
        return isinstance(value, int | float)
    if kind == "String":
        return isinstance(value, str | bytes)
    raise AssertionError(f"no check for {kind}")


def _check(table: Table, rows: Sequence[Sequence[Any]]) -> None:
    assert rows, f"no rows built for {table.name}"
    for row in rows:
        assert len(row) == len(table.columns), (table.name, row)
        for (name, kind), value in zip(table.columns, row, strict=True):
            assert _fits(kind, value), f"{table.name}.{name} {kind} got {value!r}"


def _alert(recovered: bool) -> Alert:
    evidence = DriftEvidence(
        feature="x", test="ks+wasserstein_norm", statistic=0.3, p_value=0.001, threshold=0.1,
        effect_size=0.4, reference_size=100, current_size=300, drifted=True,
    )  # fmt: skip
    return Alert(recovered, NOW, LATER, (DriftKind.FEATURE,), ("x",), (evidence,), 0.5, 3, 2)


def _record(offset: int, value: bytes) -> SimpleNamespace:
    return SimpleNamespace(topic="t-dead-letter", partition=0, offset=offset, value=value)


BUILT: dict[str, list[list[Any]]] = {
    "window_metrics": tables.window_metric_rows(
        "churn", "1", NOW, LATER, [("count", "", 3.0), ("mean", "x", 0.5)], NOW
    ),
    "drift_tests": tables.drift_test_rows(
        "churn", "1", NOW, LATER, [ColumnTest("x", "ks", 0.2, 0.01, None, 100, 300, True)], NOW
    ),
    "drift_events": [
        tables.drift_event_row(alert_event("churn", "1", "data", _alert(False))),
        tables.drift_event_row(alert_event("churn", "1", "data", _alert(True))),
    ],
    "data_quality": tables.quality_rows(
        [
            DataQualityCounted(
                model_name="churn",
                interval_start=NOW,
                interval_end=LATER,
                events=3,
                counts={"x": {"missing": 1}},
            )
        ]
    ),
    "dead_letters": tables.dead_letter_rows(
        [
            _record(
                1, codec.encode(EventDeadLettered(model_name="m", source="s", reason="r", original=b"x"))
            ),
            _record(2, b"unreadable"),
        ],
        NOW,
    ),
    "model_events": tables.model_event_rows(
        [
            _record(
                3,
                codec.encode(
                    AliasChanged(
                        model_name="m", alias="prod", version=2, action=AliasAction.SET, changed_by="ci"
                    )
                ),
            ),
            _record(
                4,
                codec.encode(
                    ModelVersionRegistered(
                        model_name="m",
                        version=2,
                        artifact_uri="s3://m/2",
                        artifact_sha256="a" * 64,
                        created_by="ci",
                        artifact_size=10,
                        metrics={"accuracy": 0.9},
                        lineage={"parent_version": 1},
                    )
                ),
            ),
        ],
        NOW,
    )[0],
    "monitor_stats": tables.stats_rows(NOW, "host:1", {"events_per_s": 10, "consumer_lag": 0.0}),
    "monitor_progress": tables.progress_rows({"churn": ({"1": {"max_event_ms": 1}}, 42)}, "host:1", NOW),
}


@pytest.mark.parametrize("table", [t for t in tables.TABLES if t.name in BUILT], ids=lambda t: t.name)
def test_every_row_builder_returns_the_declared_columns(table: Table) -> None:
    _check(table, BUILT[table.name])


def test_every_table_but_the_raw_events_has_a_row_builder() -> None:
    assert {t.name for t in tables.TABLES} - set(BUILT) == {"predictions", "labels"}


@pytest.mark.parametrize(
    ("table", "intake"),
    [(tables.PREDICTIONS, predictions_intake_ddl), (tables.LABELS, labels_intake_ddl)],
    ids=["predictions", "labels"],
)
def test_the_intake_views_select_the_declared_columns_in_order(table: Table, intake: Any) -> None:
    view = intake()[1]
    selected = re.findall(r"\bAS (\w+)\s*(?:,|\n\s*FROM)", view.split("SELECT", 1)[1])
    assert selected == table.column_names


def test_the_schema_renders_each_table_from_its_declaration() -> None:
    ddl = schema(ttl_days=90)
    for table in tables.TABLES:
        (found,) = [d for d in ddl if d.startswith(f"CREATE TABLE IF NOT EXISTS {table.name} (")]
        assert found == table.ddl(90)
        assert all(f"{name} {kind}" in found for name, kind in table.columns)
    assert "INTERVAL 90 DAY" in tables.PREDICTIONS.ddl(90)
    assert "INTERVAL 30 DAY" in tables.MONITOR_STATS.ddl(90)  # its own retention, whatever the setting
    assert "TTL" not in tables.DRIFT_EVENTS.ddl(90)
