"""How ``driftloop sql`` prints rows and reads parameters, without a server."""

from __future__ import annotations

import datetime as dt
import decimal
import json

import pytest

from driftloop.cli.sql import (
    SqlError,
    clickhouse_message,
    parse_params,
    render_csv,
    render_json,
    render_table,
)


def test_table_aligns_text_left_and_numbers_right() -> None:
    out = render_table(["model", "n"], [("churn", 5), ("fraud-detector", 120)]).splitlines()
    assert out[0] == "model             n"
    assert out[2] == "churn             5"
    assert out[3] == "fraud-detector  120"
    assert out[-1] == "(2 rows)"


def test_nulls_dates_and_maps_are_printed_readably() -> None:
    at = dt.datetime(2026, 1, 2, 3, 4, 5)
    row = (None, at, {"a": 1}, decimal.Decimal("1.50"))
    table = render_table(["x", "at", "m", "d"], [row])
    assert "NULL" in table and "2026-01-02T03:04:05" in table and '{"a": 1}' in table
    assert json.loads(render_json(["x", "at", "m", "d"], [row])) == [
        {"x": None, "at": "2026-01-02T03:04:05", "m": {"a": 1}, "d": "1.50"}
    ]
    assert render_csv(["x", "d"], [(None, decimal.Decimal("1.50"))]) == "x,d\n,1.50"


def test_params_split_on_the_first_equals_sign() -> None:
    assert parse_params(["model=churn", "expr=a=b", "empty="]) == {
        "model": "churn",
        "expr": "a=b",
        "empty": "",
    }
    with pytest.raises(SqlError, match="name=value"):
        parse_params(["model"])


def test_clickhouse_message_drops_the_driver_wrapper() -> None:
    raw = (
        "Received ClickHouse exception, code: 60, server response: Code: 60. DB::Exception: Unknown table "
        "'x'. (UNKNOWN_TABLE) (version 26.9.2.1) (for url http://127.0.0.1:8123)"
    )
    assert clickhouse_message(Exception(raw)) == (
        "Code: 60. DB::Exception: Unknown table 'x'. (UNKNOWN_TABLE) (version 26.9.2.1)"
    )
