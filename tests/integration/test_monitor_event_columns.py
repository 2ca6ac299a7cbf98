"""The worker's typed columns store the very rows the intake views make of the same JSON.

Hypothesis writes valid events with awkward values (unicode keys, huge integers, tiny floats, booleans,
nulls, time zones, a feature that is a number in one event and text or null in the next) through the
monitor's intake check; each batch is stored both ways, the JSON through the intake view and the decoded
events as Native columns (``ClickHouseSink.write_events``), and every column but ``ingested_at`` must match.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.monitor.adapters.clickhouse.sink import ClickHouseSink
from services.monitor.adapters.clickhouse.storage import (
    labels_ddl,
    predictions_ddl,
)
from services.monitor.domain.intake import check_records
from services.monitor.domain.tables import LABELS, PREDICTIONS, Table
from shared import wire
from shared.validation import EventKind, EventTimeBounds
from tests.integration.test_monitor_intake_contract import intake_sink, labels, names, predictions, scalars
from tests.unit.test_monitor_records import Rec

pytestmark = pytest.mark.integration

SHARED = st.sampled_from(["age", "plan", "zip", "ünïcode ✓"])
"""Feature names events share, so a batch holds features that change kind from one event to the next."""
mixed = st.builds(
    wire.PredictionWire,
    model_name=st.sampled_from(["churn", "price"]),
    model_version=st.just("1"),
    prediction_id=names,
    features=st.dictionaries(SHARED, scalars, max_size=4),
    prediction=st.integers(0, 3),
)


@pytest.fixture(scope="module")
def stores(clickhouse_server: Any) -> Iterator[tuple[ClickHouseSink, Any]]:
    more = (predictions_ddl("predictions_columns"), labels_ddl("labels_columns"))
    with intake_sink(clickhouse_server.url, *more) as made:
        yield made


def _rows(client: Any, table: str, ids: list[str]) -> list[tuple[Any, ...]]:
    return client.query(
        f"SELECT * EXCEPT ingested_at FROM {table} WHERE toString(event_id) IN {{ids:Array(String)}} "
        "ORDER BY event_id, ingested_at LIMIT 1 BY event_id",
        parameters={"ids": ids},
    ).result_rows


def _both_ways(stores: tuple[ClickHouseSink, Any], events: list[Any]) -> None:
    sink, client = stores
    kind = EventKind.LABEL if isinstance(events[0], wire.LabelWire) else EventKind.PREDICTION
    table: Table = LABELS if kind is EventKind.LABEL else PREDICTIONS
    records = [Rec(table.name, 0, i, wire.encode(e)) for i, e in enumerate(events)]
    intake = check_records(kind, records, EventTimeBounds(), datetime.now(UTC))
    assert not intake.rejected, intake.rejected
    ids = [str(e.event_id) for e in intake.events]
    assert sink.write_lines(f"{table.name}_intake", intake.lines) == []
    columns = Table(f"{table.name}_columns", table.columns, table.engine, table.order_by)
    assert sink.write_events(columns, intake.events) == []
    by_view, by_columns = _rows(client, table.name, ids), _rows(client, columns.name, ids)
    assert len(by_columns) == len(set(ids))
    assert by_columns == by_view


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=st.lists(predictions, min_size=1, max_size=8) | st.lists(labels, min_size=1, max_size=8))
def test_columns_store_the_rows_the_intake_views_store(
    stores: tuple[ClickHouseSink, Any], events: list[wire.PredictionWire | wire.LabelWire]
) -> None:
    _both_ways(stores, events)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=st.lists(mixed, min_size=2, max_size=30))
def test_features_that_change_kind_between_events_land_as_the_views_store_them(
    stores: tuple[ClickHouseSink, Any], events: list[wire.PredictionWire]
) -> None:
    _both_ways(stores, events)


def test_an_event_that_cannot_become_columns_is_refused_alone(stores: tuple[ClickHouseSink, Any]) -> None:
    """An integer no Float64 holds passes the contract; its event is refused and the rest stored."""
    sink, client = stores
    table = Table("predictions_columns", PREDICTIONS.columns, PREDICTIONS.engine, PREDICTIONS.order_by)
    now = datetime.now(UTC)
    events = [
        wire.PredictionWire(
            model_name="huge", model_version="1", prediction_id=f"h-{i}", occurred_at=now,
            features={"n": 10**400 if i == 5 else i}, prediction=0,
        )
        for i in range(9)
    ]  # fmt: skip
    assert sink.write_events(table, events) == [5]
    stored = client.command("SELECT count() FROM predictions_columns WHERE model_name = 'huge'")
    assert int(stored) == 8
