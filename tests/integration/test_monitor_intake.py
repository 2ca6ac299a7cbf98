"""The intake views turn raw event JSON into typed rows (times as naive UTC): every feature type, missing values."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from services.monitor.adapters.clickhouse.storage import schema

pytestmark = pytest.mark.integration

# Events are dated years ahead: the tables' TTL (365 days by event time) would drop past-dated rows once
# the date passed, and the test with them.
PREDICTION = (
    b'{"event_type":"prediction_logged","event_id":"6c1f7c55-2b43-4c1e-9a55-4d5f0f0f4a11","schema_version":1,'
    b'"occurred_at":"2036-03-01T12:00:01.250","model_name":"churn","model_version":"7","prediction_id":"p-1",'
    b'"features":{"age":41,"income":52000.5,"plan":"pro","zip":"02139","vip":true,"churned_before":false,'
    b'"tenure":null},"prediction":"yes","probabilities":{"no":0.25,"yes":0.75},"latency_ms":3.5}'
)
BARE = (
    b'{"event_type":"prediction_logged","event_id":"0b6a4c4e-64c9-4a0e-8f1e-7f1e8f0e2d31",'
    b'"occurred_at":"2036-03-01T13:00:00+01:00","model_name":"price","model_version":"1","prediction_id":"p-2",'
    b'"features":{},"prediction":false}'
)
LABEL = (
    b'{"event_type":"label_logged","event_id":"3f0d1d7e-9d55-4c1c-8a47-2b1b0c3d4e5f","occurred_at":"2036-03-01T15:00:00Z",'
    b'"model_name":"churn","prediction_id":"p-1","label":"yes"}'
)


def test_intake_views_type_every_field(clickhouse_client: Any) -> None:
    for ddl in schema():
        clickhouse_client.command(ddl)
    clickhouse_client.raw_insert(
        "predictions_intake", ["line"], PREDICTION + b"\n" + BARE, fmt="LineAsString"
    )
    clickhouse_client.raw_insert("labels_intake", ["line"], LABEL, fmt="LineAsString")
    rows = clickhouse_client.query(
        "SELECT model_name, model_version, prediction_id, occurred_at, num_features, cat_features, "
        "missing_features, prediction, prediction_num, probabilities, latency_ms FROM predictions ORDER BY model_name"
    ).result_rows
    churn, price = rows
    assert churn[:4] == ("churn", "7", "p-1", datetime(2036, 3, 1, 12, 0, 1, 250000))
    assert churn[4] == {"age": 41.0, "income": 52000.5, "vip": 1.0, "churned_before": 0.0}
    assert churn[5] == {"plan": "pro", "zip": "02139"}, "a quoted number stays a category"
    assert churn[6:] == (["tenure"], "yes", None, {"no": 0.25, "yes": 0.75}, 3.5)
    assert price[3] == datetime(2036, 3, 1, 12, 0), "offsets are converted to UTC"
    assert price[4:] == ({}, {}, [], "0", 0.0, {}, None)
    label = clickhouse_client.query(
        "SELECT model_name, prediction_id, label, label_num FROM labels"
    ).result_rows
    assert label == [("churn", "p-1", "yes", None)]
