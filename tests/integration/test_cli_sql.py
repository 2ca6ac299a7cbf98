"""``driftloop sql`` as a user runs it: a subprocess against the real embedded ClickHouse server."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from typing import Any

import pytest

from driftloop.process import free_port
from tests.fixtures.clickhouse import ClickHouseServer

pytestmark = pytest.mark.integration


def sql(
    server_url: str, database: str, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DRIFTLOOP_CLICKHOUSE_URL": server_url, "DRIFTLOOP_CLICKHOUSE_DATABASE": database}
    return subprocess.run(
        [sys.executable, "-m", "driftloop.cli.sql", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def scores(clickhouse_client: Any) -> str:
    """A small table in the test's own database; returns the database name."""
    clickhouse_client.command(
        "CREATE TABLE scores (model LowCardinality(String), version UInt32, accuracy Float64, "
        "at DateTime64(3, 'UTC')) ENGINE = MergeTree ORDER BY (model, version)"
    )
    clickhouse_client.command(
        "INSERT INTO scores VALUES ('churn', 1, 0.91, '2026-01-01 00:00:00'), "
        "('churn', 2, 0.875, '2026-01-02 00:00:00'), ('fraud', 10, 0.5, '2026-01-03 00:00:00')"
    )
    return str(clickhouse_client.database)


QUERY = "SELECT model, version, accuracy FROM scores ORDER BY model, version"


def test_table_is_aligned_with_a_row_count(clickhouse_server: ClickHouseServer, scores: str) -> None:
    out = sql(clickhouse_server.url, scores, QUERY)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["model", "version", "accuracy"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert lines[2].split() == ["churn", "1", "0.91"]
    assert lines[4].split() == ["fraud", "10", "0.5"]
    end = lines[0].index("version") + len("version")  # numbers are right-aligned under their name
    assert lines[2][end - 1] == "1" and lines[4][end - 2 : end] == "10"
    assert lines[-1] == "(3 rows)"


def test_csv_and_json_keep_the_values(clickhouse_server: ClickHouseServer, scores: str) -> None:
    as_csv = sql(
        clickhouse_server.url,
        scores,
        "SELECT model, version, at FROM scores ORDER BY version",
        "--format",
        "csv",
    )
    assert as_csv.returncode == 0, as_csv.stderr
    rows = list(csv.reader(io.StringIO(as_csv.stdout)))
    assert rows[0] == ["model", "version", "at"]
    assert rows[1][:2] == ["churn", "1"] and rows[1][2].startswith("2026-01-01")

    as_json = sql(clickhouse_server.url, scores, QUERY, "--format", "json")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)[1] == {"model": "churn", "version": 2, "accuracy": 0.875}


def test_parameters_are_bound_by_the_server(clickhouse_server: ClickHouseServer, scores: str) -> None:
    out = sql(
        clickhouse_server.url,
        scores,
        "SELECT version FROM scores WHERE model = {model:String} AND accuracy > {floor:Float64} ORDER BY version",
        "--param",
        "model=churn",
        "-p",
        "floor=0.9",
        "--format",
        "json",
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [{"version": 1}]


def test_query_from_stdin(clickhouse_server: ClickHouseServer, scores: str) -> None:
    out = sql(clickhouse_server.url, scores, "-", "--format", "csv", stdin="SELECT count() AS n FROM scores")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["n", "3"]


def test_bad_query_prints_the_clickhouse_message(clickhouse_server: ClickHouseServer, scores: str) -> None:
    out = sql(clickhouse_server.url, scores, "SELECT * FROM no_such_table")
    assert out.returncode == 1
    assert "UNKNOWN_TABLE" in out.stderr and "no_such_table" in out.stderr
    assert out.stdout == ""
    bad_param = sql(clickhouse_server.url, scores, "SELECT 1", "--param", "novalue")
    assert bad_param.returncode == 1 and "is not name=value" in bad_param.stderr


def test_server_down_names_the_url_and_how_to_start_it() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    out = sql(url, "driftloop", "SELECT 1")
    assert out.returncode == 1
    assert url in out.stderr and "driftloop infra up" in out.stderr
    assert "Traceback" not in out.stderr


def test_an_empty_result_shows_its_columns_and_zero_rows(
    clickhouse_server: ClickHouseServer, scores: str
) -> None:
    empty = "SELECT model, version FROM scores WHERE version > 1000"
    out = sql(clickhouse_server.url, scores, empty)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "(0 rows)"
    assert out.stdout.split()[:2] == ["model", "version"]
    as_json = sql(clickhouse_server.url, scores, empty, "--format", "json")
    assert json.loads(as_json.stdout) == []
    as_csv = sql(clickhouse_server.url, scores, empty, "--format", "csv")
    assert as_csv.stdout.strip() == "model,version"
