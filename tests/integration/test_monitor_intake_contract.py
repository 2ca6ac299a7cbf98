"""Whatever the contract lets through, the intake views store: "accepted but lost" is impossible by construction.

Hypothesis writes valid events with awkward values (unicode keys, huge integers, tiny floats, booleans,
nulls, time zones) through the monitor's intake check into the real engine and expects every row to land.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.monitor.adapters.clickhouse.sink import ClickHouseSink
from services.monitor.adapters.clickhouse.storage import (
    labels_ddl,
    labels_intake_ddl,
    predictions_ddl,
    predictions_intake_ddl,
)
from services.monitor.domain.intake import check_records
from shared import wire
from shared.clickhouse import clickhouse_client
from shared.settings import Settings
from shared.validation import EventKind, EventTimeBounds
from tests.unit.test_monitor_records import Rec

pytestmark = pytest.mark.integration
NOW = datetime.now(UTC)


names = st.text(min_size=1, max_size=12)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
outputs = (
    st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10)
)
times = st.tuples(
    st.datetimes(
        min_value=(NOW - timedelta(days=300)).replace(tzinfo=None),
        max_value=(NOW + timedelta(minutes=4)).replace(tzinfo=None),
        timezones=st.just(UTC),
    ),
    st.sampled_from([UTC, None]) | st.timezones(),
).map(lambda t: t[0].replace(tzinfo=None) if t[1] is None else t[0].astimezone(t[1]))
"""Instants within the bounds, written in any zone (a naive bound given a zone could lie hours ahead)."""
predictions = st.builds(
    wire.PredictionWire,
    model_name=names,
    model_version=st.text(min_size=1, max_size=8),
    prediction_id=names,
    occurred_at=times,
    features=st.dictionaries(names, scalars, max_size=6),
    prediction=outputs,
    probabilities=st.none()
    | st.dictionaries(names, st.floats(allow_nan=False, allow_infinity=False), max_size=3),
    latency_ms=st.none() | st.floats(min_value=0, allow_infinity=False),
)
labels = st.builds(wire.LabelWire, model_name=names, prediction_id=names, occurred_at=times, label=outputs)


@contextmanager
def intake_sink(clickhouse_url: str, *more_ddl: str) -> Iterator[tuple[ClickHouseSink, Any]]:
    """A monitor sink on a database of its own holding the stored tables, their intake views and
    ``more_ddl``, and a client to read it; the database is dropped afterwards."""
    settings = Settings(clickhouse_url=clickhouse_url, clickhouse_database=f"t_{uuid.uuid4().hex[:8]}")
    client = clickhouse_client(settings, create_database=True)
    for ddl in [predictions_ddl(), *predictions_intake_ddl(), labels_ddl(), *labels_intake_ddl(), *more_ddl]:
        client.command(ddl)
    sink = ClickHouseSink(settings, create_tables=False)
    try:
        yield sink, client
    finally:
        sink.close()
        client.command(f"DROP DATABASE IF EXISTS {settings.clickhouse_database}")


@pytest.fixture(scope="module")
def sink(clickhouse_server: Any) -> Iterator[tuple[ClickHouseSink, Any]]:
    with intake_sink(clickhouse_server.url) as made:
        yield made


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=st.lists(predictions, min_size=1, max_size=8) | st.lists(labels, min_size=1, max_size=8))
def test_every_event_the_contract_accepts_lands_as_a_row(
    sink: tuple[ClickHouseSink, Any], events: list[wire.PredictionWire | wire.LabelWire]
) -> None:
    writer, client = sink
    kind = EventKind.LABEL if isinstance(events[0], wire.LabelWire) else EventKind.PREDICTION
    table = "labels" if kind is EventKind.LABEL else "predictions"
    records = [Rec(table, 0, i, wire.encode(e)) for i, e in enumerate(events)]
    intake = check_records(kind, records, EventTimeBounds(), datetime.now(UTC))
    assert not intake.rejected, intake.rejected
    ids = [str(e.event_id) for e in intake.events]
    assert writer.write_lines(f"{table}_intake", intake.lines) == []
    stored = client.command(
        f"SELECT count() FROM {table} WHERE toString(event_id) IN {{ids:Array(String)}}",
        parameters={"ids": ids},
    )
    assert int(stored) == len(set(ids))
