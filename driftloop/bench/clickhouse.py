"""Benchmark: rows/s of a clickhouse-connect insert and queries/s through the configured ClickHouse server.

Against the embedded server this measures the whole path a service uses: client encoding, HTTP with the
default lz4 compression, and chDB. With nothing listening on a local ClickHouse URL, a server is started
on a temporary data folder for the run and stopped after.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import uuid4

import numpy as np

from shared.settings import Settings

TABLE_DDL = """
CREATE TABLE predictions (
    prediction_id String,
    score Float64,
    ts DateTime64(3, 'UTC'),
    model LowCardinality(String),
    features Map(String, Float64)
) ENGINE = MergeTree ORDER BY (model, ts)
"""
COLUMNS = ["prediction_id", "score", "ts", "model", "features"]
INSERT_ROUNDS = 3


def sample_columns(n: int, seed: int = 7) -> list[Any]:
    """``n`` prediction rows, column-oriented, with realistic string, map and low-cardinality values."""
    rng = np.random.default_rng(seed)
    ids = [f"p-{i:012x}" for i in range(n)]
    scores = rng.random(n)
    # DateTime64(3) as integer milliseconds: clickhouse-connect's fast path, no datetime object per row
    ts = (np.datetime64("2024-01-01T00:00:00", "ms").astype(np.int64) + np.arange(n, dtype=np.int64)).tolist()
    models = np.array(["churn", "fraud", "upsell", "ltv"])[rng.integers(0, 4, n)].tolist()
    values = rng.normal(size=(n, 3)).round(3)
    features = [{"age": a, "tenure": t, "spend": s} for a, t, s in values.tolist()]
    return [ids, scores, ts, models, features]


AGGREGATE_QUERY = "SELECT count(), avg(score) FROM predictions WHERE model = {m:String}"


def _queries_per_s(make_client: Callable[[], Any], threads: int, per_thread: int, sql: str) -> float:
    """Queries per second, each thread with its own client (clients are not shared across threads)."""

    def work() -> None:
        client = make_client()
        for i in range(per_thread):
            client.query(sql, parameters={"m": ("churn", "fraud")[i % 2]})
        client.close()

    workers = [threading.Thread(target=work) for _ in range(threads)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return threads * per_thread / (time.perf_counter() - start)


def run(settings: Settings, n: int = 1_000_000, queries: int = 500) -> dict[str, float]:
    """Insert ``n`` rows, read them back, then time small queries; returns the figures."""
    from shared.clickhouse import clickhouse_client

    database = f"driftloop_bench_{uuid4().hex[:8]}"
    client = clickhouse_client(settings, database=database)
    try:
        client.command(TABLE_DDL)
        columns = sample_columns(n)
        warm_up = [column[:1000] for column in columns]  # one-time code paths are not throughput
        client.insert("predictions", warm_up, column_names=COLUMNS, column_oriented=True)
        client.command("TRUNCATE TABLE predictions")
        insert_s = []  # the first big insert also pays for both processes growing their memory
        for _ in range(INSERT_ROUNDS):
            start = time.perf_counter()
            client.insert("predictions", columns, column_names=COLUMNS, column_oriented=True)
            insert_s.append(time.perf_counter() - start)
        count, total = client.query("SELECT count(), sum(score) FROM predictions").result_rows[0]
        expected = INSERT_ROUNDS * float(np.sum(columns[1]))
        if count != INSERT_ROUNDS * n or abs(total - expected) > 1e-6 * count:
            raise RuntimeError(f"read back {count} rows (sum {total}) after inserting {INSERT_ROUNDS} x {n}")
        start = time.perf_counter()
        frame = client.query_df(f"SELECT * FROM predictions LIMIT {n}")
        read_s = time.perf_counter() - start
        start = time.perf_counter()
        client.insert_df("predictions", frame)
        insert_df_s = time.perf_counter() - start
        del frame

        def make_client() -> Any:
            return clickhouse_client(settings, database=database, create_database=False)

        return {
            "insert_rows": n,
            "insert_rows_per_s": round(n / insert_s[0]),
            "insert_rows_per_s_best": round(n / min(insert_s)),
            "insert_df_rows_per_s": round(n / insert_df_s),
            "query_df_rows_per_s": round(n / read_s),
            "trivial_queries_per_s": round(_queries_per_s(make_client, 1, queries, "SELECT {m:String}"), 1),
            "queries_per_s_1_client": round(_queries_per_s(make_client, 1, queries, AGGREGATE_QUERY), 1),
            "queries_per_s_4_clients": round(
                _queries_per_s(make_client, 4, queries // 4, AGGREGATE_QUERY), 1
            ),
        }
    finally:
        client.command(f"DROP DATABASE IF EXISTS {database}")
        client.close()


def main(n: int = 1_000_000, queries: int = 500) -> dict[str, float]:
    from driftloop.infra.stack import Component, local_stack
    from driftloop.process import port_open

    settings = Settings()
    host, port = settings.clickhouse_host_port
    if settings.clickhouse_is_local and not port_open(host, port):
        with tempfile.TemporaryDirectory(prefix="driftloop-bench-") as tmp:
            bench_settings = settings.model_copy(update={"data_dir": Path(tmp)})
            with local_stack(bench_settings, components=[Component.CLICKHOUSE]):
                figures = run(bench_settings, n, queries)
        where = f"embedded server started for the run on {settings.clickhouse_url}"
    else:
        figures = run(settings, n, queries)
        where = f"server at {settings.clickhouse_url}"
    print(f"ClickHouse through clickhouse-connect (default settings, lz4), {where}")
    print(f"  insert {n:,} rows (String, Float64, DateTime64, LowCardinality, Map), {INSERT_ROUNDS} times")
    lines = [
        ("    first", figures["insert_rows_per_s"], "rows/s"),
        ("    best", figures["insert_rows_per_s_best"], "rows/s"),
        ("  query_df of those rows", figures["query_df_rows_per_s"], "rows/s"),
        ("  insert_df of that DataFrame", figures["insert_df_rows_per_s"], "rows/s"),
        ("  SELECT of a parameter, 1 client", figures["trivial_queries_per_s"], "queries/s"),
        (
            f"  aggregate over {INSERT_ROUNDS * n:,} rows, 1 client",
            figures["queries_per_s_1_client"],
            "queries/s",
        ),
        (
            f"  aggregate over {INSERT_ROUNDS * n:,} rows, 4 clients",
            figures["queries_per_s_4_clients"],
            "queries/s",
        ),
    ]
    for label, value, unit in lines:
        print(f"{label:<44}: {value:>12,.0f} {unit}")
    print(json.dumps(figures))
    return figures
