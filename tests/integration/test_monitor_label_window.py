"""A window's labelled predictions as the monitor reads them back from ClickHouse, joined by prediction id."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.monitor.adapters.clickhouse.storage import schema
from services.monitor.adapters.clickhouse.window_reader import read_label_window
from shared import wire

pytestmark = pytest.mark.integration

START = datetime(2036, 3, 1, 12, 0, tzinfo=UTC)  # years ahead: the tables' TTL never drops it
END = START + timedelta(minutes=1)


def _prediction(pid: str, at: datetime, prediction: str, version: str = "1") -> bytes:
    proba = {"no": 0.3, "yes": 0.7} if prediction == "yes" else {"no": 0.8, "yes": 0.2}
    return wire.encode(
        wire.PredictionWire(
            occurred_at=at,
            model_name="churn",
            model_version=version,
            prediction_id=pid,
            features={"age": 40},
            prediction=prediction,
            probabilities=proba,
        )
    )


def _label(pid: str, at: datetime, label: str) -> bytes:
    return wire.encode(wire.LabelWire(occurred_at=at, model_name="churn", prediction_id=pid, label=label))


def _insert(client: Any, table: str, lines: list[bytes]) -> None:
    client.raw_insert(f"{table}_intake", ["line"], b"\n".join(lines), fmt="LineAsString")


def test_a_window_nobody_labelled_is_read_as_no_label_without_counting_it(clickhouse_client: Any) -> None:
    for ddl in schema():
        clickhouse_client.command(ddl)
    _insert(
        clickhouse_client,
        "predictions",
        [_prediction(f"p{i}", START + timedelta(seconds=i), "no") for i in range(5)],
    )
    window = read_label_window(clickhouse_client, "churn", "1", START, END)
    assert window.count == 0  # its coverage is 0 whatever its count: not counted
    assert window.labels == [] and len(window.delay_s) == 0

    _insert(clickhouse_client, "labels", [_label("elsewhere", END + timedelta(hours=1), "no")])
    # the model now has labels, none of them for this window
    window = read_label_window(clickhouse_client, "churn", "1", START, END)
    assert window.count == 0 and window.labels == []


def test_labelled_predictions_are_joined_in_event_time_order_with_their_delay(clickhouse_client: Any) -> None:
    for ddl in schema():
        clickhouse_client.command(ddl)
    _insert(
        clickhouse_client,
        "predictions",
        [
            _prediction("late", START + timedelta(seconds=50), "yes"),
            _prediction("early", START + timedelta(seconds=10), "no"),
            _prediction("unlabelled", START + timedelta(seconds=20), "no"),
            _prediction("other-version", START + timedelta(seconds=30), "no", version="2"),
            _prediction("next-window", END + timedelta(seconds=1), "yes"),
        ],
    )
    _insert(
        clickhouse_client,
        "labels",
        [
            _label("early", START + timedelta(hours=2), "yes"),
            _label("late", START + timedelta(seconds=80), "yes"),
            _label("other-version", START + timedelta(seconds=40), "yes"),
            _label("next-window", END + timedelta(seconds=5), "no"),
        ],
    )
    window = read_label_window(clickhouse_client, "churn", "1", START, END)
    assert window.count == 3, "every prediction of the version in the window, labelled or not"
    assert window.predictions == ["no", "yes"]
    assert window.labels == ["yes", "yes"]
    assert window.delay_s.tolist() == [7190.0, 30.0]
    assert window.positive_proba is not None and window.positive_proba.tolist() == [0.2, 0.7]
